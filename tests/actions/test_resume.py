"""Resuming a paused campaign starts the work accepted while it was paused: `runsheet resume` runs it and prints
the run report (`--no-run` only resumes), a resumed step runs its own cells, and inside `runsheet serve` a
schedule that came due while the campaign was paused runs at the next tick after a resume through the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine import Status, Workspace
from engine.auth import create_token, set_user
from engine.cli import app
from engine.schedules import add_schedule
from tests.actions.test_api import free_port
from tests.support.consent import apply_active
from tests.support.servers import serve_process

SPEC = """
campaign: p
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company], credits: 1}
  - {name: summary, kind: formula, expression: "upper(research)"}
  - {name: score, kind: probe, inputs: [company], run: manual}
"""


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    apply_active(workspace, SPEC)
    return workspace


def cli(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "-w", str(ws.path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_resume_runs_what_came_in_while_paused_and_prints_the_report(ws: Workspace) -> None:
    cli(ws, "pause", "-c", "p")
    campaign = ws.campaign("p", trigger="webhook")
    campaign.add_rows([{"company": f"c{i}"} for i in range(3)], run=False)  # as the API stores them while paused
    campaign.run(["research"], rows=[1])  # asked while paused: shown paused, not an error
    assert campaign.cell(1, "research").status is Status.PAUSED
    output = cli(ws, "resume", "-c", "p")
    assert "campaign p resumed" in output
    assert "research" in output and "3 done" in output and "3 credits" in output  # the run report
    counts = campaign.status_counts()
    assert counts["research"] == {"done": 3} and counts["summary"] == {"done": 3}
    assert counts["score"] == {"empty": 3}  # manual steps are not run by a resume
    run = ws.runs(1)[0]
    assert (run["trigger"], run["request"]["columns"]) == ("cli", ["research", "summary"])
    assert "was already resumed" in cli(ws, "resume", "-c", "p")


def test_no_run_only_resumes_and_json_says_so(ws: Workspace) -> None:
    cli(ws, "pause", "-c", "p")
    ws.campaign("p").add_rows([{"company": "acme"}], run=False)
    assert json.loads(cli(ws, "resume", "-c", "p", "--no-run", "--json")) == {
        "campaign": "p",
        "changed": True,
        "run": None,
    }
    assert ws.campaign("p").status_counts()["research"] == {"empty": 1}
    cli(ws, "pause", "-c", "p")
    ran = json.loads(cli(ws, "resume", "-c", "p", "--json"))
    assert ran["changed"] is True and ran["run"]["counts"]["research"] == {"done": 1}


def test_resuming_a_step_runs_that_step_only(ws: Workspace) -> None:
    campaign = ws.campaign("p")
    campaign.add_rows([{"company": "acme"}, {"company": "globex"}])
    cli(ws, "pause", "-c", "p", "--column", "research")
    campaign.run()
    assert campaign.status_counts()["research"] == {"paused": 2}  # shown paused, not an error
    resumed = ws.resume("p", "research")
    assert resumed.changed and resumed.run is not None and resumed.run.claims[0].column == "research"
    report = resumed.campaign.finish_run(resumed.run)
    assert report.counts()["research"] == {"done": 2}
    ws.pause("p", "score")
    assert ws.resume("p", "score").run is None  # a manual step: resumed, nothing to run


def test_a_schedule_due_while_paused_runs_at_the_next_tick_after_resume(ws: Workspace) -> None:
    ws.campaign("p").add_rows([{"company": f"c{i}"} for i in range(2)])
    set_user(ws.db, "ada", "ada", "admin")
    ada = Workspace(ws.path, actor="ada")
    add_schedule(ada, "p", every="1s")  # a schedule runs as its creator
    ada.pause("p")
    headers = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'ada')}"}
    port = free_port()
    server = serve_process(ws.path, port, "--tick", "0.2", stderr=subprocess.PIPE)
    try:
        _wait_until(lambda: _get(port, "/health", {}) == {"ok": True})
        time.sleep(1.5)  # the schedule is due and several ticks pass: a paused campaign runs nothing
        assert _schedule_runs(ws) == []
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/campaigns/p/resume?run=false", method="POST", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"changed": True, "run": None}
        _wait_until(lambda: bool(_schedule_runs(ws)))
        assert ws.campaign("p").status_counts()["research"] == {"done": 2}
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _schedule_runs(ws: Workspace) -> list[dict[str, object]]:
    return [r for r in ws.runs(50) if r["trigger"] == "schedule" and r["status"] == "done"]


def _get(port: int, path: str, headers: dict[str, str]) -> object:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers), timeout=2
        ) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _wait_until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")
