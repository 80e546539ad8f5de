"""The sidebar every page shares: which workspace this is, the campaign picker, the credit balance and the
runs going right now (with a link to follow them on the Activity page)."""

from __future__ import annotations

import streamlit as st

from engine import Workspace
from ui import login, reads, session


def prepare() -> None:
    """Settle the chosen campaign before the page reads it (the picker itself is drawn after the page)."""
    if not Workspace.exists(session.workspace_path()):
        return
    with session.friendly():
        ws = reads.workspace()
        if ws is not None:
            session.prepare_campaign_choice(reads.campaign_names(ws))


def render() -> None:
    with st.sidebar:
        st.markdown("### ▦ Runsheet")
        path = session.workspace_path()
        st.caption(f"Workspace `{path}`")
        if not Workspace.exists(path):
            return
        with session.friendly():
            ws = reads.workspace()
            if ws is None:
                return
            names = reads.campaign_names(ws)
            if names:
                st.selectbox("Campaign", names, key="campaign", on_change=_remember_campaign)
            else:
                st.caption("No campaign yet.")
            st.metric("Credits", f"{reads.credits(ws):,.0f}")
            going = reads.batch_runs(ws)
            if going:
                st.info(f"{len(going)} run(s) going", icon=":material/sync:")
                st.page_link("views/activity.py", label="Follow them on Activity")
            st.caption(f"Signed in as **{session.actor()}**")
            login.logout_button(ws)


def _remember_campaign() -> None:
    st.query_params["campaign"] = st.session_state["campaign"]
    st.session_state.pop("selected", None)
    st.session_state.pop("selected_rows", None)
