"""The builder asks through tool calling (a forced call whose parameters are the proposal's schema), on both
transports, and still reads a model that answers in prose; `tools=False` asks in JSON mode. Its HTTP routes:
describe, read, accept exactly what was shown, Reset Chat, with roles."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from engine import ActionBuilder, BuilderModel, Campaign, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from tests.builder.conftest import proposal, script
from tests.builder.test_builder import DOMAIN, SCORE, actions_table
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess


def _builder(ws: Workspace, provider: ProviderProcess, **given: object) -> ActionBuilder:
    return ws.builder(BuilderModel("openai/fake-builder", api_base=provider.api_base, api_key_env=KEY_ENV, **given))


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_a_proposal_arrives_as_a_tool_call_on_either_transport(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess, transport: str
) -> None:
    answer = json.loads(proposal("ai", SCORE, "Scores each lead against the ICP."))
    script(fresh_provider, {"tool_call": answer})
    builder = _builder(ws, fresh_provider, transport=transport)
    shown = builder.turn("fit", "score each lead 1-10 against our ICP", campaign="people")["proposal"]
    assert shown["status"] == "proposed", shown.get("error")
    assert shown["kind"] == "ai" and shown["options"]["output_schema"] == SCORE["output_schema"]
    assert fresh_provider.ledger()["tool_requests"] == 1
    assert builder.accept(shown_id(builder, "fit"))["kind"] == "ai"


def shown_id(builder: ActionBuilder, action: str) -> int:
    return next(m["message_id"] for m in reversed(builder.history(action)) if m["proposal"])


def test_a_model_answering_in_prose_is_read_and_json_mode_sends_no_tools(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess
) -> None:
    script(fresh_provider, proposal("formula", DOMAIN, "The domain."))  # prose (JSON text) despite the tool
    shown = _builder(ws, fresh_provider).turn("domain", "normalise the domain", campaign="people")["proposal"]
    assert shown["status"] == "proposed" and fresh_provider.ledger()["tool_requests"] == 1
    script(fresh_provider, proposal("formula", DOMAIN, "The domain."))
    json_mode = _builder(ws, fresh_provider, tools=False)
    assert json_mode.turn("domain2", "normalise the domain", campaign="people")["proposal"]["status"] == "proposed"
    assert fresh_provider.ledger()["tool_requests"] == 1  # the second turn offered no tool


def test_an_invalid_tool_call_is_repaired_by_a_second_call_and_nothing_is_applied_before_accept(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess
) -> None:
    broken = {"kind": "formula", "options": {"expression": "lower(no_such_column)"}, "description": "x"}
    broken |= {"plan": ["write"], "changes": "new"}
    script(fresh_provider, {"tool_call": broken}, {"tool_call": json.loads(proposal("formula", DOMAIN, "Domain."))})
    before = actions_table(ws)
    shown = _builder(ws, fresh_provider).turn("domain", "normalise the domain", campaign="people")["proposal"]
    assert shown["status"] == "proposed" and shown["model_calls"] == 2 and "no_such_column" in shown["repaired_from"]
    assert fresh_provider.ledger()["tool_requests"] == 2 and actions_table(ws) == before


def test_a_question_is_answered_through_its_tool(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess
) -> None:
    ws.actions().add("domain", "formula", DOMAIN, description="The company's domain.")
    script(fresh_provider, {"tool_call": {"answer": "It keeps what follows the @, lower-cased."}})
    message = _builder(ws, fresh_provider).chat("domain", "what does this do?")
    assert message["content"] == "It keeps what follows the @, lower-cased."
    assert fresh_provider.ledger()["tool_requests"] == 1


def test_the_api_proposes_accepts_what_was_shown_and_resets_with_roles(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess
) -> None:
    set_user(ws.db, "ann", "ann", "admin")
    set_user(ws.db, "ann", "max", "member")
    headers = {u: {"Authorization": f"Bearer {create_token(ws.db, 'ann', u)}"} for u in ("ann", "max")}
    http = TestClient(create_app(ws.path))
    model = {"model": "openai/fake-builder", "api_base": fresh_provider.api_base, "api_key_env": KEY_ENV}
    script(fresh_provider, {"tool_call": json.loads(proposal("formula", DOMAIN, "The company's domain."))})
    said = http.post(
        "/actions/domain/chat",
        json=model | {"message": "normalise the domain", "campaign": "people"},
        headers=headers["ann"],
    )
    assert said.status_code == 200, said.text
    shown = said.json()["proposal"]
    assert shown["status"] == "proposed" and [r["value"] for r in shown["preview"]["rows"]][0] == "analytical.io"
    assert http.get("/actions/domain", headers=headers["ann"]).status_code == 404  # nothing applied yet
    refused = http.post(f"/action-proposals/{said.json()['message_id']}/accept", headers=headers["max"])
    assert refused.status_code == 403 and refused.json()["hint"]
    accepted = http.post(f"/action-proposals/{said.json()['message_id']}/accept", headers=headers["ann"])
    assert accepted.status_code == 200 and accepted.json()["options"] == DOMAIN
    assert accepted.json()["active"] is False  # a new action starts paused
    again = http.post(f"/action-proposals/{said.json()['message_id']}/accept", headers=headers["ann"])
    assert again.status_code == 400 and "accepted already" in again.json()["error"]
    roles = [m["role"] for m in http.get("/actions/domain/chat", headers=headers["max"]).json()]
    assert roles == ["user", "assistant", "event"]
    assert http.post("/actions/domain/pause", headers=headers["ann"]).status_code == 200  # the switches still route
    assert http.delete("/actions/domain/chat", headers=headers["ann"]).json() == {"removed": 3}
    empty = http.post("/actions/domain/chat", json={"message": " "}, headers=headers["ann"])
    assert empty.status_code == 400 and "say what the action should do" in empty.json()["error"]
