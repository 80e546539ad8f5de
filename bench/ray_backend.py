"""The Ray backend against the local runner on the same AI column (fake provider at 200 ms), side by side in one
run, at concurrency 64 and 256: cells/s, CPU per cell over all the run's processes (the run, and for Ray its
embedded cluster: GCS, raylet, workers), peak memory summed over those processes, and start-up (run start to the
first result). Local and Ray alternate; each scenario runs in its own process.

`BENCH_RAY_CELLS` sets the cells per scenario (default 10,000); `BENCH_RAY_ROUNDS` how many alternations (2).
Needs the optional `ray` extra; without it the bench says so and records nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "issue19" / "ray_backend.json"
CELLS = int(os.environ.get("BENCH_RAY_CELLS", "10000"))
ROUNDS = int(os.environ.get("BENCH_RAY_ROUNDS", "2"))
LATENCY = 0.2
KEY_ENV = "BENCH_PROVIDER_KEY"


class TreeSampler:
    """Samples this process and its descendants: the last CPU time seen per process, the peak summed RSS."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        import psutil

        rss = 0
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                rss += process.memory_info().rss
            except psutil.Error:
                continue
            self.cpu[process.pid] = times.user + times.system
        self.peak_rss = max(self.peak_rss, rss)

    def _loop(self) -> None:
        while not self._done.wait(0.2):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def scenario(backend: str, folder: str, api_base: str, cells: int, concurrency: int) -> dict[str, float]:
    from bench.ai_runner import apply_active, spec
    from engine import RunOptions, RunProgress, Workspace

    ws = Workspace.init(folder)
    apply_active(ws, spec(api_base, "direct"))
    ws.add_credits(cells * 2)
    campaign = ws.campaign("bench")
    campaign.add_rows([{"company": f"company-{backend}-{concurrency}-{i}"} for i in range(cells)])
    sampler = TreeSampler()
    sampler.sample()
    cpu_before = sum(sampler.cpu.values())
    first: list[float] = []

    def seen(progress: RunProgress) -> None:
        if progress.done and not first:
            first.append(time.perf_counter())
        if progress.done >= cells - concurrency:  # the cluster's processes, before the run shuts them down
            sampler.sample()

    sampler.start()
    start = time.perf_counter()
    report = campaign.run(options=RunOptions(concurrency=concurrency, backend=backend, progress=seen))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    sampler.stop()
    sampler.sample()
    assert report.counts()["research"] == {"done": cells}, report.counts()
    cpu = sum(sampler.cpu.values()) - cpu_before
    return {
        "cells": cells,
        "seconds": seconds,
        "cells_per_s": cells / seconds,
        "cpu_ms_per_cell": cpu / cells * 1000,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "startup_s": first[0] - start if first else seconds,
    }


def run_scenario(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ray_backend", "scenario", *args],
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
        print("ray_backend: the optional `ray` extra is not installed (pip install -e .[ray]); nothing measured")
        return
    from tests.support.provider import start_provider

    provider = start_provider(latency=LATENCY, lifetime=7200)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(ROUNDS):
                for concurrency in (64, 256):
                    for backend in ("local", "ray"):
                        folder = str(Path(tmp) / f"{backend}-{concurrency}-{round_}")
                        figures = run_scenario(backend, folder, provider.api_base, str(CELLS), str(concurrency))
                        figures["load_1m"] = os.getloadavg()[0]
                        found.setdefault(f"{backend}_c{concurrency}", []).append(figures)
                        print(
                            f"{backend:5} c={concurrency:3} round {round_ + 1}: {figures['cells_per_s']:.0f} cells/s, "
                            f"{figures['cpu_ms_per_cell']:.2f} ms CPU/cell, peak {figures['peak_rss_mb']:.0f} MB, "
                            f"start-up {figures['startup_s']:.2f} s (load {figures['load_1m']:.1f})",
                            flush=True,
                        )
    finally:
        provider.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cells": CELLS, "latency_s": LATENCY, "runs": found}, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "scenario":
        backend, folder, api_base, cells, concurrency = sys.argv[2:7]
        os.environ.setdefault(KEY_ENV, "bench-key")
        print(json.dumps(scenario(backend, folder, api_base, int(cells), int(concurrency))))
    else:
        main()
