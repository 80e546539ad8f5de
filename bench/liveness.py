"""Liveness at every read: `Campaign.status_counts` (what `runsheet status` prints) first checks that every run
marked running still has a live runner (engine/run/lifecycle.py: reclaim_dead_runs). This measures what that check
costs on a large campaign, against the same read without it, in the same process, alternating the two (target:
within 10%).

The workspace holds BENCH_ROWS records (the largest size given; default 1,000,000) with 4 step columns, a
history of 2,000 finished runs, and one run marked running whose runner is alive (this process, its heartbeat
fresh), so the check does its whole work (the query, the pid and /proc look-up) without reclaiming anything.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPEC = """
campaign: bench
columns:
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: domain, kind: formula, expression: "lower(split_part(email, '@', 2))"}
  - {name: label, kind: formula, expression: "company || ' / ' || domain"}
  - {name: size, kind: formula, expression: "length(label)"}
  - {name: touch, kind: probe, inputs: [label], run: manual}
"""
HISTORY = 2_000  # finished runs in the log
REPEATS = 41  # pairs of reads, each pair in alternating order
RESULTS = Path(__file__).parent / "results" / "liveness.json"


def build(folder: Path, rows: int) -> tuple[object, int]:
    import polars as pl

    from engine import Workspace
    from engine.run.lifecycle import HOST

    ws = Workspace.init(folder)
    ws.apply(SPEC)
    campaign = ws.campaign("bench")
    i = pl.col("i")
    frame = pl.DataFrame({"i": pl.int_range(0, rows, eager=True)}).select(
        email=pl.format("user{}@company{}.com", i, i % 5000),
        company=pl.format("Company {}", i % 5000),
    )
    campaign.add_rows(frame, run=False)
    campaign.run()
    with ws.db.transaction() as con:
        campaign_id = int(con.execute("SELECT campaign_id FROM campaigns WHERE name = 'bench'").fetchall()[0][0])
        con.execute(
            """INSERT INTO runs (run_id, campaign_id, actor, trigger, request, status, started_at, finished_at,
                heartbeat, counts) SELECT nextval('ids'), ?, 'bench', 'cli', '{}', 'done', now(), now(), now(), '{}'
            FROM range(?)""",
            [campaign_id, HISTORY],
        )
        live = int(con.execute("SELECT nextval('ids')").fetchall()[0][0])
        con.execute(
            "INSERT INTO runs (run_id, campaign_id, actor, trigger, request, status, started_at, heartbeat, pid, host)"
            " VALUES (?, ?, 'bench', 'cli', '{}', 'running', now(), now(), ?, ?)",
            [live, campaign_id, os.getpid(), HOST],
        )
    return ws, live


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    import engine.campaign_reads
    from engine.run.lifecycle import reclaim_dead_runs

    rows = max(int(s) for s in os.environ.get("BENCH_ROWS", "1000000").split(","))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ws, live = build(Path(tmp) / "ws", rows)
        built = time.perf_counter() - started
        campaign = ws.campaign("bench")  # type: ignore[attr-defined]

        def without_check(con: object, campaign: object = None) -> list[int]:
            return []

        def read(check: bool) -> float:
            engine.campaign_reads.reclaim_dead_runs = reclaim_dead_runs if check else without_check  # type: ignore[assignment]
            try:
                return timed(campaign.status_counts)
            finally:
                engine.campaign_reads.reclaim_dead_runs = reclaim_dead_runs  # type: ignore[assignment]

        def check_alone() -> float:
            with ws.db.transaction() as con:  # type: ignore[attr-defined]
                return timed(lambda: reclaim_dead_runs(con))

        counts = campaign.status_counts()  # warm: the file opened, the tables read once
        read(True), read(False)
        with_check: list[float] = []
        without: list[float] = []
        alone: list[float] = []
        for i in range(REPEATS):
            with ws.db.transaction() as con:  # type: ignore[attr-defined]
                con.execute("UPDATE runs SET heartbeat = now() WHERE run_id = ?", [live])  # a live runner's beat
            order = (True, False) if i % 2 == 0 else (False, True)
            for check in order:
                (with_check if check else without).append(read(check))
            alone.append(check_alone())
        status = ws.runs(1)[0]["status"]  # type: ignore[attr-defined]
    assert status == "running", "the live run must not have been reclaimed"
    figures: dict[str, Any] = {
        "rows": rows,
        "runs": HISTORY + 1,
        "repeats": REPEATS,
        "build_s": built,
        "status_with_check_ms": statistics.median(with_check) * 1000,
        "status_without_check_ms": statistics.median(without) * 1000,
        "check_alone_ms": statistics.median(alone) * 1000,
        "cells_counted": sum(sum(c.values()) for c in counts.values()),
        "load": os.getloadavg(),
    }
    ratio = figures["status_with_check_ms"] / figures["status_without_check_ms"]
    figures["ratio"] = ratio
    print(f"liveness check on status, {rows:,} records x 4 step columns, {HISTORY + 1:,} runs (one live)")
    print(
        f"  Campaign.status_counts with the check: {figures['status_with_check_ms']:.2f} ms, without: "
        f"{figures['status_without_check_ms']:.2f} ms (medians of {REPEATS}, alternating); ratio {ratio:.3f}x"
        " (target <= 1.10x)"
    )
    print(f"  the check alone, inside a transaction: {figures['check_alone_ms']:.3f} ms")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in figures['load'])}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures written to {RESULTS}")


if __name__ == "__main__":
    main()
