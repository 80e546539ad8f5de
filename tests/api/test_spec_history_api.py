"""The spec history over HTTP (issue 15): any role reads who changed a campaign's spec, when, where from, and the
diff; an unknown campaign is a 404 naming it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from engine import Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from tests.conftest import BASIC_SPEC


def test_the_spec_history_is_read_over_http(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws", actor="ada")
    ws.apply(BASIC_SPEC, actor="ada", origin="file")
    ws.apply(BASIC_SPEC.replace("length(opener)", "length(opener) * 2"), actor="ada")
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "vic", "viewer")
    auth = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'vic')}"}
    with TestClient(create_app(ws.path)) as client:
        answer = client.get("/campaigns/t/spec/history", headers=auth)
        assert answer.status_code == 200, answer.text
        changes = answer.json()
        assert [(c["change_id"], c["actor"], c["origin"]) for c in changes] == [(2, "ada", "api"), (1, "ada", "file")]
        assert "+  expression: length(opener) * 2" in changes[0]["diff"]
        assert isinstance(changes[0]["changed_at"], str)
        assert len(client.get("/campaigns/t/spec/history", params={"limit": 1}, headers=auth).json()) == 1
        missing = client.get("/campaigns/nope/spec/history", headers=auth)
        assert missing.status_code == 404 and "nope" in missing.text
        assert client.get("/campaigns/t/spec/history").status_code == 401
