"""The Actions page: the workspace's action library (what each action does, its category, whether it is enabled
and active, who may run it). Admins add one (from a built-in template or from a prompt; it starts paused),
resume or pause it, enable or disable it, set its roles, rename it, and delete it after confirming. The selected
action has its builder chat (ui/builder_panel.py), and "New action by chat" drafts one from a sentence."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine import ACTION_TEMPLATES, ROLES, ActionLibrary, Workspace
from ui import builder_panel, reads, session

CATEGORIES = ("research", "personalization", "analysis", "enablement")
FROM_PROMPT = "(from a prompt)"


def render() -> None:
    st.title("Actions")
    ws = reads.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        library = ws.actions(actor=session.actor(), trigger="ui")
        listed = reads.kept(ws, ("actions", session.actor()), library.listed)
        if listed:
            st.dataframe(table(listed), hide_index=True, width="stretch")
        else:
            st.caption("No action yet." + (" Add one below." if is_admin(ws) else " An admin adds them."))
        if not is_admin(ws):
            st.caption("Admins add and change actions; members pause and resume them from the CLI or here.")
            if listed:
                consent(library, listed)
                chat(ws, pick_name())
            return
        add_form(library)
        new_by_chat(ws)
        if listed:
            manage(library, listed)
            chat(ws, pick_name())


def is_admin(ws: Workspace) -> bool:
    who = session.actor()
    return reads.kept(ws, ("role", who), lambda: ws.role(who)) == "admin"


def table(listed: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "action": a["name"],
                "category": a["category"],
                "description": a["description"],
                "kind": a["kind"],
                "state": state(a),
                "roles": ", ".join(a["roles"]),
                "produces": a["produces"],
            }
            for a in listed
        ]
    )


def state(action: dict[str, Any]) -> str:
    if not action["enabled"]:
        return "disabled"
    return "active" if action["active"] else "paused"


def add_form(library: ActionLibrary) -> None:
    with st.expander("Add an action"):
        source = st.selectbox("From", [*ACTION_TEMPLATES, FROM_PROMPT], key="action-add-source")
        template = ACTION_TEMPLATES.get(source, {})
        name = st.text_input("Name", key="action-add-name", placeholder="letters, digits and underscores")
        prompt = st.text_area(
            "Prompt",
            value=template.get("options", {}).get("prompt", ""),
            key=f"action-add-prompt-{source}",
            help="Name a record's fields as {{ field }}.",
        )
        category = st.text_input(
            "Category", value=template.get("category", CATEGORIES[0]), key=f"action-add-cat-{source}"
        )
        description = st.text_area(
            "Description (what it does, in plain words)",
            value=template.get("description", ""),
            key=f"action-add-desc-{source}",
        )
        roles: list[str] = st.multiselect(
            "Who may see and run it", list(ROLES), default=list(ROLES), key="action-add-roles"
        )
        st.caption("A new action starts paused: it runs once someone resumes it.")
        if st.button("Add", key="action-add", type="primary", disabled=not name.strip()):
            with session.friendly("add"):
                options = {**template.get("options", {}), "prompt": prompt}
                library.add(
                    name.strip(),
                    template.get("kind", "ai"),
                    options,
                    category=category,
                    description=description,
                    roles=roles,
                    template=source if source in ACTION_TEMPLATES else None,
                )
                session.notify(f"Added action {name.strip()} (paused)")
                st.rerun()


def consent(library: ActionLibrary, listed: list[dict[str, Any]]) -> None:
    chosen = pick(listed)
    pause_button(library, chosen)


def pick_name() -> str:
    return str(st.session_state["action-manage"])


def chat(ws: Workspace, name: str) -> None:
    """The selected action's builder chat, previewed on the chosen campaign."""
    st.subheader(f"Chat about {name}")
    builder_panel.render(ws, name, campaign=preview_campaign(ws, "action-chat-campaign"), key="action-chat")


def new_by_chat(ws: Workspace) -> None:
    with st.expander("New action by chat"):
        name = st.text_input("Name", key="action-new-chat-name", placeholder="letters, digits and underscores")
        campaign = preview_campaign(ws, "action-new-chat-campaign")
        if name.strip():
            builder_panel.render(ws, name.strip(), campaign=campaign, key="action-new-chat")


def preview_campaign(ws: Workspace, key: str) -> str | None:
    """The campaign a proposal is checked and previewed against (the sidebar's, to begin with)."""
    names = reads.campaign_names(ws)
    if not names:
        return None
    chosen = reads.campaign_name(ws)
    return st.selectbox("Preview on campaign", names, index=names.index(chosen) if chosen in names else 0, key=key)


def pick(listed: list[dict[str, Any]]) -> dict[str, Any]:
    names = [a["name"] for a in listed]
    name = st.selectbox("Action", names, key="action-manage")
    return next(a for a in listed if a["name"] == name)


def pause_button(library: ActionLibrary, action: dict[str, Any]) -> None:
    name = action["name"]
    if action["active"]:
        if st.button("⏸ Pause", key="action-pause"):
            change(lambda: library.pause(name), f"Paused {name}")
    elif st.button("▶ Resume", key="action-resume", type="primary"):
        change(lambda: library.resume(name), f"Resumed {name}: it may run now")


def manage(library: ActionLibrary, listed: list[dict[str, Any]]) -> None:
    st.subheader("Change an action")
    action = pick(listed)
    name = action["name"]
    st.caption(action["description"])
    one, two = st.columns(2)
    with one:
        pause_button(library, action)
    with two:
        if action["enabled"]:
            if st.button("Disable", key="action-disable"):
                change(lambda: library.set_enabled(name, False), f"Disabled {name}")
        elif st.button("Enable", key="action-enable"):
            change(lambda: library.set_enabled(name, True), f"Enabled {name}")
    roles: list[str] = st.multiselect("Roles", list(ROLES), default=list(action["roles"]), key=f"action-roles-{name}")
    if st.button("Save roles", key="action-save-roles", disabled=list(roles) == list(action["roles"])):
        change(lambda: library.set_roles(name, roles), f"Roles of {name}: {', '.join(roles)}")
    new_name = st.text_input("New name", key=f"action-new-name-{name}")
    if st.button("Rename", key="action-rename", disabled=not new_name.strip()):
        change(lambda: library.rename(name, new_name.strip()), f"Renamed {name} to {new_name.strip()}")
    delete_box(library, name)


def delete_box(library: ActionLibrary, name: str) -> None:
    """Delete asks first, saying what goes with the action (its results, documents and activity rows)."""
    asked = st.session_state.get("_action_delete") == name
    if not asked:
        if st.button("Delete…", key="action-delete"):
            st.session_state["_action_delete"] = name
            st.rerun()
        return
    history = library.show(name)["history"]
    st.warning(
        f"Delete **{name}** with its {history['action_results']} results, {history['documents']} documents and "
        f"{history['activity']} activity rows? Credit rows stay."
    )
    yes, no = st.columns(2)
    if yes.button("Yes, delete", key="action-delete-confirm", type="primary"):
        st.session_state.pop("_action_delete", None)
        change(lambda: library.delete(name, confirm=True), f"Deleted {name}")
    if no.button("Cancel", key="action-delete-cancel"):
        st.session_state.pop("_action_delete", None)
        st.rerun()


def change(apply: Any, message: str) -> None:
    with session.friendly():
        apply()
        session.notify(message)
        st.rerun()
