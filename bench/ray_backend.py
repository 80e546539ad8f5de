"""The Ray backend against the local runner, side by side in one run, on the same AI column (fake provider at
200 ms), each scenario in its own process, local and Ray alternating within a round:

- the direct transport at concurrency 64 and 256 (the provider's latency caps these at 320 and 1,280 cells/s);
- the litellm transport at concurrency 64 (about 6 ms of CPU per call: one process tops out near 150-200 calls/s),
  with, as its floor, the same calls through a 64-thread pool of `litellm.completion` (bench/ai_runner.py's).

Figures per scenario: cells/s, CPU per cell over all the run's processes (the run, and for Ray its embedded
cluster: GCS, raylet, the worker actors and Ray's agents, all descendants of the run's process; the sampler's own
CPU is left out), peak memory over those processes (PSS summed: a page shared by several processes counts once;
the RSS sum, which counts it in each, beside it), the Ray workers seen, start-up (run start to the first cell
written: for Ray the cluster's start is in it, so Ray's start-up cost is its start-up less the local one's of the
same round; the cells/s after start-up beside the whole run's), and the load average (1, 5, 15 min) before and after.

`BENCH_RAY_CELLS` sets the direct scenarios' cells (default 10,000), `BENCH_RAY_CALLS` the litellm ones' (10,000),
`BENCH_RAY_ROUNDS` the rounds (2). The results file is rewritten after each scenario. Needs the optional `ray`
extra; without it the bench says so and records nothing.
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
CALLS = int(os.environ.get("BENCH_RAY_CALLS", "10000"))
ROUNDS = int(os.environ.get("BENCH_RAY_ROUNDS", "2"))
LATENCY = 0.2
KEY_ENV = "BENCH_PROVIDER_KEY"
# (transport, concurrency, the paths compared, cells): one round runs these in this order
SCENARIOS = [
    ("direct", 64, ("local", "ray"), CELLS),
    ("direct", 256, ("local", "ray"), CELLS),
    ("litellm", 64, ("pool", "local", "ray"), CALLS),
]


class TreeSampler:
    """Samples this process and its descendants: the last CPU time seen per process, the peak of the summed PSS
    and RSS, the Ray worker actors seen; less the CPU its own sampling spent."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.cpu: dict[int, float] = {}
        self.peak_pss = self.peak_rss = self.own_cpu = 0.0
        self.workers: set[int] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        import psutil

        began = time.thread_time()
        pss = rss = 0
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                times, memory = process.cpu_times(), process.memory_full_info()
                if "CallWorker" in process.name():  # Ray titles an actor's process ray::CallWorker
                    self.workers.add(process.pid)
            except psutil.Error:
                continue
            self.cpu[process.pid] = times.user + times.system
            pss, rss = pss + memory.pss, rss + memory.rss
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.own_cpu += time.thread_time() - began

    def used_cpu(self) -> float:
        return sum(self.cpu.values()) - self.own_cpu

    def _loop(self) -> None:
        while not self._done.wait(0.5):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def scenario(backend: str, transport: str, folder: str, api_base: str, cells: int, concurrency: int) -> dict[str, Any]:
    from bench.ai_runner import apply_active, spec
    from engine import RunOptions, RunProgress, Workspace

    ws = Workspace.init(folder)
    apply_active(ws, spec(api_base, transport))
    ws.add_credits(cells * 2)
    campaign = ws.campaign("bench")
    campaign.add_rows([{"company": f"company-{backend}-{transport}-{concurrency}-{i}"} for i in range(cells)])
    sampler = TreeSampler()
    sampler.sample()
    cpu_before = sampler.used_cpu()
    first: list[tuple[float, int]] = []  # when the first cells were written, and how many

    def seen(progress: RunProgress) -> None:
        if progress.done and not first:
            first.append((time.perf_counter(), progress.done))
        if progress.done >= cells - concurrency:  # the cluster's processes, before the run shuts them down
            sampler.sample()

    sampler.start()
    start = time.perf_counter()
    report = campaign.run(options=RunOptions(concurrency=concurrency, backend=backend, progress=seen))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    sampler.stop()
    sampler.sample()
    assert report.counts()["research"] == {"done": cells}, report.counts()
    (written, done), end = first[0], start + seconds
    return {
        "cells": cells,
        "seconds": seconds,
        "cells_per_s": cells / seconds,
        "cpu_ms_per_cell": (sampler.used_cpu() - cpu_before) / cells * 1000,
        "peak_pss_mb": sampler.peak_pss / 2**20,
        "peak_rss_sum_mb": sampler.peak_rss / 2**20,
        "ray_workers": len(sampler.workers),
        "startup_s": written - start,
        "sustained_cells_per_s": (cells - done) / (end - written),  # after start-up
    }


def pool_scenario(api_base: str, cells: int, threads: int) -> dict[str, Any]:
    """The floor of the litellm scenarios: the same calls through a thread pool of `litellm.completion`."""
    from bench.ai_runner import scenario_thread_pool

    found = scenario_thread_pool(api_base, cells, threads)
    cpu = found["cpu_us_per_call"] / 1000
    return {"cells": cells, "seconds": found["seconds"], "cells_per_s": found["calls_per_s"], "cpu_ms_per_cell": cpu}


def run_scenario(*args: str) -> dict[str, Any]:
    before = os.getloadavg()
    out = subprocess.run(
        [sys.executable, "-m", "bench.ray_backend", "scenario", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    found = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    return {**found, "load_before": [round(x, 2) for x in before], "load_after": [round(x, 2) for x in os.getloadavg()]}


def line(name: str, round_: int, figures: dict[str, Any]) -> str:
    text = f"{name:18} round {round_}: {figures['cells_per_s']:4.0f} cells/s"
    if "peak_pss_mb" in figures:
        text += f" ({figures['sustained_cells_per_s']:.0f} after start-up)"
    text += f", {figures['cpu_ms_per_cell']:5.2f} ms CPU/cell"
    if "peak_pss_mb" in figures:
        text += (
            f", peak {figures['peak_pss_mb']:.0f} MB PSS ({figures['peak_rss_sum_mb']:.0f} MB RSS summed), "
            f"{figures['ray_workers']} Ray workers, start-up {figures['startup_s']:.2f} s"
        )
    return text + f" (load {figures['load_before'][0]:.1f} -> {figures['load_after'][0]:.1f})"


def main() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray_backend: the optional `ray` extra is not installed (pip install -e .[ray]); nothing measured")
        return
    from tests.support.provider import start_provider

    provider = start_provider(latency=LATENCY, lifetime=7200)
    found: dict[str, list[dict[str, Any]]] = {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(1, ROUNDS + 1):
                for transport, concurrency, paths, cells in SCENARIOS:
                    for path in paths:
                        name = f"{path}_{transport}_c{concurrency}"
                        folder = str(Path(tmp) / f"{name}-{round_}")
                        args = (path, transport, folder, provider.api_base, str(cells), str(concurrency))
                        figures = run_scenario(*args)
                        found.setdefault(name, []).append(figures)
                        print(line(name, round_, figures), flush=True)
                        summary = {"cells": CELLS, "calls": CALLS, "latency_s": LATENCY, "cpus": os.cpu_count()}
                        RESULTS.write_text(json.dumps({**summary, "runs": found}, indent=2) + "\n")
    finally:
        provider.stop()
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "scenario":
        backend, transport, folder, api_base, cells, concurrency = sys.argv[2:8]
        os.environ.setdefault(KEY_ENV, "bench-key")
        if backend == "pool":
            print(json.dumps(pool_scenario(api_base, int(cells), int(concurrency))))
        else:
            print(json.dumps(scenario(backend, transport, folder, api_base, int(cells), int(concurrency))))
    else:
        main()
