"""The paid runner against the fake provider (200 ms per call), side by side in one run:

- 10,000 cells at concurrency 64 (the provider's latency caps this at 64 / 0.2 s = 320 calls/s): target >= 90%;
- 10,000 cells at concurrency 256 (cap 1,280/s): target >= 600 calls/s, goal 1,000;
- the same 10,000 calls through a 64-thread pool of `litellm.completion` (how LOTUS and DocETL run bulk calls),
  and through our runner on the litellm transport: calls/s and CPU microseconds per call;
- a rerun of 100,000 fully cached cells: provider calls (must be 0) and seconds (target <= 3 s);
- peak RSS of a 1,000,000-cell run on the offline model (target <= 1.5 GB).

Each scenario runs in its own process so CPU time and peak memory are its own. `BENCH_AI_QUICK=1` shrinks sizes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "ai_runner.json"
ProviderHandle = Any  # tests.support.provider.ProviderProcess, imported lazily (tests/ is not a package dependency)
QUICK = bool(os.environ.get("BENCH_AI_QUICK"))
CELLS = 2_000 if QUICK else 10_000
CACHED = 10_000 if QUICK else 100_000
MILLION = 50_000 if QUICK else 1_000_000
LATENCY = 0.2
KEY_ENV = "BENCH_PROVIDER_KEY"


def spec(api_base: str, transport: str, model: str = "openai/fake-model") -> str:
    return f"""
campaign: bench
columns:
  - {{name: company, kind: input}}
  - name: research
    kind: ai
    model: {model}
    api_base: {api_base}
    api_key_env: {KEY_ENV}
    transport: {transport}
    tier: fast
    prompt: "Research {{{{ company }}}}"
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def apply_active(ws: Any, spec_text: str) -> None:
    """Apply a spec and resume the paid steps it added paused (new paid steps start paused: nothing is billed
    before someone turns them on), so the run computes them."""
    result = ws.apply(spec_text)
    for column in result.paused:
        ws.resume(result.campaign, column, run=False)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scenario_runner(folder: str, api_base: str, transport: str, cells: int, concurrency: int) -> dict[str, float]:
    from engine import RunOptions, Workspace

    ws = Workspace.init(folder)
    apply_active(ws, spec(api_base, transport))
    ws.add_credits(cells * 2)
    campaign = ws.campaign("bench")
    campaign.add_rows([{"company": f"company-{transport}-{concurrency}-{i}"} for i in range(cells)])
    cpu, start = cpu_seconds(), time.perf_counter()
    report = campaign.run(options=RunOptions(concurrency=concurrency))
    seconds, used = time.perf_counter() - start, cpu_seconds() - cpu
    done = report.counts()["research"].get("done", 0)
    assert done == cells, report.counts()
    return throughput(cells, seconds, used)


def throughput(cells: int, seconds: float, cpu_used: float) -> dict[str, float]:
    """The figures a throughput scenario reports: calls per second and CPU microseconds per call."""
    per_call = cpu_used / cells * 1e6
    return {"cells": cells, "seconds": seconds, "calls_per_s": cells / seconds, "cpu_us_per_call": per_call}


def scenario_thread_pool(api_base: str, cells: int, threads: int) -> dict[str, float]:
    """The same calls through a thread pool of `litellm.completion`, set up as our runner is: each attempt has the
    AI step's wall-clock deadline (`timeout`, 60 s by default) and a failed attempt is tried again, up to 3 times.
    Without a timeout an attempt waits up to litellm's default of 600 s: the figure recorded before issue 16,
    16 calls/s, was 10,000 calls in 630 s, i.e. about 30 s of calls at the provider's cap plus (most likely) one
    attempt on a connection that never answered, waiting out those 600 s (an answered attempt takes seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.cells.ai import AiOptions
    from engine.llm.litellm_transport import litellm_module

    litellm = litellm_module()
    deadline = float(AiOptions.model_fields["timeout"].default)
    failures: list[BaseException] = []
    slowest = [0.0]

    def call(i: int) -> str:
        for _attempt in range(3):  # a dropped connection under load is retried, as our runner does
            started = time.perf_counter()
            try:
                response = litellm.completion(
                    model="openai/fake-model",
                    api_base=api_base,
                    api_key="k",
                    num_retries=0,
                    max_retries=0,
                    timeout=deadline,
                    messages=[{"role": "user", "content": f"Research company-pool-{i}"}],
                )
                return str(response.choices[0].message.content)
            except Exception as error:  # noqa: BLE001
                failures.append(error)
            finally:
                slowest[0] = max(slowest[0], time.perf_counter() - started)
        raise RuntimeError(f"call {i} failed 3 times: {failures[-1]}")

    cpu, start = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(call, range(cells)))
    seconds, used = time.perf_counter() - start, cpu_seconds() - cpu
    assert len(answers) == cells
    return {**throughput(cells, seconds, used), "retried_attempts": len(failures), "slowest_attempt_s": slowest[0]}


def scenario_cached(folder: str, api_base: str, cells: int) -> dict[str, float]:
    """Fill the cache through one campaign (provider at 0 latency), then time a second campaign whose every
    prompt is already cached."""
    from engine import RunOptions, Workspace

    ws = Workspace.init(folder)
    ws.add_credits(cells * 2)
    records = [{"company": f"company-cached-{i}"} for i in range(cells)]
    apply_active(ws, spec(api_base, "direct"))
    ws.campaign("bench").add_rows(records)
    ws.campaign("bench").run(options=RunOptions(concurrency=256))
    apply_active(ws, spec(api_base, "direct").replace("campaign: bench", "campaign: rerun"))
    rerun = ws.campaign("rerun")
    rerun.add_rows(records)
    start = time.perf_counter()
    report = rerun.run()
    seconds = time.perf_counter() - start
    run = ws.runs(1)[0]
    assert report.counts()["research"] == {"done": cells}, report.counts()
    return {
        "cells": cells,
        "seconds": seconds,
        "cache_hits": float(run["cache_hits"]),
        "credits": float(run["credits"]),
    }


def scenario_million_build(folder: str, cells: int) -> dict[str, float]:
    """The records of the million-cell run, added in a process of their own (its memory is not the run's)."""
    import polars as pl

    from engine import Workspace

    ws = Workspace.init(folder)
    apply_active(ws, spec("http://unused", "direct", model="offline"))
    records = pl.DataFrame({"i": pl.int_range(0, cells, eager=True)}).select(company=pl.format("company-{}", "i"))
    ws.campaign("bench").add_rows(records)
    return {"cells": cells, "peak_rss_mb": peak_rss_mb()}


def scenario_million(folder: str, cells: int) -> dict[str, float]:
    from engine import RunOptions, Workspace

    campaign = Workspace(folder).campaign("bench")
    start = time.perf_counter()
    report = campaign.run(options=RunOptions(concurrency=64))
    seconds = time.perf_counter() - start
    assert report.counts()["research"]["done"] == cells
    return {"cells": cells, "seconds": seconds, "cells_per_s": cells / seconds, "peak_rss_mb": peak_rss_mb()}


def scenario_stop(folder: str, api_base: str) -> dict[str, float]:
    """Stop a run whose 64 calls in flight each take 5 s: how long until it has returned, nothing in flight."""
    import threading

    from engine import RunOptions, Workspace

    ws = Workspace.init(folder)
    apply_active(ws, spec(api_base, "direct").replace('prompt: "Research', 'prompt: "[[fake:latency:5]] Research'))
    campaign = ws.campaign("bench")
    campaign.add_rows([{"company": f"company-stop-{i}"} for i in range(1_000)])
    finished: dict[str, float] = {}

    def seen(progress: object) -> None:
        finished["last_result"] = time.perf_counter()  # the cancelled calls report in as they end

    def run() -> None:
        campaign.run(options=RunOptions(concurrency=64, progress=seen))
        finished["at"] = time.perf_counter()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(2.0)
    run_id = int(ws.active_runs("bench")[0]["run_id"])
    asked = time.perf_counter()
    ws.stop_run(run_id)
    worker.join()
    return {"seconds_to_cancel": finished["last_result"] - asked, "seconds_to_stop": finished["at"] - asked}


def run_scenario(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ai_runner", *args],
        capture_output=True,
        text=True,
        env={**os.environ, KEY_ENV: "k"},
        cwd=Path(__file__).parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"scenario {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.support.provider import start_provider

    only = set(filter(None, os.environ.get("BENCH_AI_ONLY", "").split(",")))  # e.g. BENCH_AI_ONLY=pool,stop
    results: dict[str, dict[str, float]] = json.loads(RESULTS.read_text()) if only and RESULTS.exists() else {}
    slow = start_provider(latency=LATENCY)
    fast = start_provider(latency=0.0)
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("direct", "litellm", "pool", "cached", "stop", "million"):
                if not only or name in only:
                    SCENARIOS[name](results, Path(tmp), slow.api_base, fast)
    finally:
        slow.stop()
        fast.stop()
    load_after = os.getloadavg()
    results["load_average"] = {"before_1min": load_before[0], "after_1min": load_after[0], "after_5min": load_after[1]}
    print(f"load average: {load_before[0]:.1f} before, {load_after[0]:.1f} after (5 min: {load_after[1]:.1f})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"written to {RESULTS}")


def _direct(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    for concurrency in (64, 256):
        cap = concurrency / LATENCY
        found = run_scenario("runner", str(tmp / f"direct{concurrency}"), slow, "direct", str(CELLS), str(concurrency))
        found["share_of_cap"] = found["calls_per_s"] / cap
        results[f"runner_direct_c{concurrency}"] = found
        print(
            f"runner, direct, concurrency {concurrency}: {found['calls_per_s']:.0f} calls/s "
            f"({found['share_of_cap']:.0%} of the {cap:.0f}/s cap), {found['cpu_us_per_call']:.0f} us CPU/call",
            flush=True,
        )


def _litellm(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    found = run_scenario("runner", str(tmp / "litellm64"), slow, "litellm", str(CELLS), "64")
    results["runner_litellm_c64"] = found
    print(
        f"runner, litellm transport, concurrency 64: {found['calls_per_s']:.0f} calls/s, "
        f"{found['cpu_us_per_call']:.0f} us CPU/call",
        flush=True,
    )


def _pool(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    found = run_scenario("pool", slow, str(CELLS), "64")
    results["litellm_thread_pool_64"] = found
    line = (
        f"64-thread pool of litellm.completion: {found['calls_per_s']:.0f} calls/s, "
        f"{found['cpu_us_per_call']:.0f} us CPU/call ({found['retried_attempts']:.0f} attempts retried, "
        f"slowest attempt {found['slowest_attempt_s']:.1f} s)"
    )
    for name in ("runner_direct_c64", "runner_litellm_c64"):
        if name in results:
            ours = results[name]
            line += (
                f"; {name}: {ours['calls_per_s'] / found['calls_per_s']:.2f}x the pool's calls/s, "
                f"{found['cpu_us_per_call'] / ours['cpu_us_per_call']:.1f}x less CPU per call"
            )
    print(line, flush=True)


def _cached(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    before = len(fast.ledger()["billed"])
    found = run_scenario("cached", str(tmp / "cached"), fast.api_base, str(CACHED))
    found["provider_calls"] = float(len(fast.ledger()["billed"]) - before - CACHED)
    results["cached_rerun"] = found
    print(
        f"rerun of {CACHED:,} cached cells: {found['seconds']:.2f} s (target <= 3 s), "
        f"{found['provider_calls']:.0f} provider calls, {found['credits']:g} credits",
        flush=True,
    )


def _stop(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    found = run_scenario("stop", str(tmp / "stop"), fast.api_base)
    results["stop"] = found
    print(
        f"Stop with 64 calls in flight: all cancelled {found['seconds_to_cancel']:.2f} s after the request "
        f"(target <= 2 s); the run had returned, its cells given back, after {found['seconds_to_stop']:.2f} s",
        flush=True,
    )


def _million(results: dict[str, dict[str, float]], tmp: Path, slow: str, fast: ProviderHandle) -> None:
    run_scenario("million_build", str(tmp / "million"), str(MILLION))
    found = run_scenario("million", str(tmp / "million"), str(MILLION))
    results["million_offline"] = found
    print(
        f"{MILLION:,}-cell run on the offline model: {found['seconds']:.0f} s ({found['cells_per_s']:.0f} cells/s), "
        f"peak RSS {found['peak_rss_mb']:.0f} MB (target <= 1,500)",
        flush=True,
    )


SCENARIOS = {
    "direct": _direct,
    "litellm": _litellm,
    "pool": _pool,
    "cached": _cached,
    "stop": _stop,
    "million": _million,
}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        name, *rest = sys.argv[1:]
        if name == "runner":
            figures = scenario_runner(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        elif name == "pool":
            figures = scenario_thread_pool(rest[0], int(rest[1]), int(rest[2]))
        elif name == "cached":
            figures = scenario_cached(rest[0], rest[1], int(rest[2]))
        elif name == "stop":
            figures = scenario_stop(rest[0], rest[1])
        elif name == "million_build":
            figures = scenario_million_build(rest[0], int(rest[1]))
        elif name == "million":
            figures = scenario_million(rest[0], int(rest[1]))
        else:
            raise SystemExit(f"unknown scenario {name}")
        print(json.dumps(figures))
    else:
        main()
