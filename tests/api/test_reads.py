"""Reading over HTTP: records paged and filtered by SQL run in the query sandbox, one record with every cell and
its state, the run log, the activity log and credits; the same bearer tokens as the writes, a viewer reads."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine import Status, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user

SPEC = """
campaign: leads
columns:
  - {name: email, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: founded, kind: input, type: DATE}
  - {name: profile, kind: input, type: JSON}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: research, kind: probe, inputs: [domain], fail_on: c3.com, credits: 2}
"""
ROWS = 7
READS = ["/campaigns/leads/records", "/campaigns/leads/records/1", "/runs", "/activity", "/credits"]


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    """Seven records, `research` run over all of them: row 4 (domain c3.com) fails, the others cost 2 each."""
    Workspace.init(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws", actor="ada")
    ws.apply(SPEC, actor="ada")
    ws.resume("leads", "research", run=False)  # a new paid step starts paused
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "vic", "viewer")
    leads = ws.campaign("leads", actor="ada")
    leads.add_rows(
        [
            {
                "email": f"p{i}@c{i}.com",
                "employees": i * 10,
                "founded": f"2020-01-{i + 1:02d}",
                "profile": f'{{"tier": "t{i % 2}", "tags": [{i}]}}',
            }
            for i in range(ROWS)
        ]
    )
    leads.run(["research"])
    return ws


@pytest.fixture()
def client(workspace: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(workspace.path)) as found:
        yield found


def token(ws: Workspace, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(ws.db, 'ada', user)}"}


def records(client: TestClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = client.get("/campaigns/leads/records", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_records_are_paged_with_every_value_as_json(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "vic")
    pages = [records(client, auth, offset=offset, limit=3) for offset in (0, 3, 6)]
    assert [(p["total"], p["offset"], p["limit"], p["next_offset"]) for p in pages] == [
        (7, 0, 3, 3),
        (7, 3, 3, 6),
        (7, 6, 3, None),
    ]
    assert [r["row_id"] for p in pages for r in p["records"]] == list(range(1, ROWS + 1))
    assert pages[0]["records"][1] == {
        "row_id": 2,
        "email": "p1@c1.com",
        "employees": 10,
        "founded": "2020-01-02",  # a date as ISO text
        "profile": {"tier": "t1", "tags": [1]},  # a JSON cell as the object it holds
        "domain": "c1.com",
        "research": "probe(c1.com)",
    }
    assert pages[1]["records"][0]["research"] is None  # row 4 failed: no value
    past = records(client, auth, offset=50, limit=3)
    assert (past["total"], past["records"], past["next_offset"]) == (7, [], None)


def test_a_where_condition_filters_and_pages_the_records(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "vic")
    first = records(client, auth, where="employees >= 20 AND domain <> 'c5.com'", limit=2)
    assert (first["total"], first["next_offset"]) == (4, 2)
    assert [r["row_id"] for r in first["records"]] == [3, 4]
    second = records(client, auth, where="employees >= 20 AND domain <> 'c5.com'", limit=2, offset=2)
    assert ([r["row_id"] for r in second["records"]], second["next_offset"]) == ([5, 7], None)
    failed = records(client, auth, where="row_id IN (SELECT row_id FROM cells WHERE status = 'error')")
    assert [(r["row_id"], r["domain"]) for r in failed["records"]] == [(4, "c3.com")]
    assert records(client, auth, where="profile->>'tier' = 't0'")["total"] == 4
    assert records(client, auth, where="  ")["total"] == ROWS  # a blank condition filters nothing


def test_a_bad_where_is_a_400_naming_the_fix_and_changes_nothing(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "ada")
    leads = workspace.campaign("leads")
    before = (leads.values().to_dicts(), leads.status_counts(), len(workspace.runs(100)), workspace.credits())
    cases = [
        ("nope = 1", "nope", "employees"),  # the hint names the columns there are
        ("employees > 1; DELETE FROM leads", "not valid SQL", "syntax"),
        ("(SELECT count(*) FROM users) > 0", "users", "tables are"),
        ("row_id IN (SELECT 1 FROM read_csv('/etc/passwd'))", "", ""),
        ("email = 3", "convert", "fix"),
        ("true) UNION ALL (SELECT 99", "more than a condition", "follows WHERE"),
        ("true) ORDER BY (1", "more than a condition", "follows WHERE"),
    ]
    for where, mentions, hinted in cases:
        answer = client.get("/campaigns/leads/records", params={"where": where}, headers=auth)
        assert answer.status_code == 400, (where, answer.text)
        body = answer.json()
        assert "\n" not in body["error"] and body["hint"], (where, body)
        assert mentions in body["error"] and hinted in body["hint"], (where, body)
    after = (leads.values().to_dicts(), leads.status_counts(), len(workspace.runs(100)), workspace.credits())
    assert after == before


def test_one_record_shows_every_cell_and_its_state(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "vic")
    run_id = workspace.run_log(campaign="leads", limit=1)[0]["run_id"]
    failed = client.get("/campaigns/leads/records/4", headers=auth)
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert (body["campaign"], body["row_id"]) == ("leads", 4)
    cells = body["cells"]
    assert list(cells) == ["email", "employees", "founded", "profile", "domain", "research"]
    assert (cells["email"]["value"], cells["email"]["status"]) == ("p3@c3.com", "done")
    assert cells["profile"]["value"] == {"tier": "t1", "tags": [3]}
    research = cells["research"]
    assert (research["status"], research["error_code"], research["value"]) == ("error", "provider_error", None)
    assert "told to fail on 'c3.com'" in research["error_message"]
    assert research["run_id"] == run_id and not research["cost"]  # a failure costs nothing
    datetime.datetime.fromisoformat(research["finished_at"])
    done = client.get("/campaigns/leads/records/2", headers=auth).json()["cells"]["research"]
    assert (done["value"], done["status"], done["cost"], done["error_code"]) == ("probe(c1.com)", "done", 2.0, None)
    assert done["run_id"] == run_id and datetime.datetime.fromisoformat(done["finished_at"])
    assert workspace.campaign("leads").cell(4, "research").status is Status.ERROR


def test_unknown_campaigns_and_records_are_404_with_a_clear_message(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "vic")
    for path, params, mentions in [
        ("/campaigns/nope/records", {}, "nope"),
        ("/campaigns/nope/records", {"where": "row_id > 1"}, "nope"),
        ("/campaigns/nope/records/1", {}, "nope"),
        ("/campaigns/leads/records/99", {}, "no row 99"),
        ("/runs", {"campaign": "nope"}, "nope"),
        ("/activity", {"campaign": "nope"}, "nope"),
        ("/runs/999999", {}, "999999"),
    ]:
        answer = client.get(path, params=params, headers=auth)
        assert answer.status_code == 404, (path, answer.text)
        assert mentions in answer.json()["error"] and answer.json()["hint"], (path, answer.json())
    for params in ({"limit": 0}, {"limit": 100_000}, {"offset": -1}):
        assert client.get("/campaigns/leads/records", params=params, headers=auth).status_code == 422


def test_runs_activity_and_credits(client: TestClient, workspace: Workspace) -> None:
    auth = token(workspace, "vic")
    runs = client.get("/runs", params={"campaign": "leads", "limit": 1}, headers=auth).json()
    assert len(runs) == 1
    run = runs[0]
    assert (run["campaign"], run["actor"], run["status"], run["credits"]) == ("leads", "ada", "done", 12.0)
    assert run["counts"]["research"] == {"done": 6, "error": 1} and run["outcomes"]["error"] == 1
    assert "research" in run["scope"]
    assert client.get(f"/runs/{run['run_id']}", headers=auth).json()["credits"] == 12.0
    everything = client.get("/runs", params={"limit": 50}, headers=auth).json()
    assert [r["run_id"] for r in everything] == sorted((r["run_id"] for r in everything), reverse=True)

    activity = client.get("/activity", params={"campaign": "leads", "limit": 500}, headers=auth).json()
    research = [a for a in activity if a["column_name"] == "research" and a["run_id"] == run["run_id"]]
    assert sorted(a["outcome"] for a in research) == ["done"] * 6 + ["error"]
    assert next(a for a in research if a["outcome"] == "error")["error_code"] == "provider_error"
    assert {a["campaign"] for a in activity} == {"leads"}
    assert len(client.get("/activity", params={"limit": 3}, headers=auth).json()) == 3

    credits = client.get("/credits", headers=auth).json()
    assert credits["balance"] == workspace.credits() == 1000 - 12
    spent, granted = credits["ledger"][0], credits["ledger"][-1]
    assert (spent["amount"], spent["run_id"], spent["campaign"], spent["reason"]) == (
        -12,
        run["run_id"],
        "leads",
        "run",
    )
    assert (granted["amount"], granted["reason"]) == (1000, "starting credits")
    assert len(client.get("/credits", params={"limit": 1}, headers=auth).json()["ledger"]) == 1


def test_every_read_needs_a_known_token_and_a_viewer_may_read(client: TestClient, workspace: Workspace) -> None:
    viewer = token(workspace, "vic")
    for path in READS:
        assert client.get(path, headers=viewer).status_code == 200, path
        for headers in ({}, {"Authorization": "Bearer rs_not-a-token"}):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 401, (path, answer.text)
            assert "runsheet token create" in answer.json()["hint"]


def test_openapi_documents_the_reads(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/campaigns/{name}/records"])
    assert {"/campaigns/{name}/records/{row_id}", "/runs", "/activity", "/credits"} <= set(paths)
