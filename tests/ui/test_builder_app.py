"""The builder chat panel (ui/builder_panel.py) through AppTest, on the offline model: from the grid's Chat menu a
sentence becomes a proposal shown with its plan, diff, estimate and preview; Accept adds the action (paused) and
Add as column adds `{name, action}` to the campaign, whose cells fill; a column of the same name is never
replaced; Refine with chat carries an accepted change to the column; Reset Chat asks first; a viewer reads the
chat and a member's request is refused by the engine in one line. And the panel's own logic, without Streamlit."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import EditError, Status, Workspace
from tests.library.conftest import CONTACTS, CONTACTS_SPEC
from tests.runner import conftest as runner_fixtures
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess
from tests.ui.conftest import log_in
from ui import builder_panel, specs

provider, fresh_provider = runner_fixtures.provider, runner_fixtures.fresh_provider  # shared, not copied
ICP_REQUEST = "Score each lead 1-10 against our ideal customer profile and give the reasons"


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.apply(CONTACTS_SPEC)
    ws.campaign("people").add_rows(CONTACTS)
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(path))
    monkeypatch.setenv("RUNSHEET_USER", "tester")
    return ws


def texts(at: AppTest) -> str:
    assert not at.exception, at.exception
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def send(at: AppTest, key: str, text: str) -> AppTest:
    at.text_area(key=f"{key}-request").input(text)
    [button] = [b for b in at.button if b.label == "Send"]
    return button.click().run()


def build_on_grid(at: AppTest, action: str) -> AppTest:
    """Open the grid's Chat menu and Build with chat on a new action."""
    at.run()
    at.session_state["menu_chat"] = True
    at.run()
    at.text_input(key="chat_new_name").input(action).run()
    return at.button(key="chat_build").click().run()


# ---- the panel's logic --------------------------------------------------------------------------------------


def test_new_column_adds_the_action_and_never_replaces_a_column(people: Workspace) -> None:
    spec = people.campaign("people").spec
    source = builder_panel.new_column(spec, "icp_fit", " fit ")
    assert source["columns"][-1] == {"name": "fit", "action": "icp_fit"}
    assert source["columns"][:-1] == spec.source["columns"]  # the rest as it was
    with pytest.raises(EditError, match="has a column named 'domain' already: it is kept") as refused:
        builder_panel.new_column(spec, "icp_fit", "Domain")
    assert "another name" in (refused.value.hint or "")
    with pytest.raises(EditError, match="needs a name"):
        builder_panel.new_column(spec, "icp_fit", "  ")


def test_latest_proposal_and_preview_rows() -> None:
    history = [
        {"message_id": 1, "role": "user", "proposal": None},
        {"message_id": 2, "role": "assistant", "proposal": {"status": "invalid"}},
        {"message_id": 3, "role": "assistant", "proposal": None},  # an answer to a question
    ]
    assert builder_panel.latest_proposal(history) == history[1]
    assert builder_panel.latest_proposal(history[:1]) is None
    shown = {
        "rows": [
            {"row_id": 1, "status": "done", "value": {"score": 9}, "error": None},
            {"row_id": 2, "status": "error", "value": None, "error": "boom"},
        ]
    }
    assert builder_panel.preview_rows(shown) == [
        {"row": 1, "status": "done", "value": '{"score": 9}'},
        {"row": 2, "status": "error", "value": "boom"},
    ]


# ---- the grid's Chat menu --------------------------------------------------------------------------------------


def test_describe_see_the_proposal_accept_and_add_it_as_a_column_that_fills(app: AppTest, people: Workspace) -> None:
    build_on_grid(app, "icp_fit")
    assert "Build with chat: action `icp_fit`" in texts(app)
    send(app, "builder", ICP_REQUEST)
    shown = texts(app)
    assert "drafted from the template icp_score" in shown  # the offline model says so
    assert "**Plan**" in shown and "1. Start from the built-in template icp_score" in shown
    assert "Estimate:** 0 credits a record, 0 for all 3 records" in shown
    [diff] = [c.value for c in app.code if "+kind: ai" in c.value]
    assert diff.startswith("--- /dev/null\n+++ icp_fit (proposed)")
    [preview] = [d.value for d in app.dataframe if list(d.value.columns) == ["row", "status", "value"]]
    assert list(preview["row"]) == [1, 2, 3] and set(preview["status"]) == {"done"}
    assert '"score"' in preview["value"][0]
    assert people.actions().listed() == []  # nothing applied before Accept

    app.button(key="builder-accept").click().run()
    assert "Accepted at" in texts(app)
    action = people.actions().show("icp_fit")
    assert action["active"] is False and action["kind"] == "ai"  # a new action starts paused
    [proposal] = [m for m in people.builder().history("icp_fit") if m["proposal"]]
    assert action["options"] == proposal["proposal"]["options"]  # exactly what was shown
    assert "the column does not need that" in texts(app)  # what the paused action means for a column

    app.button(key="builder-add-column").click().run()
    assert not app.error, [e.value for e in app.error]
    campaign = people.campaign("people")
    assert campaign.spec.source["columns"][-1]["from_action"] == action["action_id"]
    cells = [campaign.cell(r, "icp_fit") for r in (1, 2, 3)]
    assert [c.status for c in cells] == [Status.DONE] * 3  # filled at once: offline is free
    assert all('"score"' in str(c.value) for c in cells)
    assert "added column icp_fit from action icp_fit (the action stays paused)" in [t.value for t in app.toast]
    assert "Build with chat: action" not in texts(app)  # the panel closed: the grid under the toolbar shows it
    frames = [getattr(d.value, "data", d.value) for d in app.dataframe]
    [grid] = [f for f in frames if "domain" in f.columns]
    assert "icp_fit" in list(grid.columns)  # the grid shows it


def test_add_as_column_refuses_a_name_the_campaign_has(app: AppTest, people: Workspace) -> None:
    build_on_grid(app, "domain_check")
    send(app, "builder", ICP_REQUEST)
    app.button(key="builder-accept").click().run()
    before = people.campaign("people").spec.source
    app.text_input(key="builder-column-name").input("domain").run()
    app.button(key="builder-add-column").click().run()
    assert any("has a column named 'domain' already: it is kept as it is" in e.value for e in app.error)
    assert "another name" in texts(app)
    assert people.campaign("people").spec.source == before
    assert people.campaign("people").cell(1, "domain").value == "analytical.io"


def test_refine_with_chat_carries_the_accepted_change_to_the_column(app: AppTest, people: Workspace) -> None:
    library = people.actions()
    library.add("opener", "ai", {"prompt": "Write an opener to {{ full_name }}"}, description="An opener")
    source = builder_panel.new_column(people.campaign("people").spec, "opener", "opener")
    people.apply(specs.dump(source))
    app.run()
    app.selectbox(key="menu_column").select("opener").run()
    app.session_state["menu_chat"] = True
    app.run()
    assert "Column opener is made from action opener." in texts(app)
    app.button(key="chat_refine").click().run()
    send(app, "builder", "Draft a LinkedIn connection note instead")
    assert "template linkedin_opener" in texts(app)
    app.button(key="builder-accept").click().run()
    assert not app.error, [e.value for e in app.error]
    column = people.campaign("people").spec.source["columns"][-1]
    assert column["name"] == "opener" and column["prompt"].startswith("Draft a LinkedIn connection note")
    assert "Column opener is made from opener: an accepted change reaches it" in texts(app)
    assert not [b for b in app.button if b.key == "builder-add-column"]


def test_an_invalid_proposal_says_why_and_offers_no_accept(app: AppTest, people: Workspace) -> None:
    library = people.actions()
    library.add("domain_fix", "formula", {"expression": "lower(domain)"}, description="Lower-cases the domain")
    app.run()
    app.session_state[builder_panel.OPEN_KEY] = {"action": "domain_fix", "campaign": "people", "column": None}
    app.run()
    send(app, "builder", ICP_REQUEST)  # the offline model drafts an ai step: the action is a formula
    assert any("invalid and cannot be applied" in e.value and "keeps its kind" in e.value for e in app.error)
    assert not [b for b in app.button if b.key == "builder-accept"]
    assert people.actions().show("domain_fix")["options"] == {"expression": "lower(domain)"}


def test_reset_chat_asks_first(app: AppTest, people: Workspace) -> None:
    build_on_grid(app, "icp_fit")
    send(app, "builder", ICP_REQUEST)
    app.button(key="builder-reset").click().run()
    assert any("Start the chat of icp_fit over?" in w.value for w in app.warning)
    assert len(people.builder().history("icp_fit")) == 2  # asked first
    app.button(key="builder-reset-confirm").click().run()
    assert people.builder().history("icp_fit") == []
    assert "No chat about icp_fit yet." in texts(app)


# ---- roles ---------------------------------------------------------------------------------------------------


def test_a_viewer_reads_the_chat_and_a_member_is_refused_by_the_engine(app: AppTest, people: Workspace) -> None:
    admin = Workspace(people.path, actor="ada")
    admin.set_role("ada", "admin", "ada-password")
    admin.set_role("vic", "viewer", "vic-password")
    admin.set_role("mo", "member", "mo-password")
    admin.builder().turn("icp_fit", ICP_REQUEST, campaign="people")
    admin.builder().accept(admin.builder().history("icp_fit")[-1]["message_id"])
    admin.actions().set_roles("icp_fit", ["admin", "member", "viewer"])

    log_in(app, "vic", "vic-password")
    app.session_state[builder_panel.OPEN_KEY] = {"action": "icp_fit", "campaign": "people", "column": "icp_fit"}
    app.run()
    shown = texts(app)
    assert "Proposal #2" in shown and "Viewers read the chat" in shown
    assert not [t for t in app.text_area if t.key == "builder-request"]
    assert not [b for b in app.button if b.key in ("builder-accept", "builder-reset")]

    member = AppTest.from_file(app._script_path, default_timeout=60)
    log_in(member, "mo", "mo-password")
    member.session_state[builder_panel.OPEN_KEY] = {"action": "icp_fit", "campaign": "people", "column": None}
    member.run()
    send(member, "builder", "normalise the company domain")
    assert not member.exception
    [refused] = [e.value for e in member.error]
    assert refused.startswith("chat: ") and "admin" in refused
    assert len(people.builder().history("icp_fit")) == 3  # nothing added by the refused request


# ---- the Actions page ----------------------------------------------------------------------------------------


def test_new_action_by_chat_on_the_actions_page(app: AppTest, people: Workspace) -> None:
    app.run()
    app.switch_page("views/actions.py").run()
    app.text_input(key="action-new-chat-name").input("opener_note").run()
    assert app.selectbox(key="action-new-chat-campaign").value == "people"
    send(app, "action-new-chat", "a LinkedIn opener for each person")
    assert "template linkedin_opener" in texts(app)
    assert not [b for b in app.button if b.key == "action-new-chat-add-column"]  # no campaign grid here
    app.button(key="action-new-chat-accept").click().run()
    assert people.actions().show("opener_note")["active"] is False
    assert app.selectbox(key="action-manage").value == "opener_note"
    assert "Chat about opener_note" in [s.value for s in app.subheader]
    assert "Accepted at" in texts(app)


def test_a_model_named_in_the_panel_writes_the_step(
    app: AppTest, people: Workspace, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    step = {"kind": "formula", "options": {"expression": "upper(company)"}, "description": "The company, loud."}
    fresh_provider.control(replies=[{"tool_call": step | {"plan": ["read", "write"], "changes": "new step"}}])
    build_on_grid(app, "loud")
    app.text_input(key="builder-model").input("openai/fake-builder")
    app.text_input(key="builder-api-base").input(fresh_provider.api_base)
    app.text_input(key="builder-key-env").input(KEY_ENV).run()  # typing reruns the page, as in a browser
    send(app, "builder", "the company name in capitals")
    assert fresh_provider.ledger()["tool_requests"] == 1
    [proposal] = [m["proposal"] for m in people.builder().history("loud") if m["proposal"]]
    assert proposal["status"] == "proposed" and proposal["model"] == "openai/fake-builder"
    assert [r["value"] for r in proposal["preview"]["rows"]] == ["ANALYTICAL", "COBOL", "BLETCHLEY"]
    assert "drafted from the template" not in texts(app)
