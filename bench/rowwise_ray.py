"""A CPU-heavy row-wise python step (bench/rowwise_steps.py, about 1 ms of CPU a row) computed by the local runner
and in shards on Ray, side by side in one run: the step's wall time, CPU over all the run's processes (the run,
and for Ray its embedded cluster) during the step and with start-up, and for Ray the cluster's start-up apart
(started before the run, which joins it). Local and Ray alternate, each scenario in its own process; the load is
reported with each.

`BENCH_ROWWISE_ROWS` sets the rows (default 10,000); `BENCH_ROWWISE_ROUNDS` how many alternations (2). Needs the
optional `ray` extra; without it the bench says so and records nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "issue19" / "rowwise_ray.json"
ROWS = int(os.environ.get("BENCH_ROWWISE_ROWS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROWWISE_ROUNDS", "2"))
SPEC = """
campaign: bench
columns:
  - {name: company, kind: input}
  - {name: digest, kind: python, function: "bench.rowwise_steps:digest", inputs: [company], rowwise: true, run: manual}
  - {name: digest_len, kind: formula, expression: "length(digest)"}
"""


def scenario(backend: str, folder: str, rows: int) -> dict[str, float]:
    from bench.ray_backend import TreeSampler
    from engine import RunOptions, Workspace

    ws = Workspace.init(folder)
    ws.apply(SPEC)
    campaign = ws.campaign("bench")
    campaign.add_rows([{"company": f"company-{i}"} for i in range(rows)])
    sampler = TreeSampler()
    sampler.sample()
    cpu_before = sum(sampler.cpu.values())
    sampler.start()
    startup = 0.0
    started = None
    if backend == "ray":
        from engine.runner import ray_backend

        begin = time.perf_counter()
        started = ray_backend.start_embedded(Path(folder) / "ray", os.cpu_count() or 1)
        startup = time.perf_counter() - begin
    sampler.sample()
    cpu_at_step = sum(sampler.cpu.values())
    begin = time.perf_counter()
    report = campaign.run(["digest"], options=RunOptions(backend=backend))  # type: ignore[arg-type]
    seconds = time.perf_counter() - begin
    sampler.sample()  # the cluster's processes, before they end
    cpu_step = sum(sampler.cpu.values()) - cpu_at_step
    sampler.stop()
    if started is not None:
        from engine.runner import ray_backend

        ray_backend.stop_embedded(started)
    assert report.counts()["digest"] == {"done": rows}, report.counts()
    cpu = sum(sampler.cpu.values()) - cpu_before
    return {
        "rows": rows,
        "step_s": seconds,
        "rows_per_s": rows / seconds,
        "cpu_ms_per_row": cpu / rows * 1000,  # start-up included
        "step_cpu_ms_per_row": cpu_step / rows * 1000,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "startup_s": startup,
    }


def run_scenario(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.rowwise_ray", "scenario", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("rowwise_ray: the optional `ray` extra is not installed (pip install -e .[ray]); nothing measured")
        return
    found: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(ROUNDS):
            for backend in ("local", "ray"):
                load = os.getloadavg()[0]
                figures = run_scenario(backend, str(Path(tmp) / f"{backend}-{round_}"), str(ROWS))
                figures["load_1m"] = (load + os.getloadavg()[0]) / 2
                found.setdefault(backend, []).append(figures)
                print(
                    f"{backend:5} round {round_ + 1}: step {figures['step_s']:.2f} s "
                    f"({figures['rows_per_s']:.0f} rows/s), "
                    f"{figures['step_cpu_ms_per_row']:.2f} ms CPU/row in the step "
                    f"({figures['cpu_ms_per_row']:.2f} with start-up), peak {figures['peak_rss_mb']:.0f} MB, "
                    f"cluster start-up {figures['startup_s']:.2f} s (load {figures['load_1m']:.1f})",
                    flush=True,
                )
    ratios = [ray["step_s"] / local["step_s"] for local, ray in zip(found["local"], found["ray"], strict=True)]
    print("Ray step time / local step time, per round: " + ", ".join(f"{x:.2f}" for x in ratios))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"rows": ROWS, "cpus": os.cpu_count(), "runs": found, "ray_over_local": ratios}, indent=2) + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "scenario":
        backend, folder, rows = sys.argv[2:5]
        print(json.dumps(scenario(backend, folder, int(rows))))
    else:
        main()
