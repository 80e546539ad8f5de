"""The Context page: the workspace's global context documents (brand brief, value propositions, ICP, offer,
personas) that every AI step can use as `{{ context.<name> }}`. Saving one makes the AI steps that use it stale."""

from __future__ import annotations

import re

import streamlit as st

from ui import features, session

SUGGESTED = ("brand_brief", "value_propositions", "icp", "offer", "personas")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def render() -> None:
    st.title("Global context")
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        docs = features.context(ws)
        st.caption(
            "Documents every AI step can read as `{{ context.NAME }}`. Editing one marks the steps using it stale."
        )
        names = sorted(docs) + [n for n in SUGGESTED if n not in docs] + ["+ new document"]
        choice = st.radio("Document", names, key="context_doc", horizontal=True)
        name = choice
        if choice == "+ new document":
            name = st.text_input("Name", key="context_new_name", placeholder="e.g. case_studies")
        current = docs.get(name, "") if name else ""
        text = st.text_area("Text (Markdown)", value=current, height=320, key=f"context-text-{name}")
        left, right = st.columns([1, 5])
        with left:
            save = st.button("Save", type="primary", key="context_save", disabled=not name or text == current)
        if save:
            if not NAME.match(name or ""):
                st.error("Use a plain name: letters, digits and underscores, starting with a letter.")
                return
            with session.friendly("save"):
                features.set_context(ws, name, text, session.actor())
                session.notify(f"Saved context '{name}'")
                st.rerun()
        with right:
            if current:
                with st.expander("Preview"):
                    st.markdown(current)
