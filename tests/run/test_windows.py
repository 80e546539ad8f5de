"""A run taken in windows of rows (engine/run/windows.py) does what the same run in one window does: the same
cells, credits, counts and activity; an edit another process makes between two windows is kept; Stop between
windows stops the windows left; a crash between windows, then a run again, bills nothing twice. The dry run
(estimate) and the schedules' look for work go window by window too, with the same answers."""

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
from engine import estimate as estimate_module
from engine.run.reports import RunProgress, RunReport
from engine.run.windows import Windows
from engine.schedules import _has_work
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
PAID = ("fit", "again", "research", "brief")


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
    # steps asked for by name on some rows: what their results feed (again, where fit was computed) follows alike
    # in every window, whether research's repeats were claimed or answered from an earlier window's memo
    "columns": RunSelection.of(columns=["fit", "research"], rows=range(1, 21)),
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


def test_what_results_feed_follows_the_cells_computed_and_no_others(tmp_path: Path) -> None:
    """A run of fit and research: `again` (fed by fit) runs where fit was computed, and stays queued on the rows
    run_if skipped fit on, where only research was computed (a row's research is no edit of its fit)."""
    ws = workspace(tmp_path / "ws", 1_000)
    ws.campaign("c").run(["fit", "research"], rows=range(1, 21))
    again = {row: status for row, status, *_ in cells(ws)["again"] if row <= 20}
    skipped = {row for row in again if company(row - 1) == "skip"}
    assert skipped == {1, 6, 11, 16}
    assert {row: status for row, status in again.items() if row in skipped} == dict.fromkeys(skipped, "queued")
    assert set(again.values()) - {"queued"} == {"done"} and sum(s == "done" for s in again.values()) == 16


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


def test_window_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace(tmp_path / "ws", WINDOW)
    taken = _count_windows(monkeypatch)
    windowed = ws.campaign("c").estimate().as_dict()
    assert len(taken) == -(-ROWS // WINDOW)
    bad_values = (("claim_window_rows", 0), ("claim_window_rows", 2.5), ("claim_window_seconds", 0))
    for key, bad in bad_values + (("claim_window_rows", -7), ("claim_window_seconds", "1")):
        with pytest.raises(EditError, match=key):
            ws.set_setting(key, bad)
    settings = ws.settings()
    assert (settings.claim_window_rows, settings.claim_window_seconds) == (WINDOW, 1.0)  # the refusals changed nothing
    taken.clear()
    assert ws.campaign("c").estimate().as_dict() == windowed and len(taken) == -(-ROWS // WINDOW)
    assert ws.set_setting("claim_window_rows", 1_000).claim_window_rows == 1_000
    taken.clear()
    assert ws.campaign("c").estimate().as_dict() == windowed and not taken


# The estimate's spec: fit fails for co4 (cells in error), brief is an auto-run step downstream of fit whose run_if
# reads an input (decided now, when fit is run again).
ESTIMATED = SPEC.replace("run_if: \"company <> 'skip'\"}", "run_if: \"company <> 'skip'\", fail_on: co4}") + (
    """  - {name: brief, kind: probe, inputs: [fit], credits: 1, run_if: "company <> 'Co2'"}\n"""
)


def _count_windows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the windows taken from here on (each call of Windows.next)."""
    taken: list[int] = []
    take = Windows.next

    def counted(self: Windows, *args: Any) -> Any:
        taken.append(1)
        return take(self, *args)

    monkeypatch.setattr(Windows, "next", counted)
    return taken


def _estimates(ws: Workspace) -> dict[str, Any]:
    """Every kind of estimate, each as the face shows it (calls, hits, credits, tokens, per column, budget,
    retries and errors)."""
    campaign = ws.campaign("c")
    found = {name: campaign.estimate(selection).as_dict() for name, selection in SELECTIONS.items()}
    found["fit again"] = campaign.estimate(["fit"], force=True).as_dict()
    found["research again"] = campaign.estimate(["research"], force=True).as_dict()
    found["errors"] = campaign.estimate(RunSelection(errors=True)).as_dict()
    found["capped"] = campaign.estimate(max_credits=5).as_dict()
    return found


def test_an_estimate_over_many_windows_equals_the_one_window_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, taken = {}, {}
    for window in (1_000, WINDOW):
        ws = workspace(tmp_path / str(window), window, ESTIMATED)
        counted = _count_windows(monkeypatch)
        before = _estimates(ws)  # every cell queued
        ws.set_setting("claim_window_rows", 1_000)  # the same cells to estimate from in both workspaces
        ws.campaign("c").run()
        ws.set_setting("claim_window_rows", window)
        # Run Again of fit: the answers of again and brief downstream run again (brief's where its run_if holds)
        fit_again = ws.campaign("c").estimate(["fit"], force=True).as_dict()
        ws.set_setting("claim_window_rows", 1_000)
        ws.campaign("c").add_rows([{"company": company(i)} for i in range(5)])  # repeats: answers in the cache
        ws.set_setting("claim_window_rows", window)
        after = _estimates(ws)
        taken[window] = len(counted)
        found[window] = (before, fit_again, after, cells(ws))
    assert found[WINDOW] == found[1_000]
    assert taken[1_000] == 0 and taken[WINDOW] > 2 * 10, taken  # many windows for each estimate of many rows
    before, fit_again, after, _ = found[WINDOW]
    assert before["all"]["calls"] and before["all"]["cache_hits"], before["all"]  # repeats asked once
    assert after["all"]["cache_hits"] >= 5, after["all"]  # the new rows repeat answers in the cache
    # fit fails for co4 (rows 5, 27, 38; row 16 is skipped), and the three steps downstream of it on those rows
    assert after["all"]["errors"] == {"provider_error": 3, "upstream_error": 9}, after["all"]
    assert after["errors"]["retries"] == after["all"]["errors"], after["errors"]
    downstream = {c["column"]: c["calls"] for c in fit_again["columns"] if c["downstream"]}
    assert 0 < downstream["brief"] < downstream["again"], fit_again  # brief's run_if is false for Co2
    assert {c["column"]: c["calls"] for c in after["errors"]["columns"] if c["downstream"]}, after["errors"]
    assert after["capped"]["budget"]["covered"] < after["capped"]["budget"]["calls"], after["capped"]


EDIT = [sys.executable, "-m", "engine.cli", "set", "c", "36", "company", "Fresh", "--no-run"]


def test_an_edit_between_an_estimates_windows_is_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process edits a row of the last window after the first window was estimated: it gets the
    workspace, and the estimate counts the row as edited (as if the edit came first, which it did for that row)."""
    one = workspace(tmp_path / "one", 1_000)
    ws = workspace(tmp_path / "ws", WINDOW)
    unedited = one.campaign("c").estimate()
    subprocess.run(EDIT, cwd=REPO, env={**os.environ, "RUNSHEET_WORKSPACE": str(one.path)}, check=True)
    edited_first = one.campaign("c").estimate()
    took = Windows.took

    def edit_after_the_first_window(self: Windows, seconds: float) -> None:
        took(self, seconds)
        if not edited:
            edited.append(subprocess.run(EDIT, cwd=REPO, env={**os.environ, "RUNSHEET_WORKSPACE": str(ws.path)}))

    edited: list[subprocess.CompletedProcess[bytes]] = []
    monkeypatch.setattr(Windows, "took", edit_after_the_first_window)
    estimate = ws.campaign("c").estimate()
    assert edited and edited[0].returncode == 0
    assert estimate.as_dict() == edited_first.as_dict()
    fit = {c.column: c.calls for c in estimate.columns}["fit"]
    assert fit == {c.column: c.calls for c in unedited.columns}["fit"] + 1  # row 36 was 'skip': now run_if holds
    assert ws.campaign("c").values()["company"][35] == "Fresh"


def test_the_schedules_look_for_work_up_to_the_first_window_that_has_some(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = workspace(tmp_path / "one", 1_000)
    ws = workspace(tmp_path / "ws", WINDOW)
    for each in (one, ws):
        each.campaign("c").run()
    taken = _count_windows(monkeypatch)
    assert not _has_work(one, "c", None) and not taken
    assert not _has_work(ws, "c", None) and len(taken) == -(-ROWS // WINDOW)  # every window looked at
    for each in (one, ws):
        each.campaign("c").set(24, "company", "Edited", run_paid=False)  # row 24: in the fourth window
    taken.clear()
    assert _has_work(one, "c", None) and _has_work(ws, "c", None)
    assert len(taken) == 4, taken
    taken.clear()
    assert _has_work(ws, "c", ["research"]) and len(taken) == 4  # research reads the edited company too


def test_a_sampled_estimate_does_not_depend_on_the_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above SAMPLE_ROWS claimed cells a column's hits and tokens are scaled up from a sample: the same cells are
    sampled however the rows were cut into windows."""
    monkeypatch.setattr(estimate_module, "SAMPLE_ROWS", 5)
    found = {}
    for window in (1_000, WINDOW):
        ws = workspace(tmp_path / str(window), window)
        found[window] = ws.campaign("c").estimate(["research"], force=True).as_dict()
    assert found[WINDOW] == found[1_000]
    (research,) = found[WINDOW]["columns"]
    assert research["calls"] == ROWS and not research["exact"] and research["tokens"], research
