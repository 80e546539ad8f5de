"""Copilot's faces: `runsheet copilot start/say/save/show/reset` and the HTTP routes, through the fake provider;
roles as for running the step (a viewer's token reads a chat and is refused the rest, with the fix)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import Campaign, Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app
from tests.copilot.conftest import script
from tests.support.provider import ProviderProcess


def runsheet(ws: Workspace, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["copilot", *args, "--workspace", str(ws.path)])
    return done.exit_code, done.output


def test_the_cli_starts_says_pins_shows_and_resets(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    code, output = runsheet(ws, "start", "--campaign", "leads", "--row", "1", "--column", "opener", "--json")
    assert code == 0, output
    chat = json.loads(output)
    assert chat["seed"]["record"]["company"] == "Analytical" and chat["messages"] == []
    chat_id = str(chat["chat_id"])
    script(fresh_provider, "Ada, hello.", "Ada, congrats on the Series B.")
    for said, answer in (("shorter", "Ada, hello."), ("mention their Series B", "Ada, congrats on the Series B.")):
        code, output = runsheet(ws, "say", chat_id, said)
        assert code == 0 and answer in output and f"runsheet copilot save {chat_id}" in output, output
    code, output = runsheet(ws, "save", chat_id, "--to", "cell")
    assert code == 0 and "used: cell:opener" in output and "runsheet confirm" in output, output
    assert (leads.cell(1, "opener").value, leads.cell(1, "opener").status) == (
        "Ada, congrats on the Series B.",
        Status.PINNED,
    )
    code, output = runsheet(ws, "save", chat_id, "--to", "record", "--message", str(chat["chat_id"] and 2))
    assert code == 0 and "used: record:notes" in output, output
    assert leads.cell(1, "notes").value == "opener: Ada, hello."  # message 2: the first reply
    code, output = runsheet(ws, "show", chat_id)
    assert code == 0 and "mention their Series B" in output and "used: cell:opener" in output, output
    code, output = runsheet(ws, "reset", chat_id)
    assert code == 0 and "4 messages removed" in output, output


def test_the_cli_says_what_to_fix(ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess) -> None:
    code, output = runsheet(ws, "say", "7", "shorter")
    assert code == 1 and "no Copilot chat 7" in output and "runsheet copilot start" in output
    code, output = runsheet(ws, "start", "--campaign", "leads", "--row", "1", "--column", "summary")
    assert code == 1 and "no result to continue" in output and "runsheet run -c leads" in output
    code, output = runsheet(ws, "start", "--campaign", "leads", "--row", "1", "--column", "opener")
    assert code == 0, output
    code, output = runsheet(ws, "save", "1", "--to", "cell")
    assert code == 1 and "no reply to save yet" in output and "runsheet copilot say 1" in output
    code, output = runsheet(ws, "save", "1", "--to", "somewhere")
    assert code == 1 and "--to record or --to cell" in output
    script(fresh_provider, {"status": 401})
    code, output = runsheet(ws, "say", "1", "shorter")
    assert code == 1 and "provider_error" in output and "nothing was changed" in output


def test_the_api_routes_and_roles(ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess) -> None:
    set_user(ws.db, "ann", "ann", "admin")
    set_user(ws.db, "ann", "val", "viewer")
    tokens = {u: {"Authorization": f"Bearer {create_token(ws.db, 'ann', u)}"} for u in ("ann", "val")}
    http = TestClient(create_app(ws.path))
    where = {"campaign": "leads", "row": 2, "column": "opener"}
    refused = http.post("/copilot/chats", json=where, headers=tokens["val"])
    assert refused.status_code == 403 and "may not run" in refused.json()["error"]
    assert "runsheet token create" in refused.json()["hint"]
    started = http.post("/copilot/chats", json=where, headers=tokens["ann"])
    assert started.status_code == 200, started.text
    chat_id = started.json()["chat_id"]
    script(fresh_provider, "Grace, short.")
    said = http.post(f"/copilot/chats/{chat_id}/messages", json={"message": "shorter"}, headers=tokens["ann"])
    assert said.status_code == 200 and said.json()["content"] == "Grace, short."
    empty = http.post(f"/copilot/chats/{chat_id}/messages", json={"message": " "}, headers=tokens["ann"])
    assert empty.status_code == 400 and "copilot say" in empty.json()["hint"]
    read = http.get(f"/copilot/chats/{chat_id}", headers=tokens["val"])
    assert read.status_code == 200 and [m["role"] for m in read.json()["messages"]] == ["user", "assistant"]
    for path, body in (("messages", {"message": "longer"}), ("save", {"to": "cell"}), ("reset", None)):
        answer = http.post(f"/copilot/chats/{chat_id}/{path}", json=body, headers=tokens["val"])
        assert answer.status_code == 403, (path, answer.text)
    saved = http.post(f"/copilot/chats/{chat_id}/save", json={"to": "cell"}, headers=tokens["ann"])
    assert saved.status_code == 200 and saved.json()["used_as"] == "cell:opener" and saved.json()["used_by"] == "ann"
    assert leads.cell(2, "opener").value == "Grace, short." and leads.cell(2, "push").status is Status.WAITING
    assert http.get("/copilot/chats/99", headers=tokens["ann"]).status_code == 404
