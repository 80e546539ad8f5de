"""One run's lifecycle in one module (issue 14): engine/run/lifecycle.py is the only writer of `runs`; open,
progress, stop, close, reclaim and requeue on a real DuckDB file; a run selection has one shape, converted to the
planner's Request and the store's Scope in one place, and stored in the run's request."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import EditError, NotFoundError, RunSelection, Status, Workspace
from engine.run.lifecycle import (
    add_progress,
    finish_run,
    reclaim_dead_runs,
    request_stop,
    run_transaction,
    stop_file,
    stop_requested,
)
from engine.run.reports import RunReport
from engine.run.selection import format_rows, parse_rows, plan_selection
from engine.store.catalog import load_campaign
from engine.store.cells import Scope

ENGINE = Path(__file__).resolve().parents[2] / "engine"
LIFECYCLE = ENGINE / "run" / "lifecycle.py"
WRITES_RUNS = re.compile(r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+runs\b", re.IGNORECASE)

SPEC = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: fit, kind: probe, inputs: [company], credits: 1}
  - {name: fit_len, kind: formula, expression: "length(fit)"}
  - {name: note, kind: probe, inputs: [company], credits: 1, run: manual}
"""
ROWS = 6


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    workspace.apply(SPEC)
    for column in ("fit", "note"):  # new paid steps start paused until someone resumes them
        workspace.pause("c", column, resume=True)
    workspace.campaign("c").add_rows([{"company": f"co{i}"} for i in range(ROWS)])
    return workspace


def run_row(ws: Workspace, run_id: int) -> dict[str, Any]:
    with ws.db.transaction() as con:
        cursor = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cursor.description]
        found = dict(zip(names, cursor.fetchone() or (), strict=True))
    found["request"] = json.loads(found["request"]) if isinstance(found["request"], str) else found["request"]
    return found


def statuses(ws: Workspace, column: str) -> dict[int, str]:
    with ws.db.transaction() as con:
        table = load_campaign(con, "c").tables[column]
        return dict(con.execute(f"SELECT row_id, status FROM {table} ORDER BY row_id").fetchall())


def open_paid_run(ws: Workspace, selection: RunSelection, campaign: str = "c") -> RunReport:
    """Plan and claim `selection` the way Campaign.start_run does, leaving the run running with its claims."""
    with ws.db.transaction() as con:
        tables = load_campaign(con, campaign)
        request, scope = plan_selection(con, tables, selection)
        return run_transaction(con, tables, request, scope, actor="tester", trigger="test", selection=selection)


# ---- the only writer ------------------------------------------------------------------------------------------


def test_no_module_but_lifecycle_writes_the_runs_table() -> None:
    writers = {
        f"{path.relative_to(ENGINE.parent)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in sorted(ENGINE.rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for m in WRITES_RUNS.finditer(text)
        if path != LIFECYCLE
    }
    assert writers == set(), f"only engine/run/lifecycle.py may write `runs`: move these there: {sorted(writers)}"
    # the scan sees the writes it guards against: lifecycle's own insert, updates (progress, stop, close, reclaim)
    found = [m.group(0).split()[0].upper() for m in WRITES_RUNS.finditer(LIFECYCLE.read_text(encoding="utf-8"))]
    assert found.count("INSERT") == 1 and found.count("UPDATE") >= 5


def test_the_scan_catches_each_way_of_writing_runs() -> None:
    for sql in ("INSERT INTO runs VALUES (1)", "update runs set done = 1", "DELETE  FROM\nruns WHERE TRUE"):
        assert WRITES_RUNS.search(sql), sql
    for sql in ("SELECT * FROM runs", "UPDATE runs_archive SET x = 1", "INSERT INTO runsheet VALUES (1)"):
        assert not WRITES_RUNS.search(sql), sql


# ---- open, progress, stop, close --------------------------------------------------------------------------------


def test_open_progress_stop_and_close_a_run(ws: Workspace) -> None:
    selection = RunSelection.of(["fit"], [2, 1, 3, 3])
    report = open_paid_run(ws, selection)
    opened = run_row(ws, report.run_id)
    assert (opened["status"], opened["total"], opened["done"], opened["actor"], opened["trigger"]) == (
        "running",
        3,
        0,
        "tester",
        "test",
    )
    assert opened["request"]["selection"] == {
        "columns": ["fit"],
        "rows": "1-3",
        "only_stale": False,
        "only_empty": False,
        "force": False,
        "limit": None,
    }
    assert RunSelection.from_json(opened["request"]["selection"]) == selection
    assert (opened["request"]["kind"], opened["request"]["columns"], opened["request"]["scope"]) == (
        "run",
        ["fit"],
        "rows",
    )
    assert statuses(ws, "fit") == {1: "running", 2: "running", 3: "running", 4: "queued", 5: "queued", 6: "queued"}

    with ws.db.transaction() as con:
        con.execute("UPDATE runs SET heartbeat = TIMESTAMP '2000-01-01' WHERE run_id = ?", [report.run_id])
        add_progress(con, report.run_id, done=2, credits=2.0, tokens=30, cache_hits=1, credits_saved=1.0)
        add_progress(con, report.run_id, total=1, done=1, provider_cost=0.5, beat=True)
    progressed = run_row(ws, report.run_id)
    assert {k: progressed[k] for k in ("total", "done", "credits", "tokens", "cache_hits", "credits_saved")} == {
        "total": 4,
        "done": 3,
        "credits": 2.0,
        "tokens": 30,
        "cache_hits": 1,
        "credits_saved": 1.0,
    }
    assert progressed["provider_cost"] == 0.5
    assert progressed["heartbeat"].year > 2000  # `beat` renewed it

    assert ws.stop_runs([report.run_id, 999]) == [report.run_id]  # no run 999: left out
    assert stop_file(ws.path, report.run_id).exists()
    with ws.db.transaction() as con:
        assert stop_requested(con, report.run_id)
        finish_run(con, load_campaign(con, "c"), report, "stopped")
    closed = run_row(ws, report.run_id)
    assert closed["status"] == "stopped" and closed["finished_at"] is not None
    assert set(statuses(ws, "fit").values()) == {"queued"} and report.status == "stopped"  # the claims went back
    assert ws.stop_runs([report.run_id]) == []  # a closed run is not asked again
    assert ws.stop_run(report.run_id) is False


def test_stop_asks_only_running_runs_of_the_campaign_named(ws: Workspace) -> None:
    ws.apply(SPEC.replace("campaign: c", "campaign: d"))
    ws.pause("d", "note", resume=True)
    ws.campaign("d").add_rows([{"company": "x"}])
    first = open_paid_run(ws, RunSelection.of(["fit"], [1]))
    second = open_paid_run(ws, RunSelection.of(["note"], [2]))
    elsewhere = open_paid_run(ws, RunSelection.of(["note"], [1]), campaign="d")
    done = open_paid_run(ws, RunSelection.of([]))
    assert [run_row(ws, r.run_id)["status"] for r in (elsewhere, done)] == ["running", "done"]
    assert ws.stop_runs(campaign="c") == [first.run_id, second.run_id]
    assert ws.stop_runs(campaign="c") == [first.run_id, second.run_id]  # still running: asked again, harmless
    with ws.db.transaction() as con:
        assert not stop_requested(con, elsewhere.run_id) and not stop_requested(con, done.run_id)
        assert request_stop(con, [done.run_id]) == []  # a closed run is not asked
    assert not stop_file(ws.path, elsewhere.run_id).exists()
    assert ws.stop_runs() == [first.run_id, second.run_id, elsewhere.run_id]  # every running run
    with pytest.raises(NotFoundError):
        ws.stop_runs(campaign="nosuch")


def test_stopping_needs_the_stop_permission(ws: Workspace) -> None:
    report = open_paid_run(ws, RunSelection.of(["fit"], [1]))
    ws.set_role("boss", "admin")
    Workspace(ws.path, actor="boss").set_role("guest", "viewer")
    guest = Workspace(ws.path, actor="guest")
    with pytest.raises(Exception, match="may not stop"):
        guest.stop_runs([report.run_id])
    assert not stop_file(ws.path, report.run_id).exists()
    with ws.db.transaction() as con:
        assert not stop_requested(con, report.run_id)
    assert Workspace(ws.path, actor="boss").stop_runs() == [report.run_id]


def test_a_paid_run_reports_its_progress_and_ends_done(ws: Workspace) -> None:
    report = ws.campaign("c").run(["note"], rows=[1, 2, 3])
    stored = run_row(ws, report.run_id)
    assert (stored["status"], stored["total"], stored["done"], stored["credits"]) == ("done", 3, 3, 3.0)
    assert stored["request"]["selection"]["rows"] == "1-3"
    assert not stop_file(ws.path, report.run_id).exists()


# ---- reclaim ------------------------------------------------------------------------------------------------------


def test_a_dead_runners_run_is_interrupted_and_its_cells_given_back(ws: Workspace) -> None:
    report = open_paid_run(ws, RunSelection.of(["fit"]))
    live = open_paid_run(ws, RunSelection.of(["note"], [1]))
    with ws.db.transaction() as con:
        assert reclaim_dead_runs(con) == []  # this process is alive: nothing to reclaim
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [_dead_pid(), report.run_id])
        assert reclaim_dead_runs(con) == [report.run_id]
        assert reclaim_dead_runs(con) == []  # once
    stored = run_row(ws, report.run_id)
    assert stored["status"] == "interrupted" and "given back" in stored["message"]
    assert json.loads(stored["counts"])["fit"]["interrupted"] == ROWS
    assert set(statuses(ws, "fit").values()) == {"queued"}
    assert run_row(ws, live.run_id)["status"] == "running"


def test_a_run_whose_heartbeat_is_older_than_the_lease_is_reclaimed(ws: Workspace) -> None:
    report = open_paid_run(ws, RunSelection.of(["fit"], [1, 2]))
    with ws.db.transaction() as con:
        con.execute(
            "UPDATE runs SET host = 'elsewhere', heartbeat = now() - INTERVAL 2 MINUTE WHERE run_id = ?",
            [report.run_id],
        )
        add_progress(con, report.run_id, done=1)  # progress without a beat does not keep it alive
        assert reclaim_dead_runs(con, load_campaign(con, "c")) == [report.run_id]
    assert run_row(ws, report.run_id)["status"] == "interrupted"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---- one shape of run selection -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    selection: RunSelection
    statuses: frozenset[Status]
    force: bool
    unpin: bool
    scope: Scope


DEFAULT = frozenset({Status.EMPTY, Status.STALE, Status.QUEUED, Status.WAITING, Status.PAUSED})
CASES = [
    Case(RunSelection(), DEFAULT, False, False, Scope.all()),
    Case(RunSelection.of(["fit"], [3, 1]), DEFAULT, False, False, Scope.rows([1, 3])),
    Case(RunSelection(only_stale=True), frozenset({Status.STALE, Status.QUEUED}), False, False, Scope.all()),
    Case(RunSelection(only_empty=True), frozenset({Status.EMPTY, Status.QUEUED}), False, False, Scope.all()),
    Case(
        RunSelection(only_stale=True, only_empty=True),
        frozenset({Status.STALE, Status.QUEUED, Status.EMPTY}),
        False,
        False,
        Scope.all(),
    ),
    Case(RunSelection.of(["fit"], force=True), frozenset(Status), True, False, Scope.all()),
    Case(RunSelection.of(["fit"], [2], force=True), frozenset(Status), True, True, Scope.rows([2])),
    Case(RunSelection(limit=2), DEFAULT, False, False, Scope.rows([1, 2])),
    Case(RunSelection.of(None, [5, 4, 6], limit=2), DEFAULT, False, False, Scope.rows([4, 5])),
]


@pytest.mark.parametrize("case", CASES, ids=[repr(c.selection) for c in CASES])
def test_a_selection_becomes_one_request_and_scope(ws: Workspace, case: Case) -> None:
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "c")
        request, scope = plan_selection(con, tables, case.selection)
    columns = ["fit"] if case.selection.columns else tables.spec.graph.auto_steps()
    assert (request.kind, request.columns) == ("run", frozenset(columns))
    assert (request.statuses, request.force, request.unpin, scope) == (
        case.statuses,
        case.force,
        case.unpin,
        case.scope,
    )
    assert RunSelection.from_json(json.loads(json.dumps(case.selection.to_json()))) == case.selection


def test_a_selection_refuses_inputs_missing_rows_and_a_bad_limit(ws: Workspace) -> None:
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "c")
        with pytest.raises(EditError, match="input column"):
            plan_selection(con, tables, RunSelection.of(["company"]))
        with pytest.raises(NotFoundError, match="no row 99"):
            plan_selection(con, tables, RunSelection.of(["fit"], [1, 99]))
        with pytest.raises(EditError, match="limit 0"):
            plan_selection(con, tables, RunSelection(limit=0))


def test_the_facade_takes_a_selection_or_its_loose_arguments_alike(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    loose = campaign.estimate(["note"], rows=[1, 2], force=True)
    typed = campaign.estimate(RunSelection.of(["note"], [1, 2], force=True))
    assert (loose.calls, loose.credits) == (typed.calls, typed.credits) == (2, 2.0)
    with pytest.raises(TypeError, match="not both"):
        campaign.run(RunSelection.of(["note"]), rows=[1])
    first = campaign.run(["note"], rows=[1])
    second = campaign.run(RunSelection.of(["note"], [2]))
    assert first.counts() == {"note": {"done": 1}} and second.counts() == {"note": {"done": 1}}
    assert run_row(ws, second.run_id)["request"]["selection"]["columns"] == ["note"]


def test_rows_are_stored_as_ranges_and_read_back() -> None:
    assert format_rows([10, 1, 2, 3, 7, 9, 3]) == "1-3,7,9-10"
    assert format_rows([]) == ""
    assert parse_rows("1-3,7,9-10") == [1, 2, 3, 7, 9, 10]
    assert parse_rows("") == []
    with pytest.raises(ValueError):
        parse_rows("1-x")
