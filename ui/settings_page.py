"""The Settings page: the credit balance (and adding credits), the confirm threshold above which a run asks
before spending, and the people of the workspace with their roles (an admin sets them)."""

from __future__ import annotations

import streamlit as st

from engine import ROLES, Workspace
from ui import features, session


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
    read. Anyone sees the list; only an admin's change is accepted (the engine refuses the others)."""
    st.subheader("People and roles")
    people = ws.users()
    me = session.actor()
    if people:
        st.dataframe(
            [
                {"person": u["name"], "role": u["role"], "added by": u["created_by"], "API tokens": u["tokens"]}
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
            "yourself the first admin to turn roles on."
        )
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    name = left.text_input("Person", value="" if people else me, key="role_person").strip()
    role = middle.selectbox("Role", ROLES, key="role_choice")
    if right.button("Set role", key="role_save", disabled=not name):
        with session.friendly("roles"):
            ws.set_role(name, role)
            session.notify(f"{name} is now a {role}")
            st.rerun()
