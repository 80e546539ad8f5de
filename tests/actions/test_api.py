"""The HTTP API of `runsheet serve`: token auth, batch intake with upsert, clear 4xx for bad input (nothing
stored), runs triggered, watched and stopped, paused campaigns, OpenAPI, and the real server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine import Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from tests.support.servers import serve_process

SPEC = """
campaign: leads
columns:
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: research, kind: probe, inputs: [domain], delay: 0.0}
"""
SLOW = SPEC.replace("delay: 0.0", "delay: 0.3")


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    Workspace.init(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws", actor="ada")
    ws.apply(SPEC, actor="ada")
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "max", "member")
    set_user(ws.db, "ada", "vic", "viewer")
    return ws


@pytest.fixture()
def client(workspace: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(workspace.path)) as found:
        yield found


def token(ws: Workspace, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(ws.db, 'ada', user)}"}


def people(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"email": f"p{i}@c{i % 50}.com", "company": f"C{i}", "employees": i} for i in range(start, start + n)]


def test_auth_failures_are_401_with_the_fix_and_store_nothing(client: TestClient, workspace: Workspace) -> None:
    body = {"records": people(3)}
    for headers in ({}, {"Authorization": "Bearer rs_not-a-token"}, {"Authorization": "Basic YWRhOnB3"}):
        answer = client.post("/campaigns/leads/records", json=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] in ("no token", "unknown token")
        assert "runsheet token create" in answer.json()["hint"]
    assert client.get("/health").json() == {"ok": True}
    assert workspace.campaign("leads").row_count() == 0


def test_malformed_input_is_a_clear_4xx_and_nothing_is_stored(client: TestClient, workspace: Workspace) -> None:
    auth = {**token(workspace, "max"), "content-type": "application/json"}
    cases = [
        ('{"records": [{"email": "a@b.com"}', 422, "not valid JSON"),
        ('{"records": "a@b.com"}', 422, "records"),
        ('{"records": []}', 422, "records"),
        ('{"records": [{"email": "a@b.com"}], "extra": 1}', 422, "extra"),
        ('{"records": [{"email": "a@b.com", "phone": "1"}]}', 400, "phone"),
        ('{"records": [{"email": "a@b.com", "employees": "many"}]}', 400, "employees"),
        ('{"records": [{"email": "a@b.com"}], "key": "nope"}', 400, "nope"),
    ]
    for text, status, mentions in cases:
        answer = client.post("/campaigns/leads/records", content=text, headers=auth)
        assert answer.status_code == status, (text, answer.text)
        assert mentions in answer.json()["error"], (text, answer.json())
        assert answer.json()["hint"]
    missing = client.post("/campaigns/nope/records", json={"records": people(1)}, headers=auth)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    assert workspace.campaign("leads").row_count() == 0


def test_batch_intake_of_10000_records_with_upsert(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "max")
    first = client.post("/campaigns/leads/records", json={"records": people(10_000), "key": "email"}, headers=auth)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "campaign": "leads",
        "inserted": 10_000,
        "updated": 0,
        "unchanged": 0,
        "queued": True,
        "enrichment": "background",
        "message": None,
    }
    again = people(9_950, start=100)  # 50 new records at the end, 100 changed companies
    for record in again[:100]:
        record["company"] = "Changed " + record["company"]
    second = client.post("/campaigns/leads/records", json={"records": again, "key": "email"}, headers=auth)
    assert second.status_code == 200, second.text
    assert second.json() | {"campaign": "leads"} == {
        "campaign": "leads",
        "inserted": 50,
        "updated": 100,
        "unchanged": 9_800,
        "queued": True,
        "enrichment": "background",
        "message": None,
    }
    campaign = workspace.campaign("leads")
    assert campaign.row_count() == 10_050
    values = campaign.values()
    assert values.filter(values["email"] == "p110@c10.com")["company"].to_list() == ["Changed C110"]
    assert values.filter(values["email"] == "p10@c10.com")["company"].to_list() == ["C10"]
    counts = campaign.status_counts()
    assert counts["domain"] == {"done": 10_050}  # free steps computed at intake
    assert client.app.state.runsheet.intake.wait(timeout=300)  # type: ignore[attr-defined]
    counts = campaign.status_counts()
    assert counts["research"] == {"done": 10_050}  # paid ones ran in the background (engine/intake.py)
    plain = client.post("/campaigns/leads/records", json={"records": people(2, start=20_000)}, headers=auth)
    assert plain.json()["inserted"] == 2 and campaign.row_count() == 10_052


def _wait_for(client: TestClient, run_id: int, auth: dict[str, str], statuses: set[str]) -> dict[str, Any]:
    for _ in range(600):
        found = client.get(f"/runs/{run_id}", headers=auth).json()
        if found["status"] in statuses:
            return dict(found)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {statuses}")


def test_trigger_read_and_stop_runs(client: TestClient, workspace: Workspace) -> None:
    workspace.set_setting("intake_budget", 0)  # records only queue: the runs here are asked for
    auth = token(workspace, "max")
    client.post("/campaigns/leads/records", json={"records": people(5)}, headers=auth)
    started = client.post("/campaigns/leads/runs", json={"columns": ["research"], "rows": [1, 2, 3]}, headers=auth)
    assert started.status_code == 202, started.text
    finished = _wait_for(client, started.json()["run_id"], auth, {"done"})
    assert (finished["total"], finished["done"], finished["actor"], finished["trigger"]) == (3, 3, "max", "api")
    assert finished["counts"]["research"] == {"done": 3}
    assert workspace.campaign("leads").status_counts()["research"] == {"done": 3, "queued": 2}

    workspace.apply(SLOW, actor="ada")
    workspace.set_setting("concurrency", 1)
    client.post("/campaigns/leads/records", json={"records": people(40, start=100)}, headers=auth)
    slow = client.post("/campaigns/leads/runs", json={"columns": ["research"]}, headers=auth).json()
    assert slow["status"] == "running"
    _wait_for_progress(client, slow["run_id"], auth)
    stopped = client.post(f"/runs/{slow['run_id']}/stop", headers=auth)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    assert 0 < stopped.json()["done"] < stopped.json()["total"]
    assert client.post(f"/runs/{slow['run_id']}/stop", headers=auth).status_code == 409
    assert client.get("/runs/999999", headers=auth).status_code == 404
    listed = client.get("/runs", params={"campaign": "leads", "limit": 50}, headers=auth).json()
    assert slow["run_id"] in [r["run_id"] for r in listed]


def _wait_for_progress(client: TestClient, run_id: int, auth: dict[str, str]) -> None:
    for _ in range(600):
        if client.get(f"/runs/{run_id}", headers=auth).json()["done"] > 0:
            return
        time.sleep(0.05)
    raise AssertionError("no progress")


def test_shutdown_stops_the_runs_the_server_started_on_behalf_of_their_starter(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNSHEET_USER", "vic")  # the server's own user may not stop runs: the starter asks
    workspace.set_setting("intake_budget", 0)  # records only queue: the run here is asked for
    workspace.apply(SLOW, actor="ada")
    workspace.set_setting("concurrency", 1)
    with TestClient(create_app(workspace.path)) as client:
        auth = token(workspace, "max")
        client.post("/campaigns/leads/records", json={"records": people(40)}, headers=auth)
        slow = client.post("/campaigns/leads/runs", json={"columns": ["research"]}, headers=auth).json()
        _wait_for_progress(client, slow["run_id"], auth)
    run = next(r for r in workspace.runs(20) if r["run_id"] == slow["run_id"])
    assert (run["status"], run["stop_requested"], run["actor"]) == ("stopped", True, "max")
    assert 0 < run["done"] < run["total"] == 40
    assert workspace.campaign("leads").status_counts()["research"].get("running", 0) == 0  # cells given back
    denied = workspace.query("SELECT count(*) AS n FROM activity WHERE outcome = 'permission_denied'")
    assert denied["n"].to_list() == [0]


def test_roles_through_the_api(client: TestClient, workspace: Workspace) -> None:
    viewer, member = token(workspace, "vic"), token(workspace, "max")
    refused = client.post("/campaigns/leads/records", json={"records": people(1)}, headers=viewer)
    assert refused.status_code == 403
    assert "vic is a viewer" in refused.json()["error"] and "admin" in refused.json()["hint"]
    assert client.post("/campaigns/leads/runs", json={}, headers=viewer).status_code == 403
    assert client.post("/campaigns/leads/pause", headers=viewer).status_code == 403
    assert client.get("/campaigns", headers=viewer).json() == ["leads"]
    assert client.post("/campaigns/leads/records", json={"records": people(1)}, headers=member).status_code == 200
    denied = [a for a in workspace.activity(50) if a["outcome"] == "permission_denied"]
    assert sorted((a["actor"], a["action"]) for a in denied) == [
        ("vic", "add_records"),
        ("vic", "pause"),
        ("vic", "run"),
    ]


def test_a_paused_campaign_accepts_records_and_runs_nothing_until_resumed(
    client: TestClient, workspace: Workspace
) -> None:
    auth = token(workspace, "max")
    assert client.post("/campaigns/leads/pause", headers=auth).json() == {"changed": True}
    answer = client.post("/campaigns/leads/records", json={"records": people(3)}, headers=auth)
    assert answer.json()["queued"] is False and answer.json()["inserted"] == 3
    run = client.post("/campaigns/leads/runs", json={"columns": ["research"]}, headers=auth).json()
    assert _wait_for(client, run["run_id"], auth, {"done"})["counts"]["research"] == {"paused": 3}
    cell = workspace.campaign("leads").cell(1, "research")
    assert cell.status is Status.PAUSED and cell.error_code is None  # paused, never an error
    resumed = client.post("/campaigns/leads/resume", headers=auth).json()
    assert resumed["changed"] is True and (resumed["run"]["trigger"], resumed["run"]["actor"]) == ("api", "max")
    finished = _wait_for(client, resumed["run"]["run_id"], auth, {"done"})  # resuming ran what was held back
    assert finished["counts"]["research"] == {"done": 3}
    assert workspace.campaign("leads").status_counts()["research"] == {"done": 3}
    assert client.post("/campaigns/leads/resume", headers=auth).json() == {"changed": False, "run": None}


def test_resume_runs_the_records_that_came_in_while_paused_unless_told_not_to(
    client: TestClient, workspace: Workspace
) -> None:
    auth = token(workspace, "max")
    client.post("/campaigns/leads/pause", headers=auth)
    client.post("/campaigns/leads/records", json={"records": people(4)}, headers=auth)
    assert workspace.campaign("leads").status_counts()["research"] == {"empty": 4}
    held = client.post("/campaigns/leads/resume", params={"run": "false"}, headers=auth).json()
    assert held == {"changed": True, "run": None}
    assert workspace.campaign("leads").status_counts()["research"] == {"empty": 4}
    client.post("/campaigns/leads/pause", headers=auth)
    client.post("/campaigns/leads/records", json={"records": people(2, start=10)}, headers=auth)
    resumed = client.post("/campaigns/leads/resume", headers=auth).json()
    finished = _wait_for(client, resumed["run"]["run_id"], auth, {"done"})
    assert finished["counts"]["research"] == {"done": 6} and finished["total"] == 6
    assert workspace.campaign("leads").status_counts()["research"] == {"done": 6}


def test_records_from_the_api_are_logged_with_the_webhook_trigger(client: TestClient, workspace: Workspace) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    auth = token(workspace, "max")
    client.post("/campaigns/leads/records", json={"records": people(3)}, headers=auth)
    changed = people(3)
    changed[0]["company"] = "Renamed"
    client.post("/campaigns/leads/records", json={"records": changed, "key": "email"}, headers=auth)
    result = CliRunner().invoke(app, ["log", "-w", str(workspace.path), "--trigger", "webhook", "--json"])
    assert result.exit_code == 0, result.output
    logged = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [(r["actor"], r["trigger"]) for r in logged] == [("max", "webhook")] * 3  # append; upsert edit + new
    assert logged[0]["outcomes"]["done"] == 3  # the appended records' domains, computed at intake
    assert client.app.state.runsheet.intake.wait(timeout=60)  # type: ignore[attr-defined]
    enriched = [r for r in workspace.runs(20) if r["trigger"] == "intake"]  # their research, in the background
    assert enriched and {r["actor"] for r in enriched} == {"max"}
    assert {r["trigger"] for r in workspace.runs(20)} == {"apply", "webhook", "intake"}
    csv = workspace.path.parent / "more.csv"
    csv.write_text("email,company\nzed@z.com,Zed\n")
    imported = CliRunner().invoke(
        app, ["import", str(csv), "-c", "leads", "-w", str(workspace.path)], env={"RUNSHEET_USER": "max"}
    )
    assert imported.exit_code == 0, imported.output
    assert {r["trigger"] for r in workspace.runs(20)} == {"apply", "webhook", "intake", "cli"}  # the CLI's stays cli


def test_openapi_documents_the_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert {"/campaigns/{name}/records", "/campaigns/{name}/runs", "/runs/{run_id}", "/runs/{run_id}/stop"} <= set(
        document["paths"]
    )
    assert "HTTPBearer" in json.dumps(document["components"]["securitySchemes"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_runsheet_serve_starts_with_one_command_on_loopback(workspace: Workspace) -> None:
    port = free_port()
    server = serve_process(workspace.path, port, "--no-schedules", stderr=subprocess.PIPE)
    try:
        health = None
        for _ in range(400):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    health = json.loads(response.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        assert health == {"ok": True}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/campaigns",
            headers=token(workspace, "vic"),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == ["leads"]
        listening = [c for c in _listeners(server.pid) if c.endswith(f":{port}")]
        assert listening == [f"127.0.0.1:{port}"]
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _listeners(pid: int) -> list[str]:
    import psutil

    return [f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"]
