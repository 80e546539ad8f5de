"""Actions, against a baseline measured in the same run:

- webhook intake through `runsheet serve` (a real server process on 127.0.0.1): records per second accepted and
  committed (the answer comes after the commit), at batch sizes 1 and 500;
- export delivery to the local receiver (tests/actions/receiver.py): deliveries per second through the outbox
  and the runner, against plain concurrent POSTs of the same payloads without any bookkeeping.

Sizes: BENCH_EXPORTS (default 2,000 deliveries), BENCH_INTAKE (default 10,000 records at batch 500; a fiftieth
of that, one request each, at batch 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "actions.json"
SPEC = """
campaign: bench
columns:
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: push, kind: export, url: "URL", fields: [email, company]}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def intake(folder: Path, total: int) -> dict[str, float]:
    import httpx

    from engine import Workspace
    from engine.auth import create_token

    ws = Workspace.init(folder / "intake")
    ws.apply(SPEC.replace("URL", "http://127.0.0.1:9/none"))
    token = create_token(ws.db, ws.actor, "bench")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "-w",
            str(ws.path),
            "--port",
            str(port),
            "--exit-after",
            "900",
            "--no-schedules",
        ],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    figures: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(400):
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            for batch, records in ((1, max(20, total // 50)), (500, total)):
                started = time.perf_counter()
                for start in range(0, records, batch):
                    body = {
                        "records": [
                            {"email": f"b{batch}-{i}@x.com", "company": f"C{i}"}
                            for i in range(start, min(records, start + batch))
                        ]
                    }
                    client.post("/campaigns/bench/records", json=body).raise_for_status()
                figures[f"intake_records_per_s_batch_{batch}"] = records / (time.perf_counter() - started)
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return figures


def delivery(folder: Path, total: int) -> dict[str, float]:
    import httpx

    from engine import Workspace
    from tests.actions.conftest import start_receiver

    receiver = start_receiver(lifetime=900)
    try:
        ws = Workspace.init(folder / "export")
        ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
        ws.set_setting("concurrency", 16)
        ws.apply(SPEC.replace("URL", f"{receiver.base}/hooks/bench"))
        campaign = ws.campaign("bench")
        campaign.add_rows([{"email": f"p{i}@x.com", "company": f"C{i}"} for i in range(total)])
        started = time.perf_counter()
        campaign.run()
        outbox = total / (time.perf_counter() - started)
        assert receiver.posts() == total

        payloads = [json.dumps({"data": {"email": f"p{i}@x.com", "company": f"C{i}"}}) for i in range(total)]

        async def plain() -> None:
            queue = iter(payloads)
            async with httpx.AsyncClient(base_url=receiver.base) as client:

                async def worker() -> None:
                    for body in queue:
                        (await client.post("/hooks/plain", content=body)).raise_for_status()

                await asyncio.gather(*(worker() for _ in range(16)))

        started = time.perf_counter()
        asyncio.run(plain())
        baseline = total / (time.perf_counter() - started)
    finally:
        receiver.stop()
    return {
        "export_deliveries_per_s_outbox": outbox,
        "export_deliveries_per_s_plain_posts": baseline,
        "export_outbox_vs_plain": outbox / baseline,
    }


def main() -> None:
    exports = int(os.environ.get("BENCH_EXPORTS", "2000"))
    records = int(os.environ.get("BENCH_INTAKE", "10000"))
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as folder:
        figures = {**intake(Path(folder), records), **delivery(Path(folder), exports)}
    for name, value in figures.items():
        print(f"{name:42s} {value:10.1f}" if not name.endswith("_vs_plain") else f"{name:42s} {value:10.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"exports": exports, "intake_records": records, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
