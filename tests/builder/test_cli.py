"""`runsheet action chat`: a request, its proposal accepted, the chat's history and Reset Chat, offline."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engine import Campaign, Status, Workspace
from engine.cli import app
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess


def chat(ws: Workspace, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["action", "chat", *args, "--workspace", str(ws.path)])
    return done.exit_code, done.output


def test_a_sentence_becomes_a_described_paused_action_then_history_and_reset(ws: Workspace, people: Campaign) -> None:
    code, output = chat(ws, "fit", "score each lead against our ICP", "--campaign", "people")
    assert code == 0, output
    assert "offline: drafted from the template icp_score" in output and "--accept-proposal 2" in output
    assert ws.actions().listed() == []  # shown, not applied
    code, output = chat(ws, "fit", "--accept-proposal", "2")
    assert code == 0, output
    action = ws.actions().show("fit")
    assert action["active"] is False and action["description"].startswith("Scores the record")
    code, output = chat(ws, "fit", "--history")
    assert code == 0 and "accepted proposal 2" in output
    code, output = chat(ws, "fit", "what does this do?")
    assert code == 0 and "Scores the record" in output
    code, output = chat(ws, "fit", "--reset")
    assert code == 0 and "5 messages removed" in output
    assert ws.builder().history("fit") == [] and ws.actions().show("fit")["kind"] == "ai"


def test_accept_at_once(ws: Workspace, people: Campaign) -> None:
    code, output = chat(ws, "brief", "research summary of the prospect", "-c", "people", "--accept")
    assert code == 0, output
    assert "accepted: action 'brief' added, paused" in output
    assert ws.actions().show("brief")["category"] == "research"


def test_a_sentence_becomes_a_filled_column(ws: Workspace, people: Campaign) -> None:
    code, output = chat(ws, "fit", "score each lead 1-10 against our ICP", "-c", "people", "--add-column")
    assert code == 1 and "give --accept and -c NAME" in output and ws.actions().listed() == []
    code, output = chat(ws, "fit", "score each lead 1-10 against our ICP", "-c", "people", "--accept", "--add-column")
    assert code == 0, output
    assert "campaign people updated" in output and "added: fit" in output
    cells = [ws.campaign("people").cell(r, "fit") for r in (1, 2, 3)]
    assert all(
        c.status is Status.DONE and 1 <= json.loads(c.value)["score"] <= 10 for c in cells
    )  # free offline: filled
    again = CliRunner().invoke(app, ["action", "column", "fit", "-c", "people", "--workspace", str(ws.path)])
    assert again.exit_code == 1 and "has a column named 'fit' already" in again.output
    named = ["action", "column", "fit", "-c", "people", "--name", "fit2", "--workspace", str(ws.path)]
    assert CliRunner().invoke(app, named).exit_code == 0
    assert ws.campaign("people").cell(1, "fit2").value == cells[0].value


def test_a_proposal_that_failed_exits_1_with_its_reason(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    fresh_provider.control(replies=[{"status": 401}])
    model = ["--model", "openai/fake-builder", "--api-base", fresh_provider.api_base, "--api-key-env", KEY_ENV]
    code, output = chat(ws, "domain", "normalise the domain", "-c", "people", *model)
    assert code == 1 and "the model gave no proposal" in output
    assert "internal error" not in output and ws.actions().listed() == []
