"""Records posted to the API enrich themselves (issue 15): their active paid auto-run steps run in a background
run of trigger `intake` (form fill -> enrich -> push without a schedule), billed once, within the campaign's daily
intake budget; over it their cells stay queued and the reply, the cells and the activity say so. The run is a run
like any other: in `runs`, stoppable, ended with the server, and given back by reclaim after a crash."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
from engine.cli import app as cli
from tests.actions.conftest import Receiver
from tests.actions.test_api import free_port
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess, start_provider
from tests.support.servers import serve_process

KEY_ENV = "RUNSHEET_TEST_PROVIDER_KEY"
ADA = {"RUNSHEET_USER": "ada"}


def spec(provider: ProviderProcess, receiver: Receiver) -> str:
    return f"""
campaign: inbound
columns:
  - {{name: email, kind: input}}
  - {{name: company, kind: input}}
  - name: research
    kind: ai
    model: openai/fake-model
    api_base: {provider.api_base}
    api_key_env: {KEY_ENV}
    tier: fast
    timeout: 30
    prompt: "Research {{{{ company }}}}"
  - {{name: line, kind: formula, expression: "research || ' for ' || email"}}
  - name: push
    kind: export
    url: "{receiver.base}/hooks/crm"
    fields: [email, line]
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderProcess]:
    process = start_provider(lifetime=1800)
    yield process
    process.stop()


@pytest.fixture()
def workspace(
    ws: Workspace, provider: ProviderProcess, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    provider.reset()
    provider.control(latency=0.0, mode=None)
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}", f"127.0.0.1:{provider.port}"])
    apply_active(ws, spec(provider, receiver))
    set_user(ws.db, ws.actor, "ada", "admin")
    set_user(ws.db, "ada", "max", "member")
    ws.actor = "ada"
    return ws


@pytest.fixture()
def client(workspace: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(workspace.path)) as found:
        yield found


def auth(ws: Workspace, user: str = "max") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(ws.db, 'ada', user)}"}


def post(client: TestClient, headers: dict[str, str], records: list[dict[str, Any]], key: str | None = None) -> Any:
    answer = client.post("/campaigns/inbound/records", json={"records": records, "key": key}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def settle(client: TestClient) -> None:
    """Wait for the server's intake workers to go idle (the test hook: engine/intake.py's Intake.wait)."""
    assert client.app.state.runsheet.intake.wait(timeout=120)  # type: ignore[attr-defined]


def intake_runs(ws: Workspace) -> list[dict[str, Any]]:
    return [r for r in ws.runs(100) if r["trigger"] == "intake"]


def research(ws: Workspace) -> dict[int, Any]:
    page = ws.campaign("inbound").page(columns=["research"], limit=1000)
    return {row: cells["research"] for row, cells in zip(page.row_ids, page.rows, strict=True)}


def billed(provider: ProviderProcess) -> Counter[str]:
    return Counter(entry["prompt"] for entry in provider.ledger()["billed"])


def running_intake_run(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """The intake run in flight, once its worker has claimed the cells (bounded wait, not a timed assertion)."""
    for _ in range(600):
        found = [
            r for r in client.get("/runs", params={"limit": 50}, headers=headers).json() if r["trigger"] == "intake"
        ]
        if found and found[0]["status"] == "running" and found[0]["total"]:
            return dict(found[0])
        time.sleep(0.05)
    raise AssertionError("no intake run started")


def test_posted_records_enrich_and_push_themselves_in_a_background_run_billed_once(
    client: TestClient, workspace: Workspace, provider: ProviderProcess, receiver: Receiver
) -> None:
    headers = auth(workspace)
    people = [
        {"email": "ada@acme.com", "company": "Acme"},
        {"email": "bob@acme.com", "company": "Acme"},  # the same request as ada's: billed once
        {"email": "cy@beta.io", "company": "Beta"},
    ]
    reply = post(client, headers, people)
    assert (reply["inserted"], reply["enrichment"], reply["message"]) == (3, "background", None)
    settle(client)
    cells = research(workspace)
    assert {row: (c.status, c.value) for row, c in cells.items()} == {
        1: (Status.DONE, "answer: Research Acme"),
        2: (Status.DONE, "answer: Research Acme"),
        3: (Status.DONE, "answer: Research Beta"),
    }
    assert sorted(billed(provider).values()) == [1, 1]  # two distinct requests, each billed once
    assert workspace.credits() == 1000 - 2  # fast tier: 1 credit a call; the repeat came from the cache
    runs = intake_runs(workspace)
    assert [(r["status"], r["actor"], r["credits"]) for r in runs] == [("done", "max", 2.0)]
    sent = sorted(json.loads(d["body"])["data"]["line"] for d in receiver.deliveries())
    assert sent == [  # pushed: form fill -> enrich -> push, with no schedule and no run asked for
        "answer: Research Acme for ada@acme.com",
        "answer: Research Acme for bob@acme.com",
        "answer: Research Beta for cy@beta.io",
    ]
    logged = workspace.query(
        "SELECT column_name, trigger, actor, count(*) AS n FROM activity WHERE run_id = "
        f"{runs[0]['run_id']} AND column_name = 'research' GROUP BY ALL"
    )
    assert logged.to_dicts() == [{"column_name": "research", "trigger": "intake", "actor": "max", "n": 3}]

    changed = post(client, headers, [{"email": "ada@acme.com", "company": "Gamma"}], key="email")  # an upsert
    assert (changed["updated"], changed["enrichment"]) == (1, "background")
    settle(client)
    assert research(workspace)[1].value == "answer: Research Gamma"  # the updated row enriched itself too
    assert sorted(billed(provider).values()) == [1, 1, 1] and workspace.credits() == 1000 - 3


def test_the_request_does_not_wait_and_the_background_run_can_be_stopped(
    client: TestClient, workspace: Workspace, provider: ProviderProcess
) -> None:
    headers = auth(workspace)
    provider.control(mode="hang")  # the provider never answers: the reply cannot have waited for the run
    try:
        reply = post(client, headers, [{"email": "ada@acme.com", "company": "Acme"}])
        assert reply["enrichment"] == "background"
        run = running_intake_run(client, headers)
        assert research(workspace)[1].status == Status.RUNNING
        stopped = client.post(f"/runs/{run['run_id']}/stop", headers=headers)
        assert stopped.status_code == 200, stopped.text
        settle(client)
    finally:
        provider.control(mode=None)
    assert workspace.run_record(run["run_id"])["status"] == "stopped"  # type: ignore[index]
    cell = research(workspace)[1]
    assert (cell.status, cell.error_code) == (Status.ERROR, "cancelled")  # as Stop leaves any call in flight
    assert not billed(provider)
    assert workspace.campaign("inbound", actor="ada").run().counts()["research"] == {
        "done": 1
    }  # a plain run retries it


def test_over_the_intake_budget_cells_stay_queued_and_say_so(
    client: TestClient, workspace: Workspace, provider: ProviderProcess
) -> None:
    result = CliRunner().invoke(
        cli, ["settings", "intake_budgets", '{"inbound": 2}', "-w", str(workspace.path)], env=ADA
    )
    assert result.exit_code == 0, result.output
    assert workspace.settings().intake_budget_of("inbound") == 2 and workspace.settings().intake_budget == 100
    headers = auth(workspace)
    people = [{"email": f"p{i}@c.com", "company": f"Company {i}"} for i in range(3)]
    assert post(client, headers, people)["enrichment"] == "background"
    settle(client)
    cells = research(workspace)
    assert [c.status for c in cells.values()] == [Status.DONE, Status.DONE, Status.QUEUED]
    held = cells[3]
    assert held.error_code is None and held.value is None
    assert held.error_message == "intake budget reached: 2 credits of 2 today"
    assert held.error_hint is not None and "runsheet run -c inbound" in held.error_hint
    [run] = intake_runs(workspace)
    assert run["message"] == "intake budget reached: 2 credits of 2 today"
    assert run["counts"]["research"] == {"done": 2, "refused": 1}
    refused = workspace.query(
        "SELECT row_id, outcome, error_code, trigger FROM activity WHERE column_name = 'research' "
        "AND outcome = 'refused'"
    )
    assert refused.to_dicts() == [
        {"row_id": 3, "outcome": "refused", "error_code": "insufficient_credits", "trigger": "intake"}
    ]
    assert workspace.credits() == 1000 - 2 and sum(billed(provider).values()) == 2

    later = post(client, headers, [{"email": "late@c.com", "company": "Late"}])  # the budget is spent already
    assert later["enrichment"] == "budget_reached"
    assert later["message"].startswith("intake budget reached: 2 credits of 2 today; run `runsheet run -c inbound`")
    settle(client)
    assert research(workspace)[4].status == Status.QUEUED
    assert research(workspace)[4].error_message == "intake budget reached: 2 credits of 2 today"
    assert sum(billed(provider).values()) == 2  # nothing more was spent

    ran = workspace.campaign("inbound", actor="ada").run()  # what the message says to do: the held cells run, once each
    assert ran.counts()["research"] == {"done": 2}
    cells = research(workspace)
    assert all(c.status == Status.DONE and c.error_message is None for c in cells.values())
    assert sum(billed(provider).values()) == 4 and workspace.credits() == 1000 - 4


def test_intake_off_paused_or_a_bad_budget(client: TestClient, workspace: Workspace) -> None:
    headers = auth(workspace)
    refused = CliRunner().invoke(cli, ["settings", "intake_budget", '"lots"', "-w", str(workspace.path)], env=ADA)
    assert refused.exit_code == 1 and "intake_budget" in refused.output
    workspace.set_setting("intake_budget", 0)
    assert post(client, headers, [{"email": "a@b.com", "company": "A"}])["enrichment"] == "off"
    workspace.set_setting("intake_budget", None)  # no limit
    workspace.pause("inbound")
    reply = post(client, headers, [{"email": "b@b.com", "company": "B"}])
    assert (reply["queued"], reply["enrichment"]) == (False, "paused")
    settle(client)
    assert not intake_runs(workspace)
    assert [c.status for c in research(workspace).values()] == [Status.QUEUED, Status.EMPTY]


def test_records_arriving_meanwhile_join_a_later_batch_one_worker_at_a_time(
    client: TestClient, workspace: Workspace, provider: ProviderProcess
) -> None:
    headers = auth(workspace)
    provider.control(latency=0.2)
    try:
        for i in range(6):
            post(client, headers, [{"email": f"p{i}@c.com", "company": f"Company {i}"}])
        settle(client)
    finally:
        provider.control(latency=0.0)
    assert all(c.status == Status.DONE for c in research(workspace).values())
    assert sorted(billed(provider).values()) == [1] * 6
    runs = sorted(intake_runs(workspace), key=lambda r: r["run_id"])
    assert 1 <= len(runs) <= 6 and sum(r["counts"]["research"]["done"] for r in runs) == 6
    for before, after in zip(runs, runs[1:], strict=False):  # never two intake runs of a campaign at once
        assert before["finished_at"] <= after["started_at"]


def test_the_server_shutting_down_stops_its_intake_run(workspace: Workspace, provider: ProviderProcess) -> None:
    headers = auth(workspace)
    provider.control(mode="hang")
    try:
        with TestClient(create_app(workspace.path)) as client:
            post(client, headers, [{"email": "ada@acme.com", "company": "Acme"}])
            run = running_intake_run(client, headers)
    finally:
        provider.control(mode=None)
    assert workspace.run_record(run["run_id"])["status"] == "stopped"  # type: ignore[index]
    cell = research(workspace)[1]  # given back: queued, or cancelled if its call was in flight
    assert cell.status == Status.QUEUED or cell.error_code == "cancelled", cell
    assert not workspace.active_runs("inbound")
    assert workspace.campaign("inbound", actor="ada").run().counts()["research"] == {"done": 1}  # a plain run


def test_a_killed_server_leaves_an_intake_run_that_reclaim_gives_back(
    workspace: Workspace, provider: ProviderProcess
) -> None:
    port = free_port()
    headers = {**auth(workspace), "content-type": "application/json"}
    workspace.release()
    provider.control(mode="hang")
    server = serve_process(workspace.path, port, "--no-schedules")
    try:
        body = json.dumps({"records": [{"email": "ada@acme.com", "company": "Acme"}]}).encode()
        for _ in range(400):
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/campaigns/inbound/records", data=body, headers=headers
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert json.loads(response.read())["enrichment"] == "background"
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        for _ in range(600):
            found = [r for r in intake_runs(workspace) if r["status"] == "running" and r["total"]]
            workspace.release()
            if found:
                break
            time.sleep(0.05)
        assert found, "no intake run started"
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        provider.control(mode=None)
    [run] = intake_runs(workspace)  # read after the kill: the dead runner's run is shown interrupted
    assert run["status"] == "interrupted"
    assert research(workspace)[1].status == Status.QUEUED
    assert workspace.campaign("inbound", actor="ada").run().counts()["research"] == {"done": 1}  # resumed as today
    assert sum(billed(provider).values()) == 1
