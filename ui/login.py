"""The login the UI asks for once the workspace has users, and Log out.

The engine decides (`Workspace.needs_login`, `log_in`, `login_session`, `log_out`: engine/logins.py); this module
draws the form, keeps the `Login` in the browser session's state (its session id; the workspace stores only a
digest of it) and checks it again on every full run of the script, so an expired, ended or removed login asks
again. An open workspace (no users) asks nothing: the UI acts as $RUNSHEET_USER, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from engine import Login, Workspace
from ui import reads, session


def gate() -> bool:
    """Whether the page may run: the workspace is open, missing, or has a live login in this session. Otherwise
    draw the login form (or say the workspace is busy) and return False."""
    if not Workspace.exists(session.workspace_path()):
        st.session_state.pop(session.LOGIN_KEY, None)
        return True
    login = session.login()
    if login is not None and not login.live():
        session.end_login()
    ws = reads.workspace()
    if ws is None:
        return False
    if not reads.kept(ws, ("needs_login",), ws.needs_login):
        st.session_state.pop(session.LOGIN_KEY, None)
        return True
    login = session.login()
    if login is not None:
        found = reads.kept(ws, ("login", login.ref), lambda: ws.login_session(login.session_id))
        if found is not None and found.live():
            return True
        session.end_login()
    form(ws, ended=bool(st.session_state.pop(session.LOGIN_ENDED_KEY, False)))
    return False


def form(ws: Workspace, *, ended: bool) -> None:
    """The login form: user and password, or an API token."""
    with st.columns([2, 3])[0]:  # a form, not a banner: half the page is enough
        _form(ws, ended=ended)


def _form(ws: Workspace, *, ended: bool) -> None:
    st.title("Runsheet")
    if ended:
        st.info("Your session has ended (it expired, or you were logged out): log in again.", icon="🔑")
    st.caption(f"Workspace `{ws.path.resolve()}` has users: log in to act as one of them.")
    with st.form("login_with_password"):
        user = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in", type="primary", key="login_go"):
            _log_in(lambda: ws.log_in(user.strip(), password))
    with st.expander("Log in with an API token"):
        with st.form("login_with_token"):
            token = st.text_input("API token (`runsheet token create NAME`)", type="password", key="login_token")
            if st.form_submit_button("Log in with the token", key="login_token_go"):
                _log_in(lambda: ws.log_in(token=token))
    st.caption("No password yet? An admin sets one with `runsheet users password NAME` (or on the Settings page).")


def _log_in(attempt: Callable[[], Login]) -> None:
    with session.friendly("log in"):
        start(attempt())
        st.rerun()


def start(login: Login) -> None:
    """Act as `login`'s user from the next run on."""
    st.session_state[session.LOGIN_KEY] = login
    st.session_state.pop(session.LOGIN_ENDED_KEY, None)


def logout_button(ws: Workspace) -> None:
    """Log out (ends the session in the workspace too); drawn only while someone is logged in."""
    login = session.login()
    if login is None:
        return
    if st.button("Log out", key="logout", icon=":material/logout:"):
        with session.friendly("log out"):
            ws.log_out(login.session_id)
            st.session_state.pop(session.LOGIN_KEY, None)
            st.rerun()
