"""`runsheet action chat`: a request, its proposal accepted, the chat's history and Reset Chat, offline."""

from __future__ import annotations

from typer.testing import CliRunner

from engine import Campaign, Workspace
from engine.cli import app


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
