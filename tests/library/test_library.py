"""The action library (issue 17): consent (new actions start paused), roles per action, rename keeping history,
delete only when confirmed, ad hoc runs on one record with their results, Save to Record and documents, and
billing through the same call pool as runs (one bill; a refusal spends nothing)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from engine import Campaign, EditError, NotFoundError, PermissionDeniedError, Workspace, export_from_workspace
from tests.conftest import snapshot
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess

OPENER = {"prompt": "Write an opener to {{ full_name }} at {{ company }}"}


def add_opener(ws: Workspace, name: str = "opener", **given: object) -> None:
    ws.actions().add(name, "ai", dict(OPENER), description="An opener for one person", **given)  # type: ignore[arg-type]


def test_a_new_action_waits_for_consent_then_runs_on_one_record(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    add_opener(ws)
    assert library.show("opener")["active"] is False
    before = snapshot(ws)
    with pytest.raises(EditError, match="paused") as refused:
        library.run("opener", "people", 1)
    assert "runsheet action resume opener" in refused.value.hint
    assert snapshot(ws) == before  # a refusal records nothing
    library.resume("opener")
    result = library.run("opener", "people", "grace@cobol.dev")  # a record named by its email
    assert result["row_id"] == 2 and result["status"] == "done"
    assert result["value"].startswith("[offline model] Write an opener to Grace Hopper at Cobol")
    assert result["finished_at"] >= result["started_at"] and result["latency_ms"] is not None
    run = ws.run_record(result["run_id"])
    assert run["status"] == "done" and run["trigger"] == "api" and run["request"]["action"] == "opener"
    assert ws.run_log(limit=1)[0]["scope"] == "action: opener / row 2"  # how the runs page names it
    rows = ws.query("SELECT action, outcome, action_id, row_id FROM activity WHERE action = 'action'").rows()
    assert rows == [("action", "done", library.show("opener")["action_id"], 2)]
    assert people.cell(2, "domain").value == "cobol.dev"  # the campaign's cells are not the action's


def test_a_disabled_action_is_not_listed_to_run_and_refused(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    add_opener(ws)
    library.resume("opener")
    library.set_enabled("opener", False)
    assert library.listed(runnable=True) == []
    assert [a["name"] for a in library.listed()] == ["opener"]
    with pytest.raises(EditError, match="action_disabled"):
        library.run("opener", "people", 1)


ROLE_SETTINGS = [list(c) for n in (1, 2, 3) for c in itertools.combinations(("admin", "member", "viewer"), n)]


def test_the_role_matrix_lists_exactly_what_each_role_may_run(tmp_path: Path, ws: Workspace, people: Campaign) -> None:
    ws.set_role("ann", "admin")  # the first user: the workspace is open until then
    for user, role in (("max", "member"), ("val", "viewer")):
        Workspace(ws.path, actor="ann").set_role(user, role)
    admin = Workspace(ws.path, actor="ann").actions()
    for i, roles in enumerate(ROLE_SETTINGS):
        admin.add(f"a{i}", "ai", dict(OPENER), description="x", roles=roles)
        admin.resume(f"a{i}")
    for user, role in (("ann", "admin"), ("max", "member"), ("val", "viewer")):
        library = Workspace(ws.path, actor=user).actions()
        runnable = {a["name"] for a in library.listed(runnable=True)}
        seen = {a["name"] for a in library.listed()}
        for i, roles in enumerate(ROLE_SETTINGS):
            name = f"a{i}"
            may_see = role == "admin" or role in roles
            may_run = role == "admin" or (role == "member" and "member" in roles)
            assert (name in seen) == may_see, (user, roles)
            assert (name in runnable) == may_run, (user, roles)
            if may_run:
                assert library.run(name, "people", 1)["status"] == "done"
                continue
            with pytest.raises((PermissionDeniedError, NotFoundError)) as refused:
                library.run(name, "people", 1)
            if isinstance(refused.value, PermissionDeniedError):
                assert "runsheet action roles" in refused.value.hint or "viewers" in refused.value.hint
    denied = ws.query("SELECT count(*) FROM activity WHERE outcome = 'permission_denied' AND action = 'action'")
    assert denied.item() > 0


def test_members_may_not_change_the_library(ws: Workspace, people: Campaign) -> None:
    ws.set_role("ann", "admin")
    Workspace(ws.path, actor="ann").set_role("max", "member")
    Workspace(ws.path, actor="ann").actions().add("opener", "ai", dict(OPENER), description="x")
    member = Workspace(ws.path, actor="max").actions()
    for change in (
        lambda: member.add("other", "ai", dict(OPENER), description="x"),
        lambda: member.rename("opener", "opener2"),
        lambda: member.delete("opener", confirm=True),
        lambda: member.set_roles("opener", ["member"]),
        lambda: member.set_enabled("opener", False),
    ):
        with pytest.raises(PermissionDeniedError):
            change()
    member.resume("opener")  # members may pause and resume, as for steps
    assert member.show("opener")["active"] is True


def test_rename_keeps_the_id_results_and_history(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    add_opener(ws)
    library.resume("opener")
    first = library.run("opener", "people", 1)
    library.rename("opener", "intro")
    second = library.run("intro", "people", 2)
    assert first["action_id"] == second["action_id"]
    assert [r["result_id"] for r in library.results(action="intro")] == [second["result_id"], first["result_id"]]
    logged = ws.query("SELECT column_name, action_id FROM activity WHERE action = 'action' ORDER BY logged_at").rows()
    assert logged == [("opener", first["action_id"]), ("intro", first["action_id"])]
    with pytest.raises(NotFoundError):
        library.show("opener")


def test_delete_asks_for_confirmation_and_keeps_money_and_record_history(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    library.add("prep", template="meeting_prep", options={"prompt": "Prep notes for {{ full_name }}"})
    library.resume("prep")
    result = library.run("prep", "people", 1)
    assert library.documents(action="prep")[0]["body"] == result["value"]
    library.save_result(result["result_id"])
    before = snapshot(ws)
    with pytest.raises(EditError, match="1 results, 1 documents, 0 schedules and 1 activity rows") as refused:
        library.delete("prep")
    assert "--yes" in refused.value.hint
    assert snapshot(ws) == before
    assert library.delete("prep", confirm=True) == {"documents": 1, "action_results": 1, "schedules": 0, "activity": 1}
    assert ws.query("SELECT count(*) FROM documents").item() == 0
    assert ws.query("SELECT count(*) FROM action_results").item() == 0
    saved = ws.query("SELECT count(*) FROM activity WHERE action = 'save_to_record'").item()
    assert saved == 1  # the note it saved is the record's history, and stays
    assert people.cell(1, "notes").value.startswith("prep: [offline model]")


def test_save_to_record_feeds_later_actions_and_marks_the_timeline(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    add_opener(ws)
    library.add("follow_up", "ai", {"prompt": "Follow up on: {{ notes }}"}, description="Uses the saved notes")
    library.resume("opener")
    library.resume("follow_up")
    with pytest.raises(Exception, match="notes"):  # the campaign has no notes field yet: a clear refusal
        library.run("follow_up", "people", 1)
    opened = library.run("opener", "people", 1)
    saved = library.save_result(opened["result_id"])
    assert saved["saved_field"] == "notes" and saved["saved_by"] == ws.actor
    entry = ws.query(
        "SELECT action, column_name, row_id, actor, action_id FROM activity WHERE action = 'save_to_record'"
    ).rows()
    assert entry == [("save_to_record", "notes", 1, ws.actor, opened["action_id"])]
    later = library.run("follow_up", "people", 1)
    prompt = later["detail"]["messages"][-1]["content"]
    assert prompt == f"Follow up on: opener: {opened['value']}"


def test_a_record_that_is_not_there_or_ambiguous_is_named(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    add_opener(ws)
    library.resume("opener")
    with pytest.raises(NotFoundError, match="no record 'nobody@x.io'"):
        library.run("opener", "people", "nobody@x.io")
    people.add_rows([{"full_name": "Ada Lovelace", "email": "ada2@analytical.io", "company": "Analytical"}])
    with pytest.raises(NotFoundError, match="more than one record"):
        library.run("opener", "people", "Ada Lovelace")
    assert [r["row_id"] for r in library.find_records("people", "analytical")] == [1, 4]


def test_bad_definitions_are_refused_with_the_fix(ws: Workspace) -> None:
    library = ws.actions()
    with pytest.raises(EditError, match="unknown action kind"):
        library.add("x", "sql", {}, description="x")
    with pytest.raises(EditError, match="bad option 'tier'"):
        library.add("x", "ai", {"prompt": "hi {{ a }}", "tier": "huge"}, description="x")
    with pytest.raises(EditError, match="needs a description"):
        library.add("x", "ai", {"prompt": "hi {{ a }}"})
    with pytest.raises(EditError, match="unknown role"):
        library.add("x", "ai", {"prompt": "hi {{ a }}"}, description="x", roles=["owner"])
    with pytest.raises(EditError, match="no template"):
        library.add("x", template="nope")
    assert library.listed() == []


def paid(api_base: str) -> dict[str, object]:
    return {
        "prompt": "Research {{ company }}",
        "model": "openai/fake-model",
        "api_base": api_base,
        "api_key_env": KEY_ENV,
        "tier": "deep",
    }


def test_one_bill_and_a_refusal_spends_nothing(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    library = ws.actions()
    library.add("research", "ai", paid(fresh_provider.api_base), description="Research the company")
    library.resume("research")
    start = ws.credits()
    first = library.run("research", "people", 1)
    again = library.run("research", "people", 1)  # the same request: the cache answers, for nothing
    assert (first["credits"], again["credits"], again["cached"]) == (10.0, 0.0, True)
    assert len(fresh_provider.ledger()["billed"]) == 1
    regenerated = library.run("research", "people", 1, force=True)  # Regenerate asks anew, and pays
    assert regenerated["credits"] == 10.0 and len(fresh_provider.ledger()["billed"]) == 2
    assert ws.credits() == start - 20.0
    spent = [row["amount"] for row in ws.credit_ledger() if row["reason"] == "action"]
    assert spent == [-10.0, -10.0]
    ws.add_credits(-(ws.credits() - 5.0), reason="test: leave 5")
    refused = library.run("research", "people", 2)
    assert refused["status"] == "error" and refused["error_code"] == "insufficient_credits"
    assert refused["credits"] == 0 and ws.credits() == 5.0
    assert len(fresh_provider.ledger()["billed"]) == 2


def test_stop_ends_a_running_action_without_a_bill(
    ws: Workspace, people: Campaign, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    fresh_provider.control(latency=20.0)
    library = ws.actions()
    library.add("research", "ai", paid(fresh_provider.api_base), description="Research the company")
    library.resume("research")
    start = ws.credits()
    result_id = library.start("research", "people", 1)
    running = library.result(result_id)
    assert running["status"] == "running"
    time.sleep(0.5)
    assert ws.stop_run(running["run_id"]) is True
    deadline = time.monotonic() + 10
    while library.result(result_id)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = library.result(result_id)
    assert stopped["status"] == "error" and stopped["error_code"] == "cancelled", stopped
    assert ws.run_record(running["run_id"])["status"] == "stopped"
    assert ws.credits() == start and fresh_provider.ledger()["billed"] == []


def test_a_result_whose_runner_died_reads_as_interrupted(ws: Workspace, people: Campaign) -> None:
    from engine.run.adhoc import open_action_run
    from engine.store.actions import read_action

    library = ws.actions()
    add_opener(ws)
    library.resume("opener")
    with ws.db.transaction() as con:
        action = read_action(con, "opener")
    assert action is not None
    started = open_action_run(ws.db, "people", 1, action, who=("ops", "cli"), force=False)
    assert library.result(started.result_id)["status"] == "running"
    with ws.db.transaction() as con:  # its process is gone: no such pid on this host
        con.execute("UPDATE runs SET pid = 2147483646 WHERE run_id = ?", [started.run_id])
    assert library.result(started.result_id)["status"] == "interrupted"
    assert ws.run_record(started.run_id)["status"] == "interrupted"


def test_an_action_waits_for_a_step_it_reads_that_is_not_done(ws: Workspace, people: Campaign) -> None:
    from tests.library.conftest import CONTACTS_SPEC

    ws.apply(CONTACTS_SPEC + '  - {name: shout, kind: formula, expression: "upper(company)", run: manual}\n')
    library = ws.actions()
    library.add("loud", "ai", {"prompt": "Say {{ shout }}"}, description="Reads a manual step")
    library.resume("loud")
    waiting = library.run("loud", "people", 1)
    assert waiting["status"] == "waiting" and "waiting on shout (empty)" in waiting["error_message"]
    assert waiting["credits"] == 0
    people.run(["shout"], rows=[1])
    assert library.run("loud", "people", 1)["value"].startswith("[offline model] Say ANALYTICAL")


def test_a_template_receives_the_whole_record_and_the_context(ws: Workspace, people: Campaign) -> None:
    ws.set_context("icp", "B2B software companies with 50-500 people")
    library = ws.actions()
    library.add("summary", template="research_summary")
    library.resume("summary")
    result = library.run("summary", "people", 2)
    assert result["status"] == "done"
    prompt = result["detail"]["messages"][-1]["content"]
    assert prompt.startswith("Write a short research summary of this prospect")
    for line in ("full_name: Grace Hopper", "email: grace@cobol.dev", "company: Cobol", "title: VP Engineering"):
        assert line in prompt, prompt
    assert "### icp\nB2B software companies with 50-500 people" in prompt
    saved = library.save_result(result["result_id"])
    later = library.run("summary", "people", 2)  # the saved note is a field of the record now
    assert f"notes: summary: {saved['value'].splitlines()[0]}" in later["detail"]["messages"][-1]["content"]


def test_results_and_documents_are_seen_only_by_the_roles_that_see_their_action(
    ws: Workspace, people: Campaign
) -> None:
    ws.set_role("ann", "admin")
    for user, role in (("max", "member"), ("val", "viewer")):
        Workspace(ws.path, actor="ann").set_role(user, role)
    admin = Workspace(ws.path, actor="ann").actions()
    for name, roles in (("open", ["admin", "member", "viewer"]), ("secret", ["admin"])):
        admin.add(name, "ai", dict(OPENER), description="x", roles=roles, produces="document")
        admin.resume(name)
        admin.run(name, "people", 1)
    every = admin.results()
    assert {r["action"] for r in every} == {"open", "secret"} and len(admin.documents()) == 2
    secret = next(r for r in every if r["action"] == "secret")
    secret_document = next(d for d in admin.documents() if d["action"] == "secret")
    for user in ("max", "val"):
        library = Workspace(ws.path, actor=user).actions()
        assert {r["action"] for r in library.results()} == {"open"}
        assert {r["action"] for r in library.results(campaign="people", row_id=1)} == {"open"}
        assert {d["action"] for d in library.documents()} == {"open"}
        with pytest.raises(NotFoundError):
            library.result(secret["result_id"])
        with pytest.raises(NotFoundError):
            library.document(secret_document["document_id"])
        with pytest.raises(NotFoundError):
            library.results(action="secret")
        with pytest.raises(NotFoundError):
            library.documents(action="secret")
    assert admin.result(secret["result_id"])["action"] == "secret"


def test_sql_shows_a_person_only_the_actions_results_and_documents_they_may_see(
    ws: Workspace, people: Campaign, tmp_path: Path
) -> None:
    library = Workspace(ws.path, actor="ann").actions()
    for name, roles in (("open", ["admin", "member", "viewer"]), ("team", ["admin", "member"]), ("secret", ["admin"])):
        library.add(name, "ai", dict(OPENER), description="x", roles=roles, produces="document")
        library.resume(name)
        library.run(name, "people", 1)
    # a workspace without users: anyone is an admin and sees every action
    assert Workspace(ws.path, actor="anyone").query("SELECT count(*) AS n FROM action_results")["n"][0] == 3
    ws.set_role("ann", "admin")
    for user, role in (("max", "member"), ("val", "viewer")):
        Workspace(ws.path, actor="ann").set_role(user, role)
    expected = {"ann": {"open", "team", "secret"}, "max": {"open", "team"}, "val": {"open"}, "stranger": {"open"}}
    where = "row_id IN (SELECT row_id FROM action_results WHERE action = 'secret')"
    for user, seen in expected.items():
        reader = Workspace(ws.path, actor=user)
        for table, column in (("actions", "name"), ("action_results", "action"), ("documents", "action")):
            assert set(reader.query(f"SELECT {column} FROM {table}")[column]) == seen, (user, table)
        # the same through a where filter on the grid, and a query written to a file
        assert reader.campaign("people", actor=user).page(where=where).total_rows == (1 if user == "ann" else 0)
        written = tmp_path / f"{user}.csv"
        assert reader.query_to_file("SELECT action FROM action_results", written) == len(seen)
        exported = reader.campaign("people", actor=user).export(tmp_path / f"{user}-where.csv", where=where)
        assert exported.rows == (1 if user == "ann" else 0)
        fast = export_from_workspace(ws.path, "people", tmp_path / f"{user}-fast.csv", where=where, actor=user)
        assert fast is not None and fast.rows == exported.rows
