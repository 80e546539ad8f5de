"""One request, one bill (issue 13, item 8): 10,000 rows whose prompts repeat (100 distinct) against 10,000 rows
whose prompts are all distinct, side by side in one run, the fake provider answering in 200 ms at concurrency 64
(the all-distinct campaign is capped by the provider's latency at 64 / 0.2 s = 320 calls/s, about 31 s).

For each: the dry run's estimate (calls, hits, credits), then the run's provider requests (counted by the
provider itself), credits, cache hits and wall time; then Run Again over the repeated campaign, which bypasses
the cache but must still send each distinct request once. `BENCH_ONE_BILL_QUICK=1` shrinks the sizes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "one_bill.json"
QUICK = bool(os.environ.get("BENCH_ONE_BILL_QUICK"))
ROWS = 2_000 if QUICK else 10_000
DISTINCT = 100
LATENCY = 0.2
CONCURRENCY = 64
KEY_ENV = "BENCH_PROVIDER_KEY"


def spec(api_base: str, name: str) -> str:
    return f"""
campaign: {name}
columns:
  - {{name: company, kind: input}}
  - name: research
    kind: ai
    model: openai/fake-model
    api_base: {api_base}
    api_key_env: {KEY_ENV}
    transport: direct
    tier: fast
    prompt: "Research {{{{ company }}}}"
"""


def requests_seen(provider: Any) -> int:
    return int(provider.ledger()["requests"])


def scenario(ws: Any, provider: Any, name: str, distinct: int, *, force: bool = False) -> dict[str, float]:
    """Estimate, then run (or Run Again) `name`'s research column; figures counted by the provider."""
    from engine import RunOptions

    campaign = ws.campaign(name)
    columns = ["research"] if force else None
    estimate = {c.column: c for c in campaign.estimate(columns, force=force).columns}["research"]
    before = requests_seen(provider)
    start = time.perf_counter()
    report = campaign.run(columns, force=force, options=RunOptions(concurrency=CONCURRENCY))
    seconds = time.perf_counter() - start
    run = ws.runs(1)[0]
    assert report.counts()["research"] == {"done": ROWS}, report.counts()
    return {
        "rows": ROWS,
        "distinct_prompts": distinct,
        "estimated_calls": estimate.calls - estimate.cache_hits,
        "estimated_credits": estimate.credits,
        "provider_requests": requests_seen(provider) - before,
        "credits": float(run["credits"]),
        "cache_hits": float(run["cache_hits"]),
        "seconds": seconds,
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    os.environ.setdefault(KEY_ENV, "k")
    from engine import Workspace
    from tests.support.provider import start_provider

    provider = start_provider(latency=LATENCY)
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace.init(Path(tmp) / "ws")
            ws.add_credits(ROWS * 3)
            for name, distinct in (("repeated", DISTINCT), ("distinct", ROWS)):
                applied = ws.apply(spec(provider.api_base, name))
                for column in getattr(applied, "paused", []):  # new paid steps wait for consent (item 11)
                    ws.resume(name, column, run=False)
                # row i asks company i % distinct: each repeated prompt's rows are spread over the whole run
                ws.campaign(name).add_rows([{"company": f"{name}-{i % distinct}"} for i in range(ROWS)])
            results["repeated_100"] = scenario(ws, provider, "repeated", DISTINCT)
            results["all_distinct"] = scenario(ws, provider, "distinct", ROWS)
            results["repeated_100_run_again"] = scenario(ws, provider, "repeated", DISTINCT, force=True)
    finally:
        provider.stop()
    results["load"] = {"loadavg_1m": os.getloadavg()[0], "cpus": float(os.cpu_count() or 0)}
    for label, found in results.items():
        if label == "load":
            continue
        print(
            f"{label}: {found['rows']:,} rows, {found['distinct_prompts']:,} distinct prompts at "
            f"{LATENCY * 1000:.0f} ms, concurrency {CONCURRENCY}: {found['provider_requests']:,} provider requests "
            f"(estimated {found['estimated_calls']:,}), {found['credits']:g} credits "
            f"(estimated {found['estimated_credits']:g}), {found['cache_hits']:,.0f} hits, {found['seconds']:.2f} s",
            flush=True,
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
