"""Send to Copilot, in the cell panel and the record page's result panel: a chat seeded with the result, where each
message is one model call; under each reply, Save to Record (into the record's notes) and Use as cell value
(pinned as a hand edit: exports downstream wait until it is confirmed). Viewers read a chat kept for the result;
they cannot open or continue one (the engine refuses, and the page says so in a line)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import Copilot, Status, Workspace
from ui import runs, session

OPEN_KEY = "_copilot_open"  # the source (a tuple) whose chat is shown


def source_key(campaign: str, row_id: int, column: str | None, result_id: int | None) -> tuple[Any, ...]:
    return ("result", result_id) if result_id is not None else ("cell", campaign, row_id, column)


def copilot_box(
    ws: Workspace, campaign: str, row_id: int, *, column: str | None = None, result_id: int | None = None
) -> None:
    """The Send to Copilot button of a cell (`column`) or an action result (`result_id`), then its chat."""
    copilot = ws.copilot(actor=session.actor(), trigger="ui")
    source = source_key(campaign, row_id, column, result_id)
    key = "-".join(str(part) for part in source)
    where: dict[str, Any] = (
        {"result": result_id}
        if result_id is not None
        else {
            "campaign": campaign,
            "row": row_id,
            "column": column,
        }
    )
    if st.session_state.get(OPEN_KEY) != source:
        if st.button("✦ Send to Copilot", key=f"copilot-open-{key}", width="stretch"):
            with session.friendly("send to Copilot"):
                copilot.start(**where)
                st.session_state[OPEN_KEY] = source
                st.rerun()
        return
    with session.friendly("Copilot"):
        chat = copilot.find(**where)
        if chat is None:
            st.session_state.pop(OPEN_KEY, None)
            return
        draw_chat(ws, copilot, chat, key)


def draw_chat(ws: Workspace, copilot: Copilot, chat: dict[str, Any], key: str) -> None:
    chat_id = int(chat["chat_id"])
    with st.container(border=True, key=f"copilot-chat-{key}"):
        top, reset, close = st.columns([4, 1, 1], vertical_alignment="center")
        top.markdown(f"**Copilot** · chat {chat_id}")
        if reset.button("Reset", key=f"copilot-reset-{key}"):
            with session.friendly("reset"):
                copilot.reset(chat_id)
                st.rerun()
        if close.button("Close", key=f"copilot-close-{key}"):
            st.session_state.pop(OPEN_KEY, None)
            st.rerun()
        st.caption("Continuing this result: " + str(chat["seed"].get("result", ""))[:300])
        for message in chat["messages"]:
            draw_message(ws, copilot, chat, message, key)
        with st.form(f"copilot-say-{key}", clear_on_submit=True, border=False):
            hint = 'e.g. "shorter", "mention their Series B"'
            said = st.text_input("Ask for a change", placeholder=hint, key=f"copilot-input-{key}")
            if st.form_submit_button("Send", key=f"copilot-send-{key}") and said.strip():
                with session.friendly("Copilot"), st.spinner("Copilot is writing…"):
                    copilot.say(chat_id, said)
                    st.rerun()


def draw_message(ws: Workspace, copilot: Copilot, chat: dict[str, Any], message: dict[str, Any], key: str) -> None:
    role = str(message["role"])
    with st.chat_message("user" if role == "user" else "assistant"):
        if role == "error":
            st.error(message["content"])
            return
        st.markdown(message["content"])
        if role != "assistant":
            return
        if message["model"] == "offline":
            st.caption("offline model: set a model on the step (with its key) to have a real model answer")
        if message["used_as"]:
            st.caption(f"Used: {message['used_as']} by {message['used_by']} at {message['used_at']}")
        record, cell = st.columns(2)
        mid = int(message["message_id"])
        if record.button("Save to Record", key=f"copilot-save-{key}-{mid}", width="stretch"):
            with session.friendly("save to record"):
                copilot.save(int(chat["chat_id"]), to="record", message_id=mid, run_paid=False)
                finish(ws, chat, f"Saved the reply into the record's notes (row {chat['row_id']})")
        if chat["column_name"] and cell.button(
            "Use as cell value", key=f"copilot-pin-{key}-{mid}", type="primary", width="stretch"
        ):
            with session.friendly("use as cell value"):
                used = copilot.save(int(chat["chat_id"]), to="cell", message_id=mid, run_paid=False)
                finish(ws, chat, f"Pinned the reply as {chat['column_name']} on row {chat['row_id']}", used)


def finish(ws: Workspace, chat: dict[str, Any], message: str, used: dict[str, Any] | None = None) -> None:
    """Tell what the save did; auto steps it queued run in the background for the row, as after an edit."""
    if used is not None and used.get("queued"):
        row = (int(chat["row_id"]),)
        try:
            runs.launch(ws.path.resolve(), runs.RunRequest(chat["campaign"], (), row), actor=session.actor(), ws=ws)
            message += "; running its auto-run steps"
        except runs.RunConflict:
            message += "; its auto-run steps are queued behind the current run"
    if used is not None:
        message += f" ({Status.PINNED.value}: exports downstream wait until you confirm it)"
    session.notify(message)
    st.rerun()
