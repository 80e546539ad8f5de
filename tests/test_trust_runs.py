"""Issue 13, run outcomes: a refusal (credits, a cap, a pause, Stop) changes no stored cell, neither the refused
one nor anything downstream; a run says how it ended and adds up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from engine import RunOptions, Status, Workspace
from engine.cells.probe import LEDGER
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
