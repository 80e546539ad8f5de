"""The Settings page: the credit balance (and adding credits), the confirm threshold above which a run asks
before spending, and the people of the workspace with their roles (an admin sets them)."""

from __future__ import annotations

import streamlit as st

from engine import ROLES, RunsheetError, Workspace
from ui import features, login, session


def render() -> None:
    st.title("Settings")
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        st.caption(f"Workspace `{ws.path.resolve()}`")
        credits_section(ws)
        threshold_section(ws)
        roles_section(ws)


def credits_section(ws: Workspace) -> None:
    st.subheader("Credits")
    balance = features.credits(ws)
    st.metric("Balance", f"{balance:,.0f} credits")
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    amount = left.number_input("Add credits", min_value=1, max_value=10_000_000, value=100, step=100, key="add_credits")
    if right.button("Add", key="add_credits_go"):
        with session.friendly("credits"):
            features.add_credits(ws, float(amount), session.actor())
            session.notify(f"Added {amount:,} credits")
            st.rerun()


def threshold_section(ws: Workspace) -> None:
    st.subheader("Confirm threshold")
    current = features.confirm_threshold(ws)
    st.caption("A run estimated to cost more credits than this asks for confirmation first.")
    if current is None:
        st.caption("Right now runs never ask: set a threshold to turn confirmations on.")
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    shown = 100.0 if current is None else current
    value = left.number_input("Credits", min_value=0.0, value=shown, step=10.0, key="confirm_threshold")
    if right.button("Save", key="confirm_threshold_save", disabled=value == current):
        with session.friendly("settings"):
            features.set_setting(ws, "confirm_threshold", float(value))
            session.notify(f"Runs above {value:g} credits now ask first")
            st.rerun()


def roles_section(ws: Workspace) -> None:
    """Who may do what: admins edit specs, context, settings and roles; members run and edit inputs; viewers
    read. Anyone sees the list; only an admin's change is accepted (the engine refuses the others). The first
    user needs a password, since from then on the UI asks for a login; whoever sets it is logged in as them."""
    st.subheader("People and roles")
    people = ws.users()
    me = session.actor()
    if people:
        st.dataframe(
            [
                {
                    "person": u["name"],
                    "role": u["role"],
                    "password": "set" if u["password"] else "",
                    "added by": u["created_by"],
                    "API tokens": u["tokens"],
                }
                for u in people
            ],
            hide_index=True,
            width="stretch",
            key="roles_table",
        )
        st.caption(
            f"You are **{me}**, a **{ws.role()}**. Admins edit specs, context, settings and roles; members "
            "run steps and edit inputs; viewers read."
        )
    else:
        st.caption(
            f"No users yet: everyone who can open this workspace acts as admin. You are **{me}**; make "
            "yourself the first admin (with a password: the UI asks for a login from then on) to turn roles on."
        )
    left, middle, right, button = st.columns([2, 1, 2, 1], vertical_alignment="bottom")
    name = left.text_input("Person", value="" if people else me, key="role_person").strip()
    role = middle.selectbox("Role", ROLES, key="role_choice")
    label = "Password" if not people else "Password (optional)"
    password = right.text_input(label, type="password", key="role_password")
    if button.button("Set role", key="role_save", disabled=not name):
        with session.friendly("roles"):
            if not people and not password:
                raise RunsheetError(
                    "the first user needs a password", hint="the UI asks for a login once the workspace has users"
                )
            ws.set_role(name, role, password or None)
            if not people or (password and name == me):  # the first user, or my own new password: log in as them
                login.start(ws.log_in(name, password))
            session.notify(f"{name} is now {'an' if role == 'admin' else 'a'} {role}")
            st.rerun()
    if session.login() is not None:
        own_password_section(ws, me)


def own_password_section(ws: Workspace, me: str) -> None:
    """Change the logged-in user's own password (any role); they stay logged in with the new one."""
    with st.expander("Change your password"):
        first = st.text_input("New password", type="password", key="own_password")
        again = st.text_input("Again", type="password", key="own_password_again")
        if st.button("Change password", key="own_password_save", disabled=not first):
            with session.friendly("password"):
                if first != again:
                    raise RunsheetError("the two passwords differ", hint="type the same one twice")
                ws.set_password(me, first)
                login.start(ws.log_in(me, first))
                session.notify("Your password is changed")
                st.rerun()
