"""A run taken in windows of rows (engine/run/windows.py) does what the same run in one window does: the same
cells, credits, counts and activity; an edit another process makes between two windows is kept; Stop between
windows stops the windows left; a crash between windows, then a run again, bills nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import EditError, RunOptions, RunSelection, Workspace
from engine.run.reports import RunProgress, RunReport
from engine.store.catalog import load_campaign
from engine.testing import PROBE_LEDGER

REPO = Path(__file__).resolve().parents[2]
WINDOW = 7
ROWS = 40
SPEC = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: domain, kind: formula, expression: "lower(company)"}
  - {name: fit, kind: probe, inputs: [domain], credits: 1, run_if: "company <> 'skip'"}
  - {name: fit_len, kind: formula, expression: "length(fit)"}
  - {name: again, kind: probe, inputs: [fit_len], credits: 2}
  - {name: research, kind: ai, model: offline, prompt: "Research {{ domain }}"}
"""
PAID = ("fit", "again", "research")


def company(i: int) -> str:
    return "skip" if i % 5 == 0 else f"Co{i % 11}"  # repeats: identical requests in different windows


def workspace(path: Path, window: int, spec: str = SPEC) -> Workspace:
    ws = Workspace.init(path)
    ws.apply(spec)
    for column in PAID:
        if column in ws.campaign("c").spec.names:
            ws.pause("c", column, resume=True)  # new paid steps start paused
    ws.set_setting("claim_window_rows", window)
    ws.campaign("c").add_rows([{"company": company(i)} for i in range(ROWS)])
    return ws


def cells(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    """Every step cell as stored: row, status, value, key, cost, error, whether the cache answered it."""
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "c")
        return {
            column: con.execute(
                f"SELECT row_id, status, value::VARCHAR, key, cost, error_code, cached FROM {table} ORDER BY row_id"
            ).fetchall()
            for column, table in tables.tables.items()
            if not tables.column(column).is_input
        }


def ledger(ws: Workspace) -> dict[str, Any]:
    """What a run leaves in the history: activity per column and outcome, runs, the balance."""
    with ws.db.transaction(commit=False) as con:
        activity = con.execute(
            "SELECT column_name, outcome, sum(cells), sum(cost), count(*) FILTER (WHERE cached) FROM activity "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        # `total` counts the cells handed to the runner: a later window finds a repeat of an earlier window's
        # request answered in the memo at once (not handed over), where one window hands every repeat over
        runs = con.execute(
            "SELECT status, total = done, credits, cache_hits, credits_saved FROM runs ORDER BY run_id"
        ).fetchall()
    return {"activity": activity, "runs": runs, "credits": ws.credits()}


def _totals(seen: list[int]) -> Callable[[RunProgress], None]:
    """A progress callback noting the run's total each time (it grows with each window's claims)."""
    return lambda progress: seen.append(progress.total)


def counts(report: RunReport) -> dict[str, dict[str, int]]:
    return {column: dict(outcomes) for column, outcomes in report.counts().items()}


SELECTIONS = {
    "all": RunSelection(),
    "rows": RunSelection.of(rows=[2, 3, 5, 8, 9, 13, 21, 22, 23, 24, 25, 26, 27, 28, 29, 34, 35, 40]),
    "limit": RunSelection.of(limit=30),
}


@pytest.mark.parametrize("chosen", sorted(SELECTIONS))
def test_many_windows_do_what_one_window_does(tmp_path: Path, chosen: str) -> None:
    totals: dict[int, list[int]] = {}
    found = {}
    for window in (1_000, WINDOW):
        ws = workspace(tmp_path / str(window), window)
        seen = totals[window] = []
        report = ws.campaign("c").run(SELECTIONS[chosen], options=RunOptions(progress=_totals(seen)))
        # Run Again of every research cell: repeated prompts are asked once in the run, whatever the window
        again = ws.campaign("c").run(["research"], force=True)
        found[window] = (cells(ws), ledger(ws), counts(report), counts(again), report.status, again.status)
    assert found[WINDOW] == found[1_000]
    assert len(set(totals[WINDOW])) > 2 and len(set(totals[1_000])) <= 2, totals  # it did take many windows
    research = found[WINDOW][0]["research"]
    assert any(cached for *_, cached in research), "no repeated request was answered once for the run"


def test_an_edit_between_windows_is_kept(tmp_path: Path) -> None:
    """Another process edits a row already claimed and a row not yet planned, while the run goes: both end
    computed from the edited value, each cell computed once."""
    ws = workspace(tmp_path / "ws", WINDOW)
    PROBE_LEDGER.clear()
    edited = {3: "Edited3", ROWS - 1: "Edited39"}  # row 3: in the first window; row 39: in the last

    def edit(progress: RunProgress) -> None:
        if edit.done:  # type: ignore[attr-defined]
            return
        edit.done = True  # type: ignore[attr-defined]
        for row, value in edited.items():
            subprocess.run(
                [sys.executable, "-m", "engine.cli", "set", "c", str(row), "company", value],
                cwd=REPO,
                env={**os.environ, "RUNSHEET_WORKSPACE": str(ws.path)},
                check=True,
                capture_output=True,
            )

    edit.done = False  # type: ignore[attr-defined]
    report = ws.campaign("c").run(options=RunOptions(progress=edit))
    assert report.status == "done"
    stored = {row: dict(zip(("company", "domain", "fit"), values, strict=True)) for row, *values in _rows(ws)}
    for row, value in edited.items():
        assert stored[row]["company"] == value
        assert stored[row]["domain"] == value.lower()
        assert stored[row]["fit"] == f"probe({value}|{value.lower()})", (row, stored[row])
    calls = Counter(PROBE_LEDGER.calls)
    assert calls[("fit", ROWS - 1)] == 0, "the edit's own run computed it: the run must not compute it again"
    assert all(n == 1 for n in calls.values()), [c for c, n in calls.items() if n > 1]
    assert not _running(ws)


def test_stop_between_windows_stops_the_windows_left(tmp_path: Path) -> None:
    spec = SPEC.split("  - {name: fit_len")[0]
    ws = workspace(tmp_path / "ws", WINDOW, spec)
    PROBE_LEDGER.clear()
    stopper = Workspace(ws.path)
    first: list[int] = []

    def stop_after_first_window(progress: RunProgress) -> None:
        first.append(progress.total)
        if progress.done == first[0] and progress.done:
            stopper.stop_run(progress.run_id)  # what the UI's Stop does: the durable flag and the stop file

    report = ws.campaign("c").run(options=RunOptions(progress=stop_after_first_window))
    assert report.status == "stopped"
    rows = {row for _, row in PROBE_LEDGER.calls}
    assert rows and max(rows) <= WINDOW, sorted(rows)  # nothing past the first window was computed
    fit = dict((row, status) for row, status, *_ in cells(ws)["fit"])
    assert {fit[r] for r in range(1, WINDOW + 1) if company(r - 1) != "skip"} == {"done"}
    assert {fit[r] for r in range(WINDOW + 1, ROWS + 1) if company(r - 1) != "skip"} == {"queued"}
    assert not _running(ws)


CRASH_AFTER_SECOND_WINDOW = """
import os, sys
from engine import RunOptions, Workspace
totals = []
def progress(p):
    totals.append(p.total)
    if len(set(totals)) >= 2:  # the second window is claimed: die before computing it
        os._exit(9)
Workspace(sys.argv[1]).campaign("c").run(options=RunOptions(progress=progress))
"""


def test_a_crash_between_windows_then_a_run_again_bills_nothing_twice(tmp_path: Path) -> None:
    spec = SPEC.split("  - {name: again")[0]
    ws = workspace(tmp_path / "ws", WINDOW, spec)
    ws.release()
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_SECOND_WINDOW, str(ws.path)], cwd=REPO, capture_output=True
    )
    assert crashed.returncode == 9, crashed.stderr.decode()
    spent_before = 1000 - ws.credits()
    assert 0 < spent_before < ROWS  # the first window was billed, not the rest
    report = ws.campaign("c").run()
    assert report.status == "done"
    with ws.db.transaction(commit=False) as con:
        statuses = [s for (s,) in con.execute("SELECT status FROM runs WHERE total > 0 ORDER BY run_id").fetchall()]
    assert statuses == ["interrupted", "done"], statuses
    billed = sum(1 for i in range(ROWS) if company(i) != "skip")
    assert 1000 - ws.credits() == billed, "a cell was billed twice"
    assert {status for _, status, *_ in cells(ws)["fit"]} == {"done", "skipped"}
    assert not _running(ws)


def _rows(ws: Workspace) -> list[tuple[Any, ...]]:
    frame = ws.campaign("c").values()
    return list(zip(frame["row_id"], frame["company"], frame["domain"], frame["fit"], strict=True))


def _running(ws: Workspace) -> list[tuple[str, int]]:
    return [(c, row) for c, rows in cells(ws).items() for row, status, *_ in rows if status == "running"]


def test_window_settings_are_checked(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    for key, bad in (("claim_window_rows", 0), ("claim_window_rows", 2.5), ("claim_window_seconds", 0)):
        with pytest.raises(EditError, match=key):
            ws.set_setting(key, bad)
    assert ws.set_setting("claim_window_rows", 7).claim_window_rows == 7
