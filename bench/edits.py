"""Edits near the floor: one input edit at a million records, warm and in process (`Campaign.set`), against the
floor: the same edit written by hand as two UPDATEs, measured alternately in the same process on the same workspace.

    python -m bench.edits          (BENCH_EDIT_ROWS=1000000 by default; BENCH_EDITS_WORKSPACE=<folder> measures
                                    a copy of a workspace bench/reactive_core.py's build made, instead of building)

The campaign is bench/reactive_core.py's: 4 inputs, 7 formulas, one probe. Each edit types a new email into a
different row, so the engine rewrites domain, score, tier and greeting (label keeps its value, so the probe does
not run), logs the edit (old and new value) and its run. The floor is what a hand-written program must do at the
least for the same edit: in one transaction on the same open connection of the file, UPDATE the input cell, and
UPDATE the first formula that reads it (value and key, computed in SQL from the new input). Both pay for their
commits, and for folding the write-ahead log when a commit finds it past its threshold (engine/store/database.py).

Figures: medians of wall time and of CPU time per edit, the engine's time over the floor's, and the calls into
DuckDB per edit (statements and Arrow registrations, counted at the connection each transaction runs on).
Targets (issue 16): median <= 20 ms and <= 3x the floor. Timing is noisy on a shared machine: the load average
is printed beside the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EDITS = 40  # pairs (engine, floor), alternating which goes first
WARM = 3
RESULTS = Path(__file__).parent / "results" / "edits.json"
TARGET_MS, TARGET_RATIO = 20.0, 3.0


class _Counting:
    """The connection a transaction runs on, counting the calls that reach DuckDB."""

    COUNTED = frozenset({"execute", "executemany", "sql", "query", "register", "unregister", "from_arrow"})

    def __init__(self, con: Any, calls: list[str]) -> None:
        self._con, self._calls = con, calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._con, name)
        if name not in self.COUNTED:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return found(*args, **kwargs)

        return counted


def measure(folder: Path, rows: int) -> dict[str, Any]:
    """Time EDITS edits by the engine and EDITS by the floor, alternating, in this process."""
    from engine import Workspace
    from engine.store.cells import key_expression
    from engine.store.database import Database

    calls: list[str] = []
    begin = Database._begin
    Database._begin = lambda self: _Counting(begin(self), calls)  # type: ignore[method-assign]
    campaign = Workspace(folder).campaign("bench")
    database = Database(folder / "runsheet.duckdb")
    with database.transaction() as con:
        tables = dict(con.execute("SELECT name, table_name FROM columns").fetchall())
    domain = campaign.spec.column("domain")
    key = key_expression(domain.version, ["e.value"])
    floor_sql = (
        f"UPDATE {tables['domain']} d SET value = lower(split_part(e.value, '@', 2)), key = {key}, "
        f"finished_at = now() FROM {tables['email']} e WHERE d.row_id = $1 AND e.row_id = $1 RETURNING d.value"
    )

    def engine_edit(row: int, email: str) -> None:
        campaign.set(row, "email", email)

    def floor_edit(row: int, email: str) -> None:
        with database.transaction() as con:
            con.execute(f"UPDATE {tables['email']} SET value = $2 WHERE row_id = $1", [row, email])
            written = con.execute(floor_sql, [row]).fetchall()
        assert written == [(email.split("@")[1].lower(),)], written  # the floor did the edit it stands for

    step = max(rows // (EDITS + WARM + 2), 4)
    figures: dict[str, dict[str, list[float]]] = {s: {"wall": [], "cpu": [], "calls": []} for s in ("engine", "floor")}
    for k in range(WARM + EDITS):
        base = 1 + k * step
        order = [("engine", engine_edit, base), ("floor", floor_edit, base + 1)]
        for side, edit, row in order if k % 2 == 0 else order[::-1]:
            email = f"edited{k}.{time.time_ns()}@new{k}.example"
            calls.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            edit(row, email)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if k >= WARM:
                figures[side]["wall"].append(wall)
                figures[side]["cpu"].append(cpu)
                figures[side]["calls"].append(len(calls))
    # the engine's edits did what an edit does: the row's downstream is fresh, the edit logged with its values
    last = 1 + (WARM + EDITS - 1) * step
    assert campaign.cell(last, "greeting").status.value == "done"
    assert campaign.cell(last, "greeting").value.endswith(f"new{WARM + EDITS - 1}.example")
    return {
        side: {
            "median_ms": statistics.median(f["wall"]) * 1000,
            "mean_ms": statistics.fmean(f["wall"]) * 1000,
            "cpu_median_ms": statistics.median(f["cpu"]) * 1000,
            "calls": statistics.median(f["calls"]),
        }
        for side, f in figures.items()
    }


def build(folder: Path, rows: int) -> None:
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from bench.reactive_core import build; from pathlib import Path; build(Path({str(folder)!r}), {rows})",
        ],
        check=True,
        cwd=Path(__file__).parent.parent,
    )


def main() -> None:
    rows = int(os.environ.get("BENCH_EDIT_ROWS", "1000000"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        given = os.environ.get("BENCH_EDITS_WORKSPACE")
        started = time.perf_counter()
        if given:
            shutil.copytree(given, folder)
        else:
            build(folder, rows)
        print(f"edits: workspace of {rows:,} records ready in {time.perf_counter() - started:.0f} s", flush=True)
        load_before = os.getloadavg()
        done = subprocess.run(
            [sys.executable, "-m", "bench.edits", "--measure", str(folder), str(rows)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        load_after = os.getloadavg()
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    ours, floor = figures["engine"], figures["floor"]
    ratio = ours["median_ms"] / floor["median_ms"]
    figures["ratio"] = ratio
    figures["cpu_ratio"] = ours["cpu_median_ms"] / floor["cpu_median_ms"]
    figures["load"] = {"before": load_before[0], "after": load_after[0]}
    figures["rows"] = rows
    print(f"edit one input cell at {rows:,} records, warm, in process; {EDITS} edits each, alternating")
    print(f"  load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    for side, what in (("engine", "Campaign.set"), ("floor", "two hand-written UPDATEs")):
        f = figures[side]
        print(
            f"  {what:26s} median {f['median_ms']:6.1f} ms (mean {f['mean_ms']:.1f}), "
            f"CPU {f['cpu_median_ms']:.1f} ms, {f['calls']:.0f} calls into DuckDB"
        )
    print(
        f"  engine/floor: {ratio:.2f}x wall, {figures['cpu_ratio']:.2f}x CPU"
        f"  (targets: median <= {TARGET_MS:g} ms: {'met' if ours['median_ms'] <= TARGET_MS else 'NOT met'};"
        f" <= {TARGET_RATIO:g}x the floor: {'met' if ratio <= TARGET_RATIO else 'NOT met'})"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures written to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
