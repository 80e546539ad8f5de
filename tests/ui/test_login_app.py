"""The UI's login through AppTest (ui/login.py over engine/logins.py): an open workspace asks nothing; one with
users shows only the login form until a password or an API token is right; the logged-in user is the actor of
what the UI does; Log out and an expired session ask again. The clock is moved, never waited for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

import engine.logins
from engine import Login, Workspace
from tests.ui.conftest import log_in
from ui import session


@pytest.fixture()
def people(states_ws: Workspace) -> Workspace:
    """The all-states workspace with ada (admin), max (member) and vic (viewer, no password); acting as ada."""
    admin = Workspace(states_ws.path, actor="ada")
    admin.set_role("ada", "admin", "ada-password")
    admin.set_role("max", "member", "max-password")
    admin.set_role("vic", "viewer")
    return admin


def login_form_shown(app: AppTest) -> bool:
    return bool(app.get("text_input")) and any(t.key == "login_user" for t in app.text_input)


def signed_in_as(app: AppTest) -> list[str]:
    return [c.value for c in app.sidebar.caption if c.value.startswith("Signed in as")]


def sessions(ws: Workspace) -> list[tuple[object, ...]]:
    with ws.db.transaction(commit=False) as con:
        return con.execute("SELECT user_name, via FROM sessions ORDER BY created_at").fetchall()


def the_login(app: AppTest) -> Login:
    found = app.session_state[session.LOGIN_KEY]
    assert isinstance(found, Login)
    return found


def test_an_open_workspace_asks_no_login(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    assert not app.exception
    assert not login_form_shown(app)
    assert list(app.dataframe[0].value.index) == [1, 2, 3]  # the grid
    assert signed_in_as(app) == ["Signed in as **tester**"]  # $RUNSHEET_USER, as before
    assert not [b for b in app.button if b.key == "logout"]


@pytest.mark.parametrize("page", ["grid", "settings", "sql"])
def test_a_workspace_with_users_shows_the_login_form_and_nothing_else(
    app: AppTest, people: Workspace, page: str
) -> None:
    app.run()
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception
    assert login_form_shown(app)
    assert [t.key for t in app.text_input] == ["login_user", "login_password", "login_token"]
    assert not app.dataframe and not app.sidebar.caption  # no page, no sidebar
    assert app.title[0].value == "Runsheet"


def test_a_wrong_password_is_refused_clearly_and_changes_nothing(app: AppTest, people: Workspace) -> None:
    runs_before = len(people.runs(100))
    app.run()
    app.text_input(key="login_user").input("max")
    app.text_input(key="login_password").input("not-his-password")
    app.button(key="login_go").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "log in: wrong user name or password — check both; an admin sets a password with `runsheet users password NAME`"
    ]
    assert login_form_shown(app) and not app.sidebar.caption
    assert session.LOGIN_KEY not in app.session_state
    assert sessions(people) == []
    assert len(people.runs(100)) == runs_before
    assert [(u["name"], u["role"]) for u in people.users()] == [("ada", "admin"), ("max", "member"), ("vic", "viewer")]
    refused = [(a["action"], a["outcome"], a["actor"]) for a in people.activity(5) if a["action"] == "log_in"]
    assert refused == [("log_in", "refused", "max")]
    app.text_input(key="login_user").input("vic")  # a user without a password cannot log in with one
    app.text_input(key="login_password").input("anything-at-all")
    app.button(key="login_go").click().run()
    assert len(app.error) == 1 and "wrong user name or password" in app.error[0].value
    assert sessions(people) == []


def test_the_right_password_logs_in_and_the_user_is_the_actor(app: AppTest, people: Workspace) -> None:
    log_in(app, "max", "max-password")
    assert not login_form_shown(app)
    assert signed_in_as(app) == ["Signed in as **max**"]
    assert sessions(people) == [("max", "password")]
    app.session_state["selected"] = (3, "email")
    app.run()
    box = next(t for t in app.text_area if str(t.key).startswith("edit-t-3-email"))
    box.input("cy@umbrella.com").run()
    app.button(key=box.key + "-save").click().run()
    assert not app.exception and not app.error
    assert people.campaign("t").cell(3, "email").value == "cy@umbrella.com"
    edit = people.runs(1)[0]
    assert (edit["actor"], edit["trigger"], edit["request"]["kind"]) == ("max", "ui", "edit")
    app.switch_page("views/settings.py").run()
    assert any("You are **max**, a **member**" in c.value for c in app.caption)


def test_a_member_is_refused_an_admin_action_and_told_to_log_in_as_an_admin(app: AppTest, people: Workspace) -> None:
    log_in(app, "max", "max-password")
    app.switch_page("views/settings.py").run()
    app.number_input(key="add_credits").set_value(500).run()
    before = people.credits()
    app.button(key="add_credits_go").click().run()
    assert [e.value for e in app.error] == [
        "credits: max is a member and may not add credits (that needs admin) — log in as a user who may (ada): "
        "Log out in the sidebar, then log in; or ask an admin to change your role (Settings → People and roles)."
    ]
    assert people.credits() == before


def test_an_api_token_logs_in_as_its_user(app: AppTest, people: Workspace) -> None:
    token = people.create_token("vic")
    app.run()
    app.text_input(key="login_token").input(token[:-2] + "xx")
    app.button(key="login_token_go").click().run()
    assert [e.value for e in app.error] == [
        "log in: unknown API token — paste a token from `runsheet token create NAME`, or log in with a password"
    ]
    assert login_form_shown(app) and sessions(people) == []
    app.text_input(key="login_token").input(token)
    app.button(key="login_token_go").click().run()
    assert not app.exception and not app.error
    assert signed_in_as(app) == ["Signed in as **vic**"]
    assert sessions(people) == [("vic", "token")]
    assert the_login(app).via == "token"


def test_log_out_ends_the_session_and_asks_again(app: AppTest, people: Workspace) -> None:
    log_in(app, "ada", "ada-password")
    session_id = the_login(app).session_id
    assert people.login_session(session_id) is not None
    app.button(key="logout").click().run()
    assert not app.exception
    assert login_form_shown(app) and not app.sidebar.caption
    assert session.LOGIN_KEY not in app.session_state
    assert people.login_session(session_id) is None and sessions(people) == []
    assert not [i for i in app.info if "session has ended" in i.value]  # logged out on purpose: no warning


def test_an_expired_session_asks_again(app: AppTest, people: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(app, "max", "max-password")
    login = the_login(app)
    assert login.expires_at - engine.logins.clock() <= timedelta(hours=12)
    monkeypatch.setattr(engine.logins, "clock", lambda: login.expires_at - timedelta(minutes=1))
    app.run()
    assert signed_in_as(app) == ["Signed in as **max**"]  # still within its 12 hours
    monkeypatch.setattr(engine.logins, "clock", lambda: login.expires_at + timedelta(seconds=1))
    app.run()
    assert not app.exception
    assert login_form_shown(app) and not app.sidebar.caption
    assert [i.value for i in app.info] == ["Your session has ended (it expired, or you were logged out): log in again."]
    assert people.login_session(login.session_id) is None
    log_in(app, "max", "max-password")  # a new login starts a new 12 hours
    assert signed_in_as(app) == ["Signed in as **max**"]


def test_a_removed_user_is_asked_to_log_in_again(app: AppTest, people: Workspace) -> None:
    log_in(app, "max", "max-password")
    people.remove_user("max")
    app.run()
    assert login_form_shown(app) and not app.sidebar.caption


def test_every_ui_message_of_a_refusal_names_logging_in_not_the_clis_as() -> None:
    from engine import EditError, PermissionDeniedError

    refusal = PermissionDeniedError(
        "max is a member and may not apply spec", actor="max", needs="admin", who_may=("ada",)
    )
    assert "--as" in refusal.hint  # the CLI's wording is the default
    assert session.hint_of(refusal) == (
        "log in as a user who may (ada): Log out in the sidebar, then log in; or ask an admin to change your role "
        "(Settings → People and roles)"
    )
    assert session.hint_of(EditError("bad", hint="the fix")) == "the fix"
