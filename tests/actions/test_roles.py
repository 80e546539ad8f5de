"""Roles enforced in the engine: each role tries each action through the CLI and the API; only the allowed ones
succeed, and every refusal is `permission_denied` in the activity log."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import EditError, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app

SPEC = """
campaign: r
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company]}
"""
ROLES = ("admin", "member", "viewer")
RANK = {"viewer": 0, "member": 1, "admin": 2}
USER = {"admin": "ada", "member": "max", "viewer": "vic"}


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    Workspace.init(tmp_path / "ws")
    workspace = Workspace(tmp_path / "ws", actor="ada")
    workspace.apply(SPEC, actor="ada")
    workspace.campaign("r", actor="ada").add_rows([{"company": "acme"}])
    for role in ROLES:
        set_user(workspace.db, "ada", USER[role], role)
    return workspace


def cli_actions(ws: Path, spec: Path) -> list[tuple[str, list[str], str]]:
    """(action, arguments, least role allowed)."""
    return [
        ("show", ["show", "-c", "r"], "viewer"),
        ("status", ["status", "-c", "r"], "viewer"),
        ("run", ["run", "-c", "r"], "member"),
        ("edit input", ["set", "r", "1", "company", "globex"], "member"),
        ("pause", ["pause", "-c", "r"], "member"),
        ("resume", ["resume", "-c", "r"], "member"),
        ("apply spec", ["apply", str(spec)], "admin"),
        ("context", ["context", "set", "icp", "Mid-market SaaS"], "admin"),
        ("settings", ["settings", "concurrency", "8"], "admin"),
        ("credits", ["credits", "add", "5"], "admin"),
        ("users", ["users", "set", "newbie", "viewer"], "admin"),
        ("tokens", ["token", "create", "max"], "admin"),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_tries_each_action_through_the_cli(ws: Workspace, tmp_path: Path, role: str) -> None:
    spec = tmp_path / "r.yaml"
    spec.write_text(SPEC.replace("inputs: [company]}", "inputs: [company], credits: 1}"))
    runner = CliRunner()
    env = {"RUNSHEET_WORKSPACE": str(ws.path), "RUNSHEET_USER": USER[role]}
    refused = []
    for action, argv, least in cli_actions(ws.path, spec):
        result = runner.invoke(app, argv, env=env)
        if RANK[role] >= RANK[least]:
            assert result.exit_code == 0, (role, action, result.output)
        else:
            assert result.exit_code == 1, (role, action, result.output)
            assert f"{USER[role]} is a {role} and may not" in result.output, result.output
            refused.append(action)
    denied = [a for a in ws.activity(100) if a["outcome"] == "permission_denied"]
    assert len(denied) == len(refused)
    assert {a["actor"] for a in denied} <= {USER[role]}


API_ACTIONS = [
    ("read runs", "get", "/runs", None, "viewer"),
    ("list campaigns", "get", "/campaigns", None, "viewer"),
    ("add records", "post", "/campaigns/r/records", {"records": [{"company": "initech"}]}, "member"),
    # rows: [] claims nothing, so no run continues in the background while the next requests are served
    ("start a run", "post", "/campaigns/r/runs", {"columns": ["research"], "rows": []}, "member"),
    ("pause", "post", "/campaigns/r/pause", None, "member"),
    ("resume", "post", "/campaigns/r/resume", None, "member"),
]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_tries_each_action_through_the_api(ws: Workspace, role: str) -> None:
    headers = {"Authorization": f"Bearer {create_token(ws.db, 'ada', USER[role])}"}
    with TestClient(create_app(ws.path)) as client:
        for action, method, path, body, least in API_ACTIONS:
            answer = getattr(client, method)(path, headers=headers, **({"json": body} if body else {}))
            if RANK[role] >= RANK[least]:
                assert answer.status_code in (200, 202), (role, action, answer.text)
            else:
                assert answer.status_code == 403, (role, action, answer.text)
                assert "may not" in answer.json()["error"]


def test_an_open_workspace_lets_everyone_act_and_the_first_user_must_be_admin(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(SPEC, actor="anyone")
    with pytest.raises(EditError, match="first user must be an admin"):
        set_user(ws.db, "anyone", "max", "member")
    set_user(ws.db, "anyone", "ada", "admin")
    with pytest.raises(EditError, match="at least one admin"):
        set_user(ws.db, "ada", "ada", "viewer")
    stranger = Workspace(tmp_path / "ws", actor="stranger")
    assert stranger.campaigns() == ["r"]  # not a user: reads only
    from engine import PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="stranger is a viewer"):
        stranger.set_setting("concurrency", 4)
