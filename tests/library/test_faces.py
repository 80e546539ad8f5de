"""The action library on the faces: the HTTP API (roles answer 403 `permission_denied` with the fix; a webhook
runs an action on records it names or creates) and `runsheet action ...` (CliRunner)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from engine import Campaign, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app

OPENER = {"prompt": "Write an opener to {{ full_name }} at {{ company }}"}


@pytest.fixture()
def client(ws: Workspace, people: Campaign) -> tuple[TestClient, dict[str, dict[str, str]]]:
    set_user(ws.db, "ann", "ann", "admin")
    set_user(ws.db, "ann", "max", "member")
    set_user(ws.db, "ann", "val", "viewer")
    tokens = {user: {"Authorization": f"Bearer {create_token(ws.db, 'ann', user)}"} for user in ("ann", "max", "val")}
    return TestClient(create_app(ws.path)), tokens


def test_the_api_adds_resumes_runs_and_saves(client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    http, tokens = client
    body = {"name": "opener", "kind": "ai", "options": OPENER, "description": "An opener"}
    assert http.post("/actions", json=body, headers=tokens["max"]).status_code == 403
    added = http.post("/actions", json=body, headers=tokens["ann"])
    assert added.status_code == 201 and added.json()["active"] is False
    paused = http.post("/actions/opener/run", json={"campaign": "people", "record": 1}, headers=tokens["max"])
    assert paused.status_code == 400 and "resume" in paused.json()["hint"]
    assert http.post("/actions/opener/resume", headers=tokens["max"]).json()["active"] is True
    ran = http.post(
        "/actions/opener/run", json={"campaign": "people", "record": "ada@analytical.io"}, headers=tokens["max"]
    )
    assert ran.status_code == 200 and ran.json()["status"] == "done" and ran.json()["row_id"] == 1
    saved = http.post(f"/action-results/{ran.json()['result_id']}/save", json={}, headers=tokens["max"])
    assert saved.json()["saved_field"] == "notes" and saved.json()["saved_by"] == "max"
    refused = http.post("/actions/opener/run", json={"campaign": "people", "record": 1}, headers=tokens["val"])
    assert refused.status_code == 403 and "viewer" in refused.json()["error"]
    assert http.get("/actions?runnable=true", headers=tokens["val"]).json() == []
    found = http.get("/campaigns/people/records-search?q=cobol", headers=tokens["val"]).json()
    assert [r["row_id"] for r in found] == [2]


def test_the_webhook_runs_on_named_and_created_records(
    client: tuple[TestClient, dict[str, dict[str, str]]], ws: Workspace
) -> None:
    http, tokens = client
    body = {"name": "opener", "kind": "ai", "options": OPENER, "description": "An opener", "produces": "document"}
    http.post("/actions", json=body, headers=tokens["ann"])
    http.post("/actions/opener/resume", headers=tokens["ann"])
    created = {"full_name": "Edsger Dijkstra", "email": "ed@tue.nl", "company": "TUE"}
    answer = http.post(
        "/actions/opener/trigger",
        json={"campaign": "people", "records": ["grace@cobol.dev"], "create": [created]},
        headers=tokens["max"],
    )
    assert answer.status_code == 202
    results = answer.json()["results"]
    finished = [_finished(http, tokens["max"], r) for r in results]
    assert [r["row_id"] for r in finished] == [2, 4]
    assert finished[1]["value"].startswith("[offline model] Write an opener to Edsger Dijkstra at TUE")
    assert {r["trigger"] for r in finished} == {"webhook"}
    documents = http.get("/documents?action=opener", headers=tokens["val"]).json()
    assert sorted(d["row_id"] for d in documents) == [2, 4]
    empty = http.post("/actions/opener/trigger", json={"campaign": "people"}, headers=tokens["max"])
    assert empty.status_code == 400 and "records" in empty.json()["hint"]


def _finished(http: TestClient, headers: dict[str, str], result_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = http.get(f"/action-results/{result_id}", headers=headers).json()
        if found["status"] != "running":
            return dict(found)
        time.sleep(0.05)
    raise AssertionError(f"result {result_id} still running")


def cli(workspace: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"RUNSHEET_WORKSPACE": str(workspace), "USER": "tester"})


def test_the_cli_goes_from_a_template_to_a_saved_result(ws: Workspace, people: Campaign, tmp_path: Path) -> None:
    path = ws.path
    options = tmp_path / "opener.yaml"
    options.write_text("prompt: 'Prep notes for {{ full_name }}'\n")
    added = cli(path, "action", "add", "prep", "--template", "meeting_prep", "--options-file", str(options))
    assert added.exit_code == 0 and "paused" in added.output
    refused = cli(path, "action", "run", "prep", "-c", "people", "-r", "1")
    assert refused.exit_code == 1 and "runsheet action resume prep" in refused.output
    assert cli(path, "action", "resume", "prep").exit_code == 0
    ran = cli(path, "action", "run", "prep", "-c", "people", "-r", "alan@bletchley.uk", "--save", "notes")
    assert ran.exit_code == 0, ran.output
    assert "Prep notes for Alan Turing" in ran.output and "saved to notes by tester" in ran.output
    listed = cli(path, "action", "documents", "--json")
    document_id = __import__("json").loads(listed.output)[0]["document_id"]
    target = tmp_path / "prep.md"
    assert cli(path, "action", "document", str(document_id), "-o", str(target)).exit_code == 0
    assert target.read_text().startswith("[offline model] Prep notes for Alan Turing")
    again = cli(path, "action", "document", str(document_id), "-o", str(target))
    assert again.exit_code == 1 and "exists" in again.output  # a file is never overwritten
    assert cli(path, "action", "rename", "prep", "meeting").exit_code == 0
    deleting = cli(path, "action", "delete", "meeting")
    assert deleting.exit_code == 1 and "--yes" in deleting.output
    gone = cli(path, "action", "delete", "meeting", "--yes")
    assert gone.exit_code == 0 and "1 results, 1 documents" in gone.output
    assert "no action named" in cli(path, "action", "show", "meeting").output


def test_the_api_adds_an_action_as_a_column_and_refuses_a_name_taken(
    client: tuple[TestClient, dict[str, dict[str, str]]], ws: Workspace
) -> None:
    http, tokens = client
    body = {"name": "host", "kind": "formula", "options": {"expression": "split_part(email, '@', 2)"}}
    http.post("/actions", json=body | {"description": "The domain."}, headers=tokens["ann"])
    added = http.post("/actions/host/column", json={"campaign": "people"}, headers=tokens["ann"])
    assert added.status_code == 201 and added.json()["added"] == ["host"], added.text
    assert ws.campaign("people").cell(2, "host").value == "cobol.dev"
    taken = http.post("/actions/host/column", json={"campaign": "people", "name": "email"}, headers=tokens["ann"])
    assert taken.status_code == 400 and "another name" in taken.json()["hint"]
    assert ws.campaign("people").cell(2, "email").value == "grace@cobol.dev"
