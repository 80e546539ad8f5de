"""Issue 15, "Retry what failed": a failed-cells scope (RunSelection.errors, `run --errors [--code X]`, the API's
`errors`/`code`) computes exactly the cells in error and what they feed; the dry run counts them; no face says
"up to date" while cells in scope are in error; a bad code is refused and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import EditError, RunOptions, RunSelection, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app
from engine.run.selection import plan_selection
from engine.store.catalog import load_campaign
from engine.testing import PROBE_LEDGER
from engine.types import Status
from tests.conftest import snapshot

# fit fails (provider_error) on rows whose note is 'down' and needs a note (missing_required_field without one);
# fit_len and score read it, so they are blocked (upstream_error) where it failed.
SPEC = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: note, kind: input}
  - {name: fit, kind: probe, inputs: [company, note], fail_on: down, required: [note], credits: 1}
  - {name: fit_len, kind: formula, expression: "length(fit)"}
  - {name: score, kind: probe, inputs: [fit_len], credits: 1}
"""
DOWN = {4, 6, 7}  # provider_error in fit
MISSING = {9}  # missing_required_field in fit
FAILED = DOWN | MISSING
ROWS = 10


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    workspace.apply(SPEC)
    for column in ("fit", "score"):  # new paid steps start paused until someone activates them
        workspace.pause("c", column, resume=True)
    campaign = workspace.campaign("c")
    notes = {row: "down" for row in DOWN} | {row: None for row in MISSING}
    campaign.add_rows([{"company": f"co{i}", "note": notes.get(i, "ok")} for i in range(1, ROWS + 1)])
    campaign.run()
    PROBE_LEDGER.clear()
    return workspace


def cells(ws: Workspace) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every step cell as stored: value, status, key, error code, the run that wrote it."""
    found: dict[tuple[str, int], tuple[Any, ...]] = {}
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "c")
        for column in tables.spec.graph.steps():
            rows = con.execute(
                f"SELECT row_id, value::VARCHAR, status, key, error_code, run_id FROM {tables.tables[column]}"
            ).fetchall()
            found.update({(column, row[0]): row[1:] for row in rows})
    return found


def test_the_fixture_failed_where_it_should(ws: Workspace) -> None:
    stored = cells(ws)
    assert {row for (column, row), c in stored.items() if column == "fit" and c[3] == "provider_error"} == DOWN
    assert {row for (column, row), c in stored.items() if column == "fit" and c[3] == "missing_required_field"} == (
        MISSING
    )
    assert ws.campaign("c").errors() == {"upstream_error": 8, "provider_error": 3, "missing_required_field": 1}


def test_what_reads_a_failed_cell_is_blocked_by_it_not_left_waiting(ws: Workspace) -> None:
    # score reads fit_len, which fit's failure blocked once its paid answer landed: score is blocked too, on fit
    campaign = ws.campaign("c")
    for row in FAILED:
        for column in ("fit_len", "score"):
            cell = campaign.cell(row, column)
            assert (cell.status, cell.error_code) == (Status.ERROR, "upstream_error"), cell
            # both name the failed cell at the root, however they were blocked (planned, or gathered per row)
            assert cell.error_message == "upstream cell fit failed" and cell.blocked_by == "fit", cell


def test_a_plain_run_retries_none_of_them_but_errors_does_exactly_those_cells(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    before = cells(ws)
    for selection in (RunSelection(), RunSelection.of(["fit"]), RunSelection.of(["fit"], sorted(DOWN))):
        report = campaign.run(selection)
        assert report.counts() == {} and PROBE_LEDGER.calls == [], selection  # rule 9: nothing retried
    assert cells(ws) == before

    report = campaign.run(RunSelection(errors=True))
    assert sorted(PROBE_LEDGER.calls) == [("fit", row) for row in sorted(DOWN)]  # the probe still fails there
    assert report.counts()["fit"] == {"error": 4}
    after = cells(ws)
    for (column, row), cell in after.items():
        if row in FAILED:  # computed again (fit, and what it feeds), and failed again the same way
            assert cell[:4] == before[column, row][:4], (column, row)
            assert column != "fit" or cell[4] == report.run_id, (column, row)
        else:
            assert cell == before[column, row], (column, row)  # untouched: not even rewritten


def test_code_narrows_to_the_cells_that_failed_with_it(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    before = cells(ws)
    report = campaign.run(RunSelection.of(errors=True, error_code="missing_required_field"))
    assert PROBE_LEDGER.calls == []  # the missing field is still missing: no call
    assert report.counts()["fit"] == {"error": 1}
    after = cells(ws)
    assert {row for (column, row), cell in after.items() if cell != before[column, row]} == {
        9
    }  # its row only: fit, downstream
    assert after["fit", 9][:4] == before["fit", 9][:4] and after["fit", 9][4] == report.run_id

    campaign.run(RunSelection.of(["fit"], [4, 5, 6], error_code="provider_error"))  # a code implies errors
    assert sorted(PROBE_LEDGER.calls) == [("fit", 4), ("fit", 6)]  # rows narrow it too; row 5 was fine


def test_the_dry_run_counts_the_error_cells_it_would_retry(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    before = snapshot(ws)
    plain = campaign.estimate()
    assert (plain.calls, plain.retries) == (0, {})
    assert plain.errors == {"upstream_error": 8, "provider_error": 3, "missing_required_field": 1}
    retry = campaign.estimate(RunSelection(errors=True))
    assert retry.retries == {"upstream_error": 8, "provider_error": 3, "missing_required_field": 1}
    assert retry.errors == {}
    assert [(c.column, c.calls, c.downstream) for c in retry.columns] == [("fit", 3, False), ("score", 3, True)]
    narrowed = campaign.estimate(RunSelection.of(["fit"], error_code="provider_error"))
    assert (narrowed.retries, narrowed.errors) == ({"provider_error": 3}, {})
    assert narrowed.as_dict()["retries"] == {"provider_error": 3}
    assert snapshot(ws) == before and PROBE_LEDGER.calls == []  # a dry run stores nothing and calls nothing


def test_a_bad_code_or_mix_is_refused_and_changes_nothing(ws: Workspace) -> None:
    campaign = ws.campaign("c")
    before = snapshot(ws)
    with pytest.raises(EditError, match="unknown error code 'provider_eror'") as raised:
        campaign.run(RunSelection.of(errors=True, error_code="provider_eror"))
    assert "provider_error" in str(raised.value) and "rate_limited" in str(raised.value)
    with pytest.raises(EditError, match="cannot be combined"):
        campaign.run(RunSelection.of(errors=True, force=True))
    with pytest.raises(EditError, match="unknown error code"):
        campaign.estimate(RunSelection.of(error_code="nope"))
    assert snapshot(ws) == before and PROBE_LEDGER.calls == []


def test_a_selection_of_errors_plans_a_retry_over_the_failed_rows(ws: Workspace) -> None:
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "c")
        request, scope = plan_selection(con, tables, RunSelection.of(["fit"], error_code="provider_error"))
        limited = plan_selection(con, tables, RunSelection(errors=True, limit=2))[1]
    assert (request.columns, request.statuses, request.force) == (frozenset({"fit"}), {Status.QUEUED}, False)
    assert {c.value for c in request.retry} == {"provider_error"}
    assert scope.row_ids == tuple(sorted(DOWN)) and limited.row_ids == (4, 6)
    selection = RunSelection.of(["fit"], [4], error_code="timeout")
    assert RunSelection.from_json(json.loads(json.dumps(selection.to_json()))) == selection
    assert "errors" not in RunSelection().to_json()  # runs stored before keep their shape


# ---- the faces ---------------------------------------------------------------------------------------------------


def cli(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "-w", str(ws.path)])


def test_the_cli_reports_errors_instead_of_up_to_date_and_retries_them(ws: Workspace) -> None:
    plain = cli(ws, "run")
    assert plain.exit_code == 3, plain.output  # nothing ran, but the scope is not all well: cron and CI see it
    assert "up to date except 12 in error (upstream_error 8, provider_error 3, missing_required_field 1)" in (
        plain.stdout
    )
    assert "retry them with `runsheet run --errors`" in plain.stdout
    narrowed = cli(ws, "run", "--column", "fit", "--rows", "1-5")
    assert narrowed.exit_code == 3, narrowed.output
    assert cli(ws, "run", "--column", "fit", "--rows", "1-3").exit_code == 0  # no error in that scope
    assert "up to date except 1 in error (provider_error 1)" in narrowed.stdout
    assert "`runsheet run --errors --column fit --rows 1-5`" in narrowed.stdout
    assert PROBE_LEDGER.calls == []

    dry = cli(ws, "run", "--errors", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "retries 12 in error (upstream_error 8, provider_error 3, missing_required_field 1)" in dry.stdout
    plain_dry = cli(ws, "run", "--dry-run")
    assert "nothing to run: every cell this would compute is up to date except 12 in error" in plain_dry.stdout
    assert PROBE_LEDGER.calls == []

    retried = cli(ws, "run", "--errors", "--code", "provider_error", "--json")
    assert retried.exit_code == 3, retried.output  # they failed again
    summary = json.loads(retried.stdout)
    assert summary["counts"]["fit"] == {"error": 3}
    assert summary["in_error"] == {"upstream_error": 8, "provider_error": 3, "missing_required_field": 1}
    assert sorted(PROBE_LEDGER.calls) == [("fit", row) for row in sorted(DOWN)]


def test_the_cli_refuses_an_unknown_code_naming_the_codes(ws: Workspace) -> None:
    before = snapshot(ws)
    bad = cli(ws, "run", "--errors", "--code", "outage")
    assert bad.exit_code == 1
    assert "unknown error code 'outage'" in bad.stderr
    assert "give one of:" in bad.stderr and "provider_error" in bad.stderr
    assert snapshot(ws) == before and PROBE_LEDGER.calls == []


def test_the_api_takes_errors_and_code(ws: Workspace) -> None:
    set_user(ws.db, "admin", "ada", "admin")
    auth = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'ada')}"}
    with TestClient(create_app(ws.path)) as client:
        before = snapshot(ws)
        bad = client.post("/campaigns/c/runs", json={"errors": True, "code": "outage"}, headers=auth)
        assert bad.status_code in (400, 422), bad.text
        assert "unknown error code" in bad.text and "provider_error" in bad.text
        assert snapshot(ws) == before
        started = client.post(
            "/campaigns/c/runs", json={"columns": ["fit"], "errors": True, "code": "provider_error"}, headers=auth
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        for _ in range(400):
            found = client.get(f"/runs/{run_id}", headers=auth).json()
            if found["status"] != "running":
                break
    assert found["counts"]["fit"] == {"error": 3}
    assert sorted(PROBE_LEDGER.calls) == [("fit", row) for row in sorted(DOWN)]


def test_a_retry_refused_for_credits_leaves_the_failed_cells_as_they_were(ws: Workspace) -> None:
    """A refusal changes nothing: the cells a retry queued go back in error, with their code and message."""
    campaign = ws.campaign("c")
    before, message = cells(ws), campaign.cell(4, "fit").error_message
    assert message
    report = campaign.run(RunSelection(errors=True), options=RunOptions(max_credits=0))
    assert PROBE_LEDGER.calls == []
    assert report.ending() == "refused"
    assert {k: v[:4] for k, v in cells(ws).items()} == {k: v[:4] for k, v in before.items()}
    assert campaign.errors() == {"upstream_error": 8, "provider_error": 3, "missing_required_field": 1}
    assert campaign.cell(4, "fit").error_message == message


def test_show_says_what_blocks_a_cell(ws: Workspace) -> None:
    shown = cli(ws, "show", "-c", "c", "--rows", "4", "--columns", "fit,fit_len,score")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("blocked by fit") == 2 and "provider_error" in shown.stdout
