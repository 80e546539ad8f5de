"""Save to Record: a step's current value written into the record (a line in `notes`, or a named field) so later
steps read it; refused for values that are not current and for fields that are steps; through the engine, the
CLI and the API, with roles and the activity log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import EditError, PermissionDeniedError, Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app
from engine.testing import PROBE_LEDGER

SPEC = """
campaign: t
columns:
  - {name: company, kind: input}
  - {name: notes, kind: input}
  - {name: research, kind: probe, inputs: [company]}
  - {name: opener, kind: probe, inputs: [company], run: manual}
  - name: pitch
    kind: ai
    prompt: "Write to {{ company }}. What we know: {{ notes }}"
  - {name: notes_lines, kind: formula, expression: "len(string_split(coalesce(notes, ''), chr(10)))"}
"""
# No notes field: Save to Record creates it. `angle` reads a field that does not exist yet either, so it
# arrives with a later spec (see test_a_new_field_is_created_and_a_later_step_reads_it).
BARE = """
campaign: b
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company]}
"""


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    workspace.apply(SPEC)
    campaign = workspace.campaign("t")
    campaign.add_rows([{"company": "Acme"}, {"company": "Globex"}])
    campaign.run()
    return workspace


def test_saving_into_notes_appends_a_line_and_the_ai_step_that_reads_notes_recomputes(ws: Workspace) -> None:
    campaign = ws.campaign("t")
    before = campaign.cell(1, "pitch")
    assert before.status is Status.DONE and "What we know" in before.value
    report = campaign.save_to_record(1, "research")
    assert campaign.cell(1, "notes").value == "research: probe(Acme)"
    after = campaign.cell(1, "pitch")
    assert after.status is Status.DONE and after.value != before.value  # re-asked with the notes in its prompt
    assert "probe" in json.loads(after.detail)["messages"][-1]["content"]
    assert report.counts()["pitch"] == {"done": 1} and report.counts()["notes_lines"] == {"done": 1}

    campaign.set(1, "opener", "Hi Acme, loved the launch")  # a hand-edited (pinned) value is current too
    campaign.save_to_record(1, "opener")
    assert campaign.cell(1, "notes").value == "research: probe(Acme)\nopener: Hi Acme, loved the launch"
    assert campaign.cell(1, "notes_lines").value == 2
    again = campaign.save_to_record(1, "opener")  # the same line twice is kept once
    assert campaign.cell(1, "notes_lines").value == 2 and again.counts() == {}
    saved = [a for a in ws.activity(50) if a["action"] == "save_to_record"]
    assert [(a["column_name"], a["row_id"], a["outcome"]) for a in saved] == [
        ("notes", 1, "unchanged"),
        ("notes", 1, "done"),
        ("notes", 1, "done"),
    ]


def test_a_new_field_is_created_and_a_later_step_reads_it(ws: Workspace) -> None:
    campaign = ws.campaign("t")
    campaign.save_to_record(2, "research", "angle")
    assert campaign.spec.column("angle").is_input and campaign.spec.column("angle").value_type == "VARCHAR"
    assert campaign.cell(2, "angle").value == "probe(Globex)" and campaign.cell(1, "angle").value is None
    reader = '  - {name: angle_upper, kind: formula, expression: "upper(angle)"}\n'
    ws.apply(SPEC + reader + "  - {name: angle, kind: input}\n")
    assert campaign.cell(2, "angle_upper").value == "PROBE(GLOBEX)"  # the saved value survived the re-apply
    campaign.set(2, "research", "hand research")
    campaign.save_to_record(2, "research", "angle")  # overwriting the field: its reader recomputes
    assert campaign.cell(2, "angle_upper").value == "HAND RESEARCH"


def test_notes_is_created_without_altering_existing_tables(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BARE)
    campaign = ws.campaign("b")
    campaign.add_rows([{"company": f"c{i}"} for i in range(3)])
    campaign.run()
    with ws.db.transaction() as con:
        tables_before = dict(con.execute("SELECT name, table_name FROM columns").fetchall())
    campaign.save_to_record(3, "research")
    with ws.db.transaction() as con:
        tables_after = dict(con.execute("SELECT name, table_name FROM columns").fetchall())
        stored = con.execute(f"SELECT row_id, value FROM {tables_after['notes']}").fetchall()
    assert {k: v for k, v in tables_after.items() if k != "notes"} == tables_before  # a new table, nothing altered
    assert stored == [(3, "research: probe(c2)")]
    assert campaign.spec.column("notes").is_input


@pytest.mark.parametrize(
    ("row", "column", "field", "message", "hint"),
    [
        (1, "opener", "notes", "row 1's opener is empty: only a current value", "runsheet run -c t --column opener"),
        (1, "company", "notes", "'company' is an input column", "save a step column"),
        (1, "research", "pitch", "'pitch' is a step (ai), not a field of the record", "a new field name"),
        (1, "research", "row_id", "'row_id' cannot name a field", "letters, digits and underscores"),
    ],
)
def test_refusals_name_the_fix_and_change_nothing(
    ws: Workspace, row: int, column: str, field: str, message: str, hint: str
) -> None:
    campaign = ws.campaign("t")
    runs_before = len(ws.runs(100))
    with pytest.raises(EditError) as caught:
        campaign.save_to_record(row, column, field)
    assert message in caught.value.message and hint in caught.value.hint
    assert campaign.cell(1, "notes").value is None and len(ws.runs(100)) == runs_before
    assert "row_id" not in campaign.spec.names


def test_a_stale_value_is_not_current(ws: Workspace) -> None:
    campaign = ws.campaign("t")
    campaign.run(["opener"], rows=[1])
    campaign.set(1, "company", "Acme Corp")  # the manual opener goes stale
    assert campaign.cell(1, "opener").status is Status.STALE
    with pytest.raises(EditError, match="is stale: only a current value"):
        campaign.save_to_record(1, "opener")


def test_a_viewer_may_not_save_a_member_may(ws: Workspace) -> None:
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "max", "member")
    set_user(ws.db, "ada", "vic", "viewer")
    with pytest.raises(PermissionDeniedError, match="vic is a viewer and may not edit inputs"):
        ws.campaign("t", actor="vic").save_to_record(1, "research")
    assert ws.campaign("t").cell(1, "notes").value is None
    ws.campaign("t", actor="max", trigger="cli").save_to_record(1, "research")
    logged = [
        (a["actor"], a["action"], a["outcome"], a["trigger"])
        for a in ws.activity(50)
        if a["action"] in ("save_to_record", "edit_inputs")
    ]
    assert logged == [("max", "save_to_record", "done", "cli"), ("vic", "edit_inputs", "permission_denied", "auth")]


def test_the_cli_saves_into_notes_or_a_named_field(ws: Workspace) -> None:
    runner = CliRunner()
    env = {"RUNSHEET_WORKSPACE": str(ws.path)}
    into_notes = runner.invoke(app, ["save", "t", "2", "research"], env=env)
    assert into_notes.exit_code == 0, into_notes.output
    assert "saved research of row 2 into notes" in into_notes.output and "pitch" in into_notes.output
    named = runner.invoke(app, ["save", "t", "2", "research", "--to", "summary", "--json"], env=env)
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["field"] == "summary" and json.loads(named.output)["value"] == "probe(Globex)"
    campaign = ws.campaign("t")
    assert campaign.cell(2, "notes").value == "research: probe(Globex)"
    assert campaign.cell(2, "summary").value == "probe(Globex)"
    refused = runner.invoke(app, ["save", "t", "2", "opener"], env=env)
    assert refused.exit_code == 1
    assert refused.output.startswith("error: row 2's opener is empty") and "runsheet run" in refused.output


def test_the_api_saves_and_the_row_reacts_before_it_answers(ws: Workspace) -> None:
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "max", "member")
    set_user(ws.db, "ada", "vic", "viewer")
    member = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'max')}"}
    viewer = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'vic')}"}
    before = ws.campaign("t").cell(1, "pitch").value
    PROBE_LEDGER.clear()
    with TestClient(create_app(ws.path)) as client:
        answer = client.post("/campaigns/t/records/1/save", json={"column": "research"}, headers=member)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["column"], body["value"], body["status"]) == ("notes", "research: probe(Acme)", "done")
        assert body["counts"]["pitch"] == {"done": 1}
        assert ws.campaign("t").cell(1, "pitch").value != before
        named = client.post(
            "/campaigns/t/records/1/save", json={"column": "research", "field": "angle"}, headers=member
        )
        assert named.json()["value"] == "probe(Acme)"
        denied = client.post("/campaigns/t/records/1/save", json={"column": "research"}, headers=viewer)
        assert denied.status_code == 403 and "may not edit inputs" in denied.json()["error"]
        empty = client.post("/campaigns/t/records/2/save", json={"column": "opener"}, headers=member)
        assert empty.status_code == 400 and "runsheet run" in empty.json()["hint"]
        missing = client.post("/campaigns/t/records/9/save", json={"column": "research"}, headers=member)
        assert missing.status_code == 404
    assert PROBE_LEDGER.calls == []  # saving never re-ran the step it copied
    saves = [(r["actor"], r["trigger"], r["request"]["field"]) for r in ws.runs(20) if "save_to_record" in r["request"]]
    assert saves == [("max", "api", "angle"), ("max", "api", "notes")]
