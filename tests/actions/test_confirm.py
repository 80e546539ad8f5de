"""Confirming a pinned cell: an export waits on a value edited by hand until someone confirms it, fires once it
is confirmed, and waits again after a new edit; a confirmed cell is still never overwritten by recompute and is
unpinned by Run Again. Through the engine, the CLI and the API, against the receiver on 127.0.0.1."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import EditError, Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app
from tests.actions.conftest import Receiver


def spec(receiver: Receiver) -> str:
    return f"""
campaign: crm
columns:
  - {{name: email, kind: input}}
  - {{name: company, kind: input}}
  - {{name: opener, kind: probe, inputs: [company], run: manual}}
  - name: push
    kind: export
    url: "{receiver.base}/hooks/crm"
    fields: [email, opener]
"""


def openers(receiver: Receiver) -> list[tuple[int, str, str]]:
    """(record, opener, idempotency key) of every delivery, in arrival order."""
    found = []
    for delivery in receiver.deliveries():
        data = json.loads(delivery["body"])["data"]
        found.append((data["record"], data["opener"], delivery["headers"]["idempotency-key"]))
    return found


def make(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows([{"email": "ann@acme.com", "company": "Acme"}, {"email": "bo@globex.io", "company": "Globex"}])
    campaign.run()


def test_an_export_waits_on_a_pinned_cell_fires_once_confirmed_and_waits_again_after_an_edit(
    ws: Workspace, receiver: Receiver
) -> None:
    make(ws, receiver)
    campaign = ws.campaign("crm")
    campaign.set(1, "opener", "Hi Ann")
    assert campaign.cell(1, "opener").status is Status.PINNED
    waiting = campaign.cell(1, "push")
    assert (waiting.status, waiting.waiting_on) == (Status.WAITING, "opener")
    campaign.run()
    assert receiver.posts() == 0  # a run of everything does not send an unconfirmed edit

    report = campaign.confirm(1, "opener")
    assert campaign.cell(1, "opener").status is Status.CONFIRMED
    assert report.counts()["push"] == {"done": 1}
    assert [(r, o) for r, o, _ in openers(receiver)] == [(1, "Hi Ann")]
    assert campaign.cell(2, "push").status is Status.WAITING  # row 2's opener never ran: its export still waits

    campaign.set(1, "company", "Acme Corp")  # recompute never overwrites a confirmed value
    campaign.run(["opener"], rows=[1])
    assert (campaign.cell(1, "opener").value, campaign.cell(1, "opener").status) == ("Hi Ann", Status.CONFIRMED)
    assert campaign.confirm(1, "opener").counts() == {}  # confirming twice changes nothing
    assert receiver.posts() == 1

    campaign.set(1, "opener", "Hi Ann, again")  # a new edit is unconfirmed: the export waits again
    assert campaign.cell(1, "opener").status is Status.PINNED
    assert campaign.cell(1, "push").status is Status.WAITING
    campaign.run()
    assert receiver.posts() == 1
    campaign.confirm(1, "opener")
    sent = openers(receiver)
    assert [(r, o) for r, o, _ in sent] == [(1, "Hi Ann"), (1, "Hi Ann, again")]
    assert sent[0][2] != sent[1][2]  # a different value is a different delivery

    campaign.run(["opener"], rows=[1], force=True)  # Run Again unpins it; its export runs again
    assert campaign.cell(1, "opener").status is Status.DONE
    assert openers(receiver)[-1][:2] == (1, "probe(Acme Corp)")
    confirmed = [(a["column_name"], a["row_id"], a["outcome"]) for a in ws.activity(100) if a["action"] == "confirm"]
    assert confirmed == [("opener", 1, "done"), ("opener", 1, "unchanged"), ("opener", 1, "done")]


def test_only_a_pinned_step_cell_can_be_confirmed(ws: Workspace, receiver: Receiver) -> None:
    make(ws, receiver)
    campaign = ws.campaign("crm")
    for column, message in (
        ("opener", "row 1's opener is empty, not a value edited by hand"),
        ("email", "'email' is an input column"),
    ):
        try:
            campaign.confirm(1, column)
        except EditError as error:
            assert message in error.message and error.hint
        else:
            raise AssertionError(f"confirming {column} was not refused")


def test_confirm_through_the_cli_and_the_api(ws: Workspace, receiver: Receiver) -> None:
    make(ws, receiver)
    campaign = ws.campaign("crm")
    campaign.set(1, "opener", "Hi Ann")
    campaign.set(2, "opener", "Hi Bo")
    runner = CliRunner()
    env = {"RUNSHEET_WORKSPACE": str(ws.path)}
    done = runner.invoke(app, ["confirm", "crm", "1", "opener"], env=env)
    assert done.exit_code == 0, done.output
    assert "confirmed opener of row 1" in done.output and "push" in done.output
    assert [(r, o) for r, o, _ in openers(receiver)] == [(1, "Hi Ann")]
    refused = runner.invoke(app, ["confirm", "crm", "1", "push"], env=env)
    assert refused.exit_code == 1 and "not a value edited by hand" in refused.output

    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "vic", "viewer")
    set_user(ws.db, "ada", "max", "member")
    with TestClient(create_app(ws.path)) as client:
        viewer = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'vic')}"}
        denied = client.post("/campaigns/crm/records/2/confirm", json={"column": "opener"}, headers=viewer)
        assert denied.status_code == 403
        assert receiver.posts() == 1
        member = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'max')}"}
        answer = client.post("/campaigns/crm/records/2/confirm", json={"column": "opener"}, headers=member)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["value"]) == ("confirmed", "Hi Bo")
        assert answer.json()["counts"]["push"] == {"done": 1}
    assert [(r, o) for r, o, _ in openers(receiver)] == [(1, "Hi Ann"), (2, "Hi Bo")]
    assert campaign.cell(2, "push").status is Status.DONE


def test_an_export_waits_on_a_hand_edit_that_reaches_it_through_a_formula(ws: Workspace, receiver: Receiver) -> None:
    """The export reads `line`, a formula over the pinned `opener`: `line` itself is done, yet it carries the
    unconfirmed edit, so the export waits on `opener` until the edit is confirmed (found by tests/test_invariants)."""
    ws.apply(
        spec(receiver).replace("fields: [email, opener]", "fields: [email, line]")
        + ("  - {name: line, kind: formula, expression: \"opener || '!'\"}\n")
    )
    campaign = ws.campaign("crm")
    campaign.add_rows([{"email": "ann@acme.com", "company": "Acme"}])
    campaign.run(["opener"], rows=[1])
    assert [d["line"] for d in (json.loads(r["body"])["data"] for r in receiver.deliveries())] == ["probe(Acme)!"]
    campaign.set(1, "opener", "Hi Ann")
    assert campaign.cell(1, "line").value == "Hi Ann!"
    waiting = campaign.cell(1, "push")
    assert (waiting.status, waiting.waiting_on) == (Status.WAITING, "opener")
    campaign.run()
    assert receiver.posts() == 1  # the unconfirmed edit did not go out
    campaign.confirm(1, "opener")
    sent = [json.loads(r["body"])["data"]["line"] for r in receiver.deliveries()]
    assert sent == ["probe(Acme)!", "Hi Ann!"]
