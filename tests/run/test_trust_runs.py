"""Issue 13, run outcomes: a refusal (credits, a cap, a pause, Stop) changes no stored cell, neither the refused
one nor anything downstream; a run says how it ended and adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine import RunOptions, RunReport, Status, Workspace
from engine.cells.probe import LEDGER
from engine.cli import app
from engine.cli.runs import EXIT_CODES
from engine.run.executor import ROW_LIST_LIMIT
from engine.store.catalog import load_campaign

SPEC = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: fit, kind: probe, inputs: [company], credits: 1}
  - {name: fit_len, kind: formula, expression: "length(fit)"}
  - {name: score, kind: probe, inputs: [fit_len], credits: 1}
"""
ROWS = 10


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    workspace.apply(SPEC)
    for column in ("fit", "score"):  # new paid steps may start paused until someone activates them
        workspace.pause("c", column, resume=True)
    campaign = workspace.campaign("c")
    campaign.add_rows([{"company": f"co{i}"} for i in range(ROWS)])
    campaign.run()
    LEDGER.clear()
    return workspace


def cells(ws: Workspace, campaign: str = "c") -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every step cell as stored: value, status, key, error, the run that wrote it, when it finished."""
    found: dict[tuple[str, int], tuple[Any, ...]] = {}
    with ws.db.transaction() as con:
        tables = load_campaign(con, campaign)
        for column in tables.spec.graph.steps():
            rows = con.execute(
                f"SELECT row_id, value::VARCHAR, status, key, error_code, run_id, finished_at "
                f"FROM {tables.tables[column]}"
            ).fetchall()
            found.update({(column, row[0]): row[1:] for row in rows})
    return found


def test_a_forced_run_over_its_credit_cap_keeps_the_answers_it_could_not_pay_for(ws: Workspace) -> None:
    # issue 13, item 3: `run --column fit --rows 1-300 --force --max-credits 30` turned the good answers it could
    # not pay for into insufficient_credits, and their downstream into upstream_error
    before = cells(ws)
    assert {c[1] for c in before.values()} == {"done"}
    report = ws.campaign("c").run(["fit"], range(1, ROWS + 1), force=True, options=RunOptions(max_credits=3))
    after = cells(ws)
    ran = {row for column, row in LEDGER.calls if column == "fit"}
    assert len(ran) == 3 and LEDGER.per_column()["score"] == 0  # nothing downstream was paid for
    for (column, row), cell in after.items():
        if column == "fit" and row in ran:
            assert cell[:2] == before[column, row][:2] == (f"probe(co{row - 1})", "done")
        else:
            assert cell == before[column, row], (column, row)  # value, status, key, run: all as they were
    assert report.counts()["fit"] == {"done": 3, "refused": 7}
    assert report.message is not None and "stopped for credits: 7 cells" in report.message
    refused = ws.query(f"SELECT row_id FROM activity WHERE run_id = {report.run_id} AND outcome = 'refused'")
    assert sorted(refused["row_id"].to_list()) == sorted(set(range(1, ROWS + 1)) - ran)


def test_a_refused_cell_that_never_ran_shows_the_refusal_with_its_fix(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    campaign.add_rows([{"company": "new"}], run=False)
    ws.add_credits(-ws.credits())
    report = campaign.run()
    cell = campaign.cell(ROWS + 1, "fit")
    assert (cell.status, cell.error_code) == (Status.ERROR, "insufficient_credits")
    assert "add credits" in (cell.error_hint or "")
    assert report.counts()["fit"] == {"refused": 1}
    assert campaign.status_counts()["fit"] == {"done": ROWS, "error": 1}


def test_stop_puts_back_the_cells_whose_call_was_cancelled_or_never_started(ws: Workspace) -> None:
    ws.apply(SPEC.replace("credits: 1}", "credits: 1, delay: 0.2}"))
    for column in ("fit", "score"):
        ws.pause("c", column, resume=True)
    ws.campaign("c").run()
    before = cells(ws)
    stop = threading.Event()

    def progress(state: Any) -> None:
        if state.done >= 2:
            stop.set()

    report = ws.campaign("c").run(
        ["fit"], range(1, ROWS + 1), force=True, options=RunOptions(concurrency=2, stop=stop, progress=progress)
    )
    assert report.status == "stopped"
    after = cells(ws)
    recomputed = [row for row in range(1, ROWS + 1) if after["fit", row][4] == report.run_id]
    assert 2 <= len(recomputed) < ROWS
    for row in range(1, ROWS + 1):
        if row not in recomputed:  # cancelled in flight, or never started: done, with its key, not stale
            assert after["fit", row] == before["fit", row]
        assert after["fit", row][1] == after["fit_len", row][1] == "done"


def test_a_paused_step_keeps_its_values_and_an_empty_cell_shows_paused_not_an_error(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    before = cells(ws)
    ws.pause("c", "fit")
    campaign.add_rows([{"company": "new"}], run=False)
    report = campaign.run(["fit"], force=True)
    after = cells(ws)
    assert LEDGER.calls == []
    for row in range(1, ROWS + 1):
        for column in ("fit", "fit_len", "score"):
            assert after[column, row] == before[column, row]
    new = campaign.cell(ROWS + 1, "fit")
    assert (new.status, new.error_code) == (Status.PAUSED, None)
    assert new.error_hint is not None and "runsheet resume" in new.error_hint
    assert campaign.cell(ROWS + 1, "fit_len").status is Status.WAITING  # waits on it: not upstream_error
    assert report.counts()["fit"] == {"paused": ROWS + 1}
    resumed = ws.resume("c", "fit")
    assert resumed.run is not None
    campaign.finish_run(resumed.run)
    assert campaign.cell(ROWS + 1, "fit").status is Status.DONE
    assert campaign.status_counts()["fit"] == {"done": ROWS + 1}


def test_a_paused_steps_cell_whose_input_changed_keeps_its_value_marked_stale(ws: Workspace) -> None:
    """Pausing keeps values, but `done` means fresh: an edit (or upsert) under a paused step marks the cell stale
    with its old value and key, and resuming computes it (found by tests/test_invariants.py: it stayed done)."""
    campaign = ws.campaign("c")
    ws.pause("c", "fit")
    old = campaign.cell(2, "fit")
    campaign.set(2, "company", "renamed")
    kept = campaign.cell(2, "fit")
    assert (kept.value, kept.key) == (old.value, old.key)
    assert kept.status in (Status.STALE, Status.QUEUED)  # never done: its inputs changed
    campaign.run(["fit"], rows=[2])
    kept = campaign.cell(2, "fit")
    assert (kept.status, kept.value, kept.key) == (Status.STALE, old.value, old.key)
    assert LEDGER.calls == []
    ws.resume("c", "fit", run=False)
    campaign.run()
    assert (campaign.cell(2, "fit").status, campaign.cell(2, "fit").value) == (Status.DONE, "probe(renamed)")


# ---- item 12: the estimate compares with the balance; a run that stops for credits says so -----------------


def test_a_dry_run_says_where_the_run_would_stop_for_credits(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    ws.add_credits(4 - ws.credits())
    estimate = campaign.estimate(["fit"], force=True)
    assert estimate.budget is not None
    # fit's 10 calls, and score's 10 downstream (counted as if they would run: their inputs are not known yet)
    assert (estimate.budget.calls, estimate.budget.covered, estimate.budget.stop_column) == (2 * ROWS, 4, "fit")
    assert estimate.budget.stop_row == 5  # rows 1-4 paid for; the first call refused is row 5's
    assert "balance (4 credits) covers 4 of 20 paid calls" in estimate.budget.describe()
    capped = campaign.estimate(["fit"], force=True, max_credits=2)
    assert capped.budget is not None and capped.budget.covered == 2 and "run's cap" in capped.budget.limit
    output = CliRunner().invoke(app, ["run", "-c", "c", "--column", "fit", "--force", "--dry-run", "-w", str(ws.path)])
    assert output.exit_code == 0 and "stop for credits at about row 5 of fit" in output.output
    assert LEDGER.calls == []


def test_run_exits_with_a_documented_code_for_how_its_cells_ended(ws: Workspace) -> None:
    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(app, ["run", "-c", "c", "--json", "-w", str(ws.path), *args])
        return result.exit_code, json.loads(result.output) if result.output.startswith("{") else {}

    code, summary = run()
    assert code == 0 and summary["ending"] == "ok"  # nothing to do: all fresh
    code, summary = run("--column", "fit", "--force", "--max-credits", "3")
    assert code == 4 and summary["ending"] == "refused" and summary["counts"]["fit"] == {"done": 3, "refused": 7}
    assert "stopped for credits" in summary["message"]
    ws.apply(SPEC.replace("credits: 1}", "credits: 1, fail_on: co2}", 1))
    ws.pause("c", "fit", resume=True)
    code, summary = run("--column", "fit", "--force")
    assert code == 3 and summary["ending"] == "failed" and summary["counts"]["fit"]["error"] == 1
    ws.pause("c", "fit")
    code, summary = run("--column", "fit", "--force")
    assert code == 4 and summary["counts"]["fit"] == {"paused": ROWS}
    assert "Exit codes" in CliRunner().invoke(app, ["run", "--help"]).output


def test_a_stopped_run_exits_5() -> None:
    report = RunReport(1, status="stopped")
    assert (report.ending(), EXIT_CODES[report.ending()]) == ("stopped", 5)


# ---- item 13: a dead run is interrupted at the next read; summaries add up ----------------------------------


def test_a_killed_run_is_interrupted_and_its_cells_given_back_at_the_next_read(ws: Workspace) -> None:
    ws.apply(SPEC.replace("credits: 1}", "credits: 1, delay: 5}", 1))
    ws.pause("c", "fit", resume=True)
    env = {**os.environ, "RUNSHEET_WORKSPACE": str(ws.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "-c", "c", "--column", "fit", "--force", "--concurrency", "2"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if ws.campaign("c").status_counts()["fit"].get("running"):
                break
            time.sleep(0.05)
        assert ws.campaign("c").status_counts()["fit"] == {"running": ROWS}
    finally:
        process.kill()  # kill -9, not reaped yet: a zombie counts as dead too
    while _state(process.pid) != "Z":  # the signal is delivered: the process is a zombie until reaped
        time.sleep(0.01)
    run_id = int(ws.runs(1)[0]["run_id"])  # type: ignore[call-overload]
    run = ws.runs(1)[0]
    assert (run["status"], run["counts"]["fit"]) == ("interrupted", {"interrupted": ROWS})  # type: ignore[index]
    # given back, values kept (the dead process took what they were with it: stale, for the next run to check)
    assert ws.campaign("c").status_counts()["fit"] == {"stale": ROWS}
    assert ws.campaign("c").values()["fit"].to_list() == [f"probe(co{i})" for i in range(ROWS)]
    status = CliRunner().invoke(app, ["status", "-c", "c", "--json", "-w", str(ws.path)])
    assert "running" not in status.output
    logged = CliRunner().invoke(app, ["log", "--json", "-w", str(ws.path)])
    assert f'"run_id": {run_id}' in logged.output and '"interrupted"' in logged.output
    process.wait()


def test_a_dead_runs_cells_are_given_back_when_the_grid_reads_them(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    report = campaign.start_run(["fit"], force=True)  # claimed, then the process "dies": a pid that is gone
    with ws.db.transaction() as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [_dead_pid(), report.run_id])
    page = campaign.page(0, ROWS)
    assert {row["fit"].status for row in page.rows} == {Status.STALE}  # given back: not shown running
    assert ws.runs(1)[0]["status"] == "interrupted"


def test_a_large_runs_counts_add_up_to_its_cells(tmp_path: Path) -> None:
    workspace = Workspace.init(tmp_path / "big")
    workspace.apply(SPEC.replace("credits: 1}", "credits: 0}"))
    for column in ("fit", "score"):
        workspace.pause("c", column, resume=True)
    campaign = workspace.campaign("c")
    rows = ROW_LIST_LIMIT + 5  # above it, events do not list their rows
    campaign.add_rows([{"company": f"co{i % 7}"} for i in range(rows)], run=False)
    report = campaign.run(options=RunOptions(concurrency=64))
    assert {column: dict(c) for column, c in report.counts().items()} == {
        "fit": {"done": rows},
        "fit_len": {"done": rows},
        "score": {"done": rows},
    }
    logged = workspace.runs(1)[0]
    assert sum(sum(c.values()) for c in logged["counts"].values()) == 3 * rows  # type: ignore[attr-defined]


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
