"""The action builder's chat panel (the engine's builder, `Workspace.builder`), on an action (the Actions page) or
on a campaign column (the grid's Chat menu): the action's chat, a box to describe the change, and the latest
proposal with its plan, the spec diff, the estimate, the preview on sample rows (a priced preview runs only once
its estimate is confirmed), the action's description (its SOP), and for an invalid or failed one, why. Accept
applies exactly the proposal shown; Reset Chat asks first. On a campaign, an accepted action becomes a column
(`{name, action: NAME}`) through the grid's own spec apply, never over a column of the same name. Viewers read the
chat; the engine decides who may propose and accept, and its refusals show as one line with their fix."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine import BuilderModel, CampaignSpec, EditError, Workspace, with_action_column
from ui import reads, session

OPEN_KEY = "_builder"  # the grid's panel while open: {"action", "campaign", "column"}
AddColumn = Callable[[dict[str, Any], str], None]  # (the campaign's spec source with the column, the message)


# ---- what the panel shows, worked out without Streamlit --------------------------------------------------------


def latest_proposal(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chat's last message that carries a proposal (the one Accept applies), or None."""
    return next((m for m in reversed(history) if m.get("proposal") is not None), None)


def column_from(spec: CampaignSpec, action_id: int) -> str | None:
    """The campaign's column made from the action (`from_action`), if any."""
    for entry in spec.source.get("columns", []):
        if isinstance(entry, dict) and entry.get("from_action") == action_id:
            return str(entry["name"])
    return None


def new_column(spec: CampaignSpec, action: str, name: str) -> dict[str, Any]:
    """The spec source with a column `{name, action}` added at the end; raises EditError when the campaign has a
    column of that name already (it is the user's: it is never replaced)."""
    name = name.strip()
    if not name:
        raise EditError("the new column needs a name", hint="type one above Add as column")
    return with_action_column(copy.deepcopy(spec.source), action, name)


def estimate_text(estimate: dict[str, Any]) -> str:
    said = f"{estimate['credits_per_record']:g} credits a record"
    if estimate.get("records") is not None:
        said += f", {estimate['credits_all_records']:g} for all {estimate['records']} records"
    return said


def preview_rows(shown: dict[str, Any]) -> list[dict[str, Any]]:
    """The preview's sample rows as a table: row, status, and the value (or why there is none)."""
    rows = []
    for row in shown.get("rows", []):
        value = row.get("value")
        if value is None:
            said = row.get("error") or ""
        else:
            said = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append({"row": row["row_id"], "status": row["status"], "value": said})
    return rows


def column_note(kind: str, paused: bool | None) -> str:
    """What a column made from a newly accepted action does, said on screen (`paused`: whether the campaign holds
    the column paused; None before it is added). The action's own pause is its consent for ad hoc runs (the
    Record page); as a campaign step the column follows the campaign's consent, so it needs no resume there."""
    action = (
        "The action itself stays paused for runs from the Record page until someone resumes it on the Actions "
        "page; the column does not need that."
    )
    if paused is None:
        return (
            f"A {kind} step that costs nothing (a formula, a python function, an ai step on the offline model) "
            "fills its cells at once; one that pays starts paused, as every new paid step does, and waits for you "
            f"to start it from the Mode menu after its estimate. {action}"
        )
    if paused:
        return f"It pays per call, so it starts paused: see its estimate and start it from the Mode menu. {action}"
    return f"Its cells fill as the campaign computes it. {action}"


# ---- the panel ------------------------------------------------------------------------------------------------


def open_on(action: str, campaign: str | None, column: str | None = None) -> None:
    """Open the grid's panel on `action` (and, when refining a column, the column made from it)."""
    st.session_state[OPEN_KEY] = {"action": action, "campaign": campaign, "column": column}


def chat_menu(ws: Workspace, spec: CampaignSpec, column: str | None) -> None:
    """The grid's Chat menu: refine the action the selected column is made from, or build a new one by chat (to
    add as a column once accepted). Either opens the panel under the toolbar."""
    st.markdown("**Build with chat**")
    made_from = action_of(ws, spec, column) if column else None
    if column and made_from:
        st.caption(f"Column {column} is made from action {made_from}.")
        if st.button("Refine with chat", key="chat_refine", type="primary", icon=":material/forum:"):
            open_on(made_from, spec.name, column)
            st.rerun()
    elif column:
        st.caption(f"Column {column} is written in the spec, not made from an action: build one here instead.")
    name = st.text_input("New action", key="chat_new_name", placeholder="e.g. icp_fit")
    st.caption("Letters, digits and underscores. It starts paused; once accepted, add it as a column.")
    if st.button("Build with chat", key="chat_build", icon=":material/forum:", disabled=not name.strip()):
        open_on(name.strip(), spec.name)
        st.rerun()


def action_of(ws: Workspace, spec: CampaignSpec, column: str) -> str | None:
    """The name of the library action `column` is made from, if it is one this user may see."""
    entry = next((c for c in spec.source.get("columns", []) if isinstance(c, dict) and c.get("name") == column), {})
    if entry.get("from_action") is None:
        return None
    listed = reads.kept(ws, ("actions", session.actor()), ws.actions(actor=session.actor(), trigger="ui").listed)
    return next((str(a["name"]) for a in listed if a["action_id"] == entry["from_action"]), None)


def on_grid(ws: Workspace, spec: CampaignSpec, add_column: AddColumn) -> None:
    """The panel under the grid's toolbar, while the Chat menu has it open on this campaign."""
    opened = st.session_state.get(OPEN_KEY)
    if not opened or opened.get("campaign") != spec.name:
        return
    with st.container(border=True, key="builder-grid"):
        head, close = st.columns([6, 1], vertical_alignment="center")
        what = f"column {opened['column']}" if opened.get("column") else "a new column"
        head.markdown(f"**Build with chat: action `{opened['action']}`** · {what} of {spec.name}")
        if close.button("Close", key="builder-close", icon=":material/close:"):
            st.session_state.pop(OPEN_KEY, None)
            st.rerun()

        def added(source: dict[str, Any], message: str) -> None:
            """Add the column and close the panel, so the grid under the toolbar shows the column filling; should
            the apply be refused, the panel stays open with the refusal."""
            st.session_state.pop(OPEN_KEY, None)
            add_column(source, message)  # reruns the page once the column is added
            st.session_state[OPEN_KEY] = opened

        render(ws, opened["action"], campaign=spec.name, spec=spec, add_column=added, key="builder")


def render(
    ws: Workspace,
    action: str,
    *,
    campaign: str | None,
    spec: CampaignSpec | None = None,
    add_column: AddColumn | None = None,
    key: str = "builder",
) -> None:
    """The chat of `action` (it may not exist yet: the first accepted proposal adds it, paused)."""
    viewer = reads.kept(ws, ("role", session.actor()), lambda: ws.role(session.actor())) == "viewer"
    model = BuilderModel() if viewer else model_picker(key)
    builder = ws.builder(model, actor=session.actor(), trigger="ui")
    history: list[dict[str, Any]] = []
    with session.friendly("chat"):
        history = builder.history(action)
    with st.container(key=f"{key}-history"):
        for message in history:
            show_message(message)
        if not history:
            st.caption(f"No chat about {action} yet." + ("" if viewer else " Describe what it should do below."))
    latest = latest_proposal(history)
    if latest is not None:
        with st.container(border=True, key=f"{key}-proposal"):
            show_proposal(builder, latest, key, viewer)
    if viewer:
        st.caption("Viewers read the chat; an admin describes changes and accepts them.")
        return
    request_form(builder, action, campaign, key)
    if campaign is not None and spec is not None and add_column is not None:
        add_column_box(ws, action, spec, add_column, key)
    reset_box(builder, action, key, bool(history))


def model_picker(key: str) -> BuilderModel:
    """Which model writes, kept for the session: the offline one (drafts from the built-in templates) unless a
    model the workspace can call is named; its key stays in the server's environment, named, never typed here."""
    with st.expander("Model", expanded=False, icon=":material/smart_toy:"):
        name = st.text_input(
            "Model",
            value=BuilderModel.model,
            key=f"{key}-model",
            help="offline, a litellm model name (e.g. gpt-4o-mini), or openai/NAME with an API base",
        )
        base = st.text_input("API base (an OpenAI-compatible server)", key=f"{key}-api-base")
        env = st.text_input("Environment variable holding the key", key=f"{key}-key-env")
    return BuilderModel(
        name.strip() or BuilderModel.model, api_base=base.strip() or None, api_key_env=env.strip() or None
    )


def show_message(message: dict[str, Any]) -> None:
    role = message["role"]
    if role == "event":
        st.caption(f"{message['content']} · {message['actor']}")
        return
    with st.chat_message("user" if role == "user" else "assistant"):
        if message.get("proposal") is None:
            st.markdown(message["content"])
            return
        status = "accepted" if message.get("accepted_at") is not None else message["proposal"]["status"]
        st.markdown(f"Proposal #{message['message_id']} · {status}")
        with st.expander("The reply in full"):
            st.text(message["content"])


def show_proposal(builder: Any, message: dict[str, Any], key: str, viewer: bool) -> None:
    proposal, number = message["proposal"], message["message_id"]
    status = "accepted" if message.get("accepted_at") is not None else proposal["status"]
    st.markdown(f"**Proposal #{number}** for `{proposal['name']}` · {status}")
    if proposal.get("note"):
        st.info(proposal["note"], icon=":material/info:")
    if proposal["status"] == "failed":
        st.error(f"No proposal: {proposal['error']}. The action is unchanged.", icon="⚠️")
        return
    said, diff = st.columns(2)
    with said:
        if proposal.get("plan"):
            st.markdown("**Plan**\n" + "\n".join(f"{i}. {step}" for i, step in enumerate(proposal["plan"], 1)))
        if proposal["status"] == "invalid":
            st.error(f"This proposal is invalid and cannot be applied: {proposal['error']}", icon="⚠️")
            return
        if proposal.get("repaired_from"):
            st.caption(f"The first draft was invalid ({proposal['repaired_from']}); repaired.")
        st.markdown(f"**What changed and why:** {proposal['changes']}")
        st.markdown(f"**Description (what the action does):** {proposal['description']}")
        st.markdown(f"**Estimate:** {estimate_text(proposal['estimate'])}")
        show_preview(builder, proposal, number, key, viewer)
    with diff:
        st.markdown("**Diff of the action's spec**")
        st.code(proposal["diff"], language="diff", height=360, wrap_lines=True)
    if message.get("accepted_at") is not None:
        st.success(f"Accepted at {str(message['accepted_at'])[:19]}", icon=":material/check:")
    elif not viewer and st.button("Accept", key=f"{key}-accept", type="primary", icon=":material/check:"):
        with session.friendly("accept"):
            shown = builder.accept(number)
            reads.forget_cached()
            state = "added, paused for Record page runs until resumed" if proposal["new"] else "updated"
            session.notify(f"Accepted proposal #{number}: action {shown['name']} {state}")
            st.rerun()


def show_preview(builder: Any, proposal: dict[str, Any], number: int, key: str, viewer: bool) -> None:
    shown = proposal.get("preview")
    if shown is None:
        st.caption("No preview: the chat has no campaign to run the step on (pick one to preview on).")
        return
    if shown["status"] == "ran":
        st.markdown("**Preview on sample rows** (nothing is stored)")
        st.dataframe(preview_rows(shown), hide_index=True, width="stretch", key=f"{key}-preview-{number}")
        return
    if shown["status"] == "priced":
        st.warning(f"The preview would spend {shown['credits']:g} credits ({shown['calls']} calls).", icon="💳")
        if not viewer and st.button(f"Run the preview for {shown['credits']:g} credits", key=f"{key}-confirm"):
            with session.friendly("preview"):
                builder.confirm_preview(number)
                st.rerun()
        return
    st.caption(f"Preview not run: {shown['reason']}.")


def request_form(builder: Any, action: str, campaign: str | None, key: str) -> None:
    """The request box. Send asks the builder in the button's callback, before the page is drawn again, so the
    run that follows shows the new proposal at once (one run of the page, not two); a refusal is shown here."""
    with st.form(f"{key}-form", border=False):
        st.text_area(
            "Describe the change, or ask about the action",
            key=f"{key}-request",
            height=80,
            placeholder='e.g. "score each lead 1-10 against our ICP and give the reasons"',
        )
        st.form_submit_button("Send", icon=":material/send:", on_click=send, args=(builder, action, campaign, key))
    refused = st.session_state.pop(f"{key}-refused", None)
    if refused is not None:
        with session.friendly("chat"):
            raise refused


def send(builder: Any, action: str, campaign: str | None, key: str) -> None:
    text = str(st.session_state.get(f"{key}-request") or "")
    if not text.strip():
        return
    try:
        builder.chat(action, text, campaign=campaign)
    except Exception as error:  # shown under the box by the run that follows (session.friendly), the request kept
        st.session_state[f"{key}-refused"] = error
        return
    st.session_state[f"{key}-request"] = ""


def add_column_box(ws: Workspace, action: str, spec: CampaignSpec, add_column: AddColumn, key: str) -> None:
    """After an accept: add the action to the campaign as a column (or say which column is made from it)."""
    listed = reads.kept(ws, ("actions", session.actor()), ws.actions(actor=session.actor(), trigger="ui").listed)
    found = next((a for a in listed if a["name"].lower() == action.lower()), None)
    if found is None:
        return
    made = column_from(spec, found["action_id"])
    if made is not None:
        paused = made in ws.pause_state(spec.name).columns
        st.caption(
            f"Column {made} is made from {found['name']}: an accepted change reaches it (its cells go stale and "
            f"recompute, paid ones after their estimate). {column_note(found['kind'], paused)}"
        )
        return
    name = st.text_input("Column name", value=found["name"], key=f"{key}-column-name")
    if st.button("Add as column", key=f"{key}-add-column", type="primary", icon=":material/add:"):
        with session.friendly("add column"):
            source = new_column(spec, found["name"], name)
            add_column(source, f"added column {name.strip()} from action {found['name']} (the action stays paused)")
    st.caption(column_note(found["kind"], None))


def reset_box(builder: Any, action: str, key: str, has_history: bool) -> None:
    """Reset Chat asks first; the action itself is untouched."""
    if not has_history:
        return
    asked = st.session_state.get(f"{key}-reset-asked") == action
    if not asked:
        if st.button("Reset Chat…", key=f"{key}-reset", icon=":material/restart_alt:"):
            st.session_state[f"{key}-reset-asked"] = action
            st.rerun()
        return
    st.warning(f"Start the chat of {action} over? Its messages go; the action stays as it is.")
    yes, no = st.columns(2)
    if yes.button("Yes, reset", key=f"{key}-reset-confirm", type="primary"):
        st.session_state.pop(f"{key}-reset-asked", None)
        with session.friendly("reset"):
            gone = builder.reset(action)
            session.notify(f"Chat of {action} reset ({gone} messages)")
            st.rerun()
    if no.button("Cancel", key=f"{key}-reset-cancel"):
        st.session_state.pop(f"{key}-reset-asked", None)
        st.rerun()
