"""The Settings page: the credit balance (and adding credits), the confirm threshold above which a run asks
before spending, and the people and roles of the workspace when the engine has them."""

from __future__ import annotations

import streamlit as st

from engine import Workspace
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
    st.subheader("People and roles")
    roles = features.settings(ws).get("roles")
    if not roles:
        st.caption(f"Everyone who can open this workspace can edit and run it. You are **{session.actor()}**.")
        return
    st.dataframe([{"person": k, "role": v} for k, v in dict(roles).items()], hide_index=True, width="stretch")
