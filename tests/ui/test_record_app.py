"""The Record, Documents and Actions pages through AppTest (issue 17): open a record by search, run a library
action from the Run Action list and see its result panel go from running to done with its completion time,
Copy / Copy as Markdown, Save to Record (a note and an AI-generated timeline entry), a later action seeing the
saved note, Regenerate, refusals with their fix, a viewer who may run nothing, the documents an action produced,
and the admin's changes to the library."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine import Workspace
from tests.library.conftest import CONTACTS, CONTACTS_SPEC
from tests.ui.conftest import log_in
from ui.record_page import plain

OPENER = {"prompt": "Write an opener to {{ full_name }} at {{ company }}"}
FOLLOW_UP = {"prompt": "Follow up on: {{ notes }}"}
PREP = {"prompt": "Prep notes for a meeting with {{ full_name }} of {{ company }}"}


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace with the contacts campaign and three active actions (an opener, a follow-up that reads the
    notes, meeting prep that produces a document), served to the app as tester."""
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.apply(CONTACTS_SPEC)
    ws.campaign("people").add_rows(CONTACTS)
    library = ws.actions()
    library.add("opener", "ai", dict(OPENER), category="personalization", description="An opener for one person")
    library.add("follow_up", "ai", dict(FOLLOW_UP), category="enablement", description="Follows up on the notes")
    library.add("prep", template="meeting_prep", options=dict(PREP))
    for name in ("opener", "follow_up", "prep"):
        library.resume(name)
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(path))
    monkeypatch.setenv("RUNSHEET_USER", "tester")
    return ws


def on_page(app: AppTest, page: str, **params: str) -> AppTest:
    app.run()
    for key, value in params.items():
        app.query_params[key] = value
    app.switch_page(f"views/{page}.py")
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption])  # st.badge is markdown


def buttons(app: AppTest) -> set[str]:
    return {str(b.key) for b in app.button}


def wait_done(ws: Workspace, result_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (found := ws.actions().result(result_id))["status"] == "running":
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def run_from_list(app: AppTest, ws: Workspace, action: str) -> dict[str, Any]:
    """Click the action's Run in the list; the panel shows it (running or already done), then done once it is."""
    before = {r["result_id"] for r in ws.actions().results()}
    app.button(key=f"run-action-{action}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any(f"**{action}** · result" in m.value for m in app.markdown), "the result panel is open"
    [new] = [r for r in ws.actions().results() if r["result_id"] not in before]
    found = wait_done(ws, new["result_id"])
    app.run()
    return found


def test_open_a_record_by_search_and_see_its_fields_and_cells(app: AppTest, people: Workspace) -> None:
    on_page(app, "record")
    assert "Find a record above" in texts(app)
    app.text_input(key="record-search").input("cobol").run()
    assert buttons(app) >= {"record-pick-2"} and "record-pick-1" not in buttons(app)
    app.button(key="record-pick-2").click().run()
    assert not app.exception
    assert app.query_params["row"] == "2"  # the record has a link
    shown = texts(app)
    assert "Grace Hopper · row 2" in [s.value for s in app.subheader]
    assert "**email**: grace@cobol\\.dev" in shown and "**title**: VP Engineering" in shown  # as written (plain)
    assert "cobol\\.dev" in shown  # the domain step cell, with its state
    assert "up to date" in shown
    listed = {b.key for b in app.button if str(b.key).startswith("run-action-")}
    assert listed == {"run-action-opener", "run-action-follow_up", "run-action-prep"}
    assert "personalization" in shown and "An opener for one person" in shown
    app.text_input(key="action-search").input("notes").run()  # searches names, categories and descriptions
    assert {b.key for b in app.button if str(b.key).startswith("run-action-")} == {
        "run-action-follow_up",
        "run-action-prep",
    }


def test_run_copy_save_to_record_and_a_later_action_sees_the_note(app: AppTest, people: Workspace) -> None:
    on_page(app, "record", campaign="people", row="1")
    assert "Ada Lovelace · row 1" in [s.value for s in app.subheader]
    opened = run_from_list(app, people, "opener")
    assert opened["status"] == "done" and opened["value"].startswith("[offline model] Write an opener to Ada")
    shown = texts(app)
    assert "done" in shown
    assert f"Done at {opened['finished_at']:%Y-%m-%d %H:%M:%S}" in shown  # the completion time
    assert opened["value"] in [m.value for m in app.markdown]  # rendered as markdown
    copies = [c.value for c in app.code]
    assert opened["value"] in copies[:2]  # Copy (plain) and Copy as Markdown
    app.button(key="result-save").click().run()
    assert not app.exception and not app.error
    notes = people.campaign("people").cell(1, "notes").value
    assert notes == f"opener: {opened['value']}"
    shown = texts(app)
    assert f"**notes**: {plain('opener: ' + opened['value'])}" in shown  # the record's notes show it
    entries = [line for line in shown.splitlines() if "AI generated" in line]
    assert len(entries) == 1 and "· tester ·" in entries[0] and "**opener** result saved to **notes**" in entries[0]
    assert "Saved to notes by tester" in shown
    assert app.button(key="result-save").disabled  # saved once
    later = run_from_list(app, people, "follow_up")
    assert later["detail"]["messages"][-1]["content"] == f"Follow up on: opener: {opened['value']}"
    assert later["value"] in [m.value for m in app.markdown], (later["value"], texts(app))


def test_regenerate_runs_the_action_again(app: AppTest, people: Workspace) -> None:
    on_page(app, "record", campaign="people", row="3")
    first = run_from_list(app, people, "opener")
    app.button(key="result-regenerate").click().run()
    assert not app.exception
    results = people.actions().results(action="opener")
    assert len(results) == 2 and results[0]["result_id"] != first["result_id"]
    again = wait_done(people, results[0]["result_id"])
    assert again["status"] == "done" and not again["cached"]  # force: asked again, not reused


def test_a_refused_run_says_why_and_the_fix(app: AppTest, people: Workspace) -> None:
    people.actions().add("broken", "ai", {"prompt": "About {{ nickname }}"}, description="Names a missing field")
    people.actions().resume("broken")
    on_page(app, "record", campaign="people", row="1")
    app.button(key="run-action-broken").click().run()
    assert not app.exception
    assert [e.value for e in app.error] and "nickname" in app.error[0].value
    app.button(key="run-action-opener").click().run()  # the page goes on
    assert not app.error


def test_a_viewer_sees_no_action_to_run(app: AppTest, people: Workspace) -> None:
    admin = Workspace(people.path, actor="ada")
    admin.set_role("ada", "admin", "ada-password")
    admin.set_role("vic", "viewer", "vic-password")
    log_in(app, "vic", "vic-password")
    app.query_params["campaign"] = "people"
    app.query_params["row"] = "2"
    app.switch_page("views/record.py").run()
    assert not app.exception
    assert "Grace Hopper · row 2" in [s.value for s in app.subheader]
    assert not [b for b in app.button if str(b.key).startswith("run-action-")]
    assert "Viewers read records and results; they run no action." in texts(app)


def test_the_grid_panel_links_to_the_record(app: AppTest, people: Workspace) -> None:
    app.run()
    app.session_state["selected"] = (2, "domain")
    app.run()
    assert not app.exception
    [link] = [p for p in app.get("page_link") if p.proto.label == "Open record"]
    assert link.proto.page == "record" and link.proto.query_string == "campaign=people&row=2"


def test_documents_list_open_and_download(app: AppTest, people: Workspace) -> None:
    result = people.actions().run("prep", "people", 2)
    on_page(app, "documents")
    table = app.dataframe[0].value
    assert list(table["action"]) == ["prep"] and list(table["row_id"]) == [2]
    assert list(table["author"]) == [people.actor]
    assert result["value"] in [m.value for m in app.markdown]
    [download] = app.get("download_button")
    assert download.proto.label == "Download as .md"


def test_admin_adds_resumes_renames_and_deletes_an_action(app: AppTest, people: Workspace) -> None:
    on_page(app, "actions")
    assert set(app.dataframe[0].value["action"]) == {"opener", "follow_up", "prep"}
    app.selectbox(key="action-add-source").select("(from a prompt)").run()
    app.text_input(key="action-add-name").input("hello").run()
    app.text_area(key="action-add-prompt-(from a prompt)").input("Say hello to {{ full_name }}").run()
    app.text_area(key="action-add-desc-(from a prompt)").input("Greets the person").run()
    app.button(key="action-add").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert people.actions().show("hello")["active"] is False  # born paused
    table = app.dataframe[0].value
    assert table.set_index("action").loc["hello", "state"] == "paused"
    app.selectbox(key="action-manage").select("hello").run()
    app.button(key="action-resume").click().run()
    assert people.actions().show("hello")["active"] is True
    app.text_input(key="action-new-name-hello").input("greet").run()
    app.button(key="action-rename").click().run()
    assert {a["name"] for a in people.actions().listed()} == {"opener", "follow_up", "prep", "greet"}
    app.selectbox(key="action-manage").select("greet").run()
    app.button(key="action-delete").click().run()
    assert "greet" in [a["name"] for a in people.actions().listed()]  # asked first
    assert any("Delete **greet**" in w.value for w in app.warning)
    app.button(key="action-delete-confirm").click().run()
    assert not app.exception
    assert "greet" not in [a["name"] for a in people.actions().listed()]


def test_step_cells_show_their_state_and_click_to_run_runs_one(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "record", campaign="t", row="2")
    table = next(m.value for m in app.markdown if m.value.startswith("**Steps**"))
    assert "| ◇ **checker** | :red-badge[" in table  # the error state, with its message
    assert "**opener** | :blue-badge[" in table  # empty: Click to Run
    assert "record-run-opener" in buttons(app)
    app.button(key="record-run-opener").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    deadline = time.monotonic() + 60
    while states_ws.campaign("t").cell(2, "opener").value is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    app.run()
    table = next(m.value for m in app.markdown if m.value.startswith("**Steps**"))
    assert "probe\\(Hi Bob at globex\\.io\\|probe\\(globex\\.io\\)\\)" in table


def test_the_run_action_list_has_the_campaigns_steps_too(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "record", campaign="t", row="2")
    assert "run-step-opener" in buttons(app)  # empty on this record: Click to Run from the list
    assert any("campaign step" in m.value for m in app.markdown)
    app.button(key="run-step-opener").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    deadline = time.monotonic() + 60
    while states_ws.campaign("t").cell(2, "opener").value is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_send_a_result_to_copilot_then_save_a_reply_to_the_record(app: AppTest, people: Workspace) -> None:
    on_page(app, "record", campaign="people", row="2")
    opened = run_from_list(app, people, "opener")
    key = f"result-{opened['result_id']}"
    app.button(key=f"copilot-open-{key}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert f"Continuing this result: {opened['value']}"[:300] in texts(app)
    app.text_input(key=f"copilot-input-{key}").input("shorter")
    app.button(key=f"copilot-send-{key}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    [reply] = [m for m in people.copilot().find(result=opened["result_id"])["messages"] if m["role"] == "assistant"]
    assert reply["content"].startswith("[offline model] shorter") and reply["content"] in texts(app)
    assert f"copilot-pin-{key}-{reply['message_id']}" not in buttons(app)  # an action result is no cell
    app.button(key=f"copilot-save-{key}-{reply['message_id']}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert people.campaign("people").cell(2, "notes").value == f"opener: {reply['content']}"
    entries = [line for line in texts(app).splitlines() if "**Copilot** reply" in line]
    assert len(entries) == 1 and "AI generated" in entries[0] and "· tester ·" in entries[0], entries
