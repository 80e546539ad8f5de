"""The cell panel: the selected cell's value as formatted text, Copy / Copy as Markdown, Click to Run or Run
Again, editing (an input recomputes its downstream, a step cell becomes pinned), Confirm on a pinned cell (so
exports downstream may send it), Save to Record (a step's current value copied into the record's notes or a
named field, so later steps read it), Send to Copilot (ui/copilot_chat.py), and the cell's provenance (inputs,
rendered prompt, model, tokens, credits, latency, when and by whom).
"""

from __future__ import annotations

import zlib
from typing import Any

import streamlit as st

from engine import Campaign, CampaignSpec, Cell, RunReport, Status, Workspace
from ui import cells, copilot_chat, runs, session

BADGE_COLOURS = {
    Status.EMPTY: "blue",
    Status.WAITING: "gray",
    Status.QUEUED: "gray",
    Status.RUNNING: "blue",
    Status.DONE: "green",
    Status.STALE: "orange",
    Status.SKIPPED: "gray",
    Status.NOT_FOUND: "gray",
    Status.ERROR: "red",
    Status.PINNED: "violet",
    Status.CONFIRMED: "violet",
    Status.PAUSED: "gray",
}
NOTES = "notes"
NEW_FIELD = "➕ a new field…"


def render(ws: Workspace, campaign: Campaign, spec: CampaignSpec) -> None:
    selected = st.session_state.get("selected")
    if not selected or selected[1] not in spec.names:
        with st.container(border=True):
            st.markdown("**Cell panel**")
            st.caption("Select a cell in the grid to see its value, run it, edit it and see where it came from.")
        return
    row_id, column = int(selected[0]), str(selected[1])
    with session.friendly():
        cell = campaign.cell(row_id, column)
        with st.container(border=True, key="cell-panel"):
            title, link = st.columns([3, 2], vertical_alignment="center")
            title.markdown(f"**{column}** · row {row_id}")
            link.page_link(
                "views/record.py",
                label="Open record",
                icon=":material/person:",
                query_params={"campaign": campaign.name, "row": str(row_id)},
            )
            if spec.column(column).is_input:
                input_cell(ws, campaign, cell)
            else:
                step_cell(ws, campaign, spec, cell)


def input_cell(ws: Workspace, campaign: Campaign, cell: Cell) -> None:
    st.badge("input", color="gray")
    st.markdown(cells.as_markdown(cell.value) or "*empty*")
    edit_box(ws, campaign, cell, "Save", "Saving recomputes this row's downstream cells.")


def step_cell(ws: Workspace, campaign: Campaign, spec: CampaignSpec, cell: Cell) -> None:
    colour = "gray" if cell.blocked_by else BADGE_COLOURS.get(cell.status, "gray")
    st.badge(status_label(cell), color=colour)  # type: ignore[arg-type]
    if cell.status is Status.ERROR and not cell.blocked_by:  # a blocked cell says so with its Open button
        st.error(f"**{cell.error_code}**: {cell.error_message or 'the step failed'}")
        if cell.error_hint:
            st.caption(f"How to fix: {cell.error_hint}")
    elif cell.status is Status.WAITING:
        st.info(f"Waiting on **{cell.waiting_on}**: that column has no value for this row yet.")
    elif cell.status is Status.STALE:
        st.warning("Stale: its inputs changed since it ran. The old value is shown; Run Again to refresh it.")
    if cell.value is not None:
        with st.container(border=True, height=220 if len(str(cell.value)) > 400 else "content"):
            st.markdown(cells.as_markdown(cell.value))
    actions(ws, campaign, spec, cell)
    if cell.hand_set:
        confirm_box(ws, campaign, cell)
    if cell.value is not None:
        st.caption("Copy")
        st.code(cells.as_plain_text(cell.value), language=None, wrap_lines=True)
        st.caption("Copy as Markdown")
        st.code(cells.as_markdown(cell.value), language="markdown", wrap_lines=True)
    if cell.current and cell.value is not None:
        save_to_record_box(ws, campaign, spec, cell)
        copilot_chat.copilot_box(ws, campaign.name, cell.row_id, column=cell.column)
    with st.expander("Edit value (pins it)"):
        pinned = "A hand-edited step cell is pinned: recompute never overwrites it; exports wait until you confirm it."
        edit_box(ws, campaign, cell, "Save edit", pinned)
    provenance(ws, campaign, spec, cell)


def status_label(cell: Cell) -> str:
    if cell.status is Status.CONFIRMED:
        return "edited by hand, confirmed"
    return cells.status_label(cell)


def confirm_box(ws: Workspace, campaign: Campaign, cell: Cell) -> None:
    """A pinned cell's Confirm: its exports downstream wait for it. A confirmed one says so."""
    if cell.status is Status.CONFIRMED:
        st.caption("Edited by hand and confirmed: exports downstream may send it. Editing it again unconfirms it.")
        return
    st.caption("Edited by hand: exports downstream wait until the value is confirmed.")
    if st.button("✓ Confirm", key="panel-confirm"):
        with session.friendly("confirm"):
            report = campaign.confirm(cell.row_id, cell.column, run_paid=False)
            after_edit(ws, campaign, cell.row_id, report, f"Confirmed {cell.column} on row {cell.row_id}")
            st.rerun()


def save_to_record_box(ws: Workspace, campaign: Campaign, spec: CampaignSpec, cell: Cell) -> None:
    """Save to Record: the value goes into the record's notes (a line `column: value`) or a named field."""
    with st.expander("Save to Record"):
        inputs = [c.name for c in spec.columns if c.is_input and c.name != NOTES]
        field = st.selectbox("Field", [NOTES, *inputs, NEW_FIELD], key=f"save-field-{campaign.name}")
        if field == NEW_FIELD:
            field = st.text_input("New field name", key=f"save-new-field-{campaign.name}").strip()
        st.caption(
            f"**{NOTES}** gets a line `{cell.column}: value`; another field is set to the value (a new one is "
            "created). Steps that read the field react like after any edit of the record."
        )
        if st.button("Save to Record", key="panel-save-to-record", disabled=not field):
            with session.friendly("save to record"):
                report = campaign.save_to_record(cell.row_id, cell.column, field, run_paid=False)
                after_edit(ws, campaign, cell.row_id, report, f"Saved {cell.column} into {field} of row {cell.row_id}")
                st.rerun()


def actions(ws: Workspace, campaign: Campaign, spec: CampaignSpec, cell: Cell) -> None:
    """The run buttons that can help this cell: no Run Again on a formula or a skipped cell; on a blocked one,
    the way to the cell that blocks it; on a waiting one, running what it waits on."""
    reason = cells.why_not_runnable(cell, spec.column(cell.column).kind)
    if reason is not None:
        st.caption(reason)
    left, right = st.columns(2)
    if reason is None:
        again = cells.can_run_again(cell)
        label = "⟳ Run Again" if again else "▶ Click to Run"
        busy = cell.status is Status.RUNNING  # queued cells nobody is running yet can be started by hand
        request = runs.RunRequest(campaign.name, (cell.column,), (cell.row_id,), force=again)
        with left:
            st.button(
                label,
                type="primary",
                key="panel-run",
                disabled=busy,
                width="stretch",
                on_click=start_before_rerun,
                args=(ws, request),
            )
        refused = st.session_state.pop("_start_refused", None)
        if refused is not None:
            with left, session.friendly("run"):
                raise refused
    if cell.blocked_by:
        with left:
            if st.button(f"Open {cell.blocked_by}", key="panel-open-blocker", icon=":material/arrow_back:"):
                st.session_state["selected"] = (cell.row_id, cell.blocked_by)
                st.rerun()
    if cell.status is Status.WAITING and cell.waiting_on:
        with right:
            if st.button(f"Run {cell.waiting_on} first", key="panel-run-upstream", width="stretch"):
                start(ws, campaign, runs.RunRequest(campaign.name, (cell.waiting_on,), (cell.row_id,)))


def start_before_rerun(ws: Workspace, request: runs.RunRequest) -> None:
    """Click to Run / Run Again, as the button's callback: the run starts before the rerun the click causes, so
    that very rerun draws the cell running (a refusal is said by the panel in that rerun)."""
    try:
        launched = runs.launch(ws.path.resolve(), request, actor=session.actor(), ws=ws)
    except Exception as error:
        st.session_state["_start_refused"] = error
        return
    clicked: dict[tuple[int, str], int] = st.session_state.setdefault("_clicked", {})
    for row_id in request.rows or ():
        for column in request.columns:
            clicked[(row_id, column)] = launched.ident
    session.notify(f"Started: {request.describe()}", ":material/play_arrow:")


def start(ws: Workspace, campaign: Campaign, request: runs.RunRequest) -> None:
    """Launch a run outside the script and refresh, so the page starts following its progress; the cells it was
    asked for show running at once (ui/grid.py `clicked_cells`)."""
    with session.friendly("run"):
        launched = runs.launch(ws.path.resolve(), request, actor=session.actor(), ws=ws)
        clicked: dict[tuple[int, str], int] = st.session_state.setdefault("_clicked", {})
        for row_id in request.rows or ():
            for column in request.columns:
                clicked[(row_id, column)] = launched.ident
        session.notify(f"Started: {request.describe()}", ":material/play_arrow:")
        st.rerun()


def edit_box(ws: Workspace, campaign: Campaign, cell: Cell, label: str, help_text: str) -> None:
    current = "" if cell.value is None else str(cell.value)
    # the value is part of the key, so the box refills when the cell changes under it
    key = f"edit-{campaign.name}-{cell.row_id}-{cell.column}-{zlib.crc32(current.encode())}"
    text = st.text_area("Value", value=current, key=key, height=100, label_visibility="collapsed")
    st.caption(help_text)
    if st.button(label, key=f"{key}-save", disabled=text == current):
        with session.friendly("save"):  # a refusal (a bad value, a role that may not edit) is one friendly line
            save_value(ws, campaign, cell.row_id, cell.column, None if text == "" else text)
            st.rerun()


def save_value(ws: Workspace, campaign: Campaign, row_id: int, column: str, value: Any) -> None:
    """Write one cell; paid auto steps it makes pending are run by a background run for that row."""
    report = campaign.set(row_id, column, value, run_paid=False)
    after_edit(ws, campaign, row_id, report, f"Saved {column} on row {row_id}", edited=column)


def after_edit(
    ws: Workspace, campaign: Campaign, row_id: int, report: RunReport, message: str, edited: str | None = None
) -> None:
    """Tell what an edit recomputed; paid auto steps it queued are run by a background run for the row."""
    queued = [e for e in report.events if e.outcome == Status.QUEUED.value]
    recomputed = sorted({e.column for e in report.events if e.outcome == "done" and e.column != edited})
    if recomputed:
        message += f"; recomputed {', '.join(recomputed)}"
    if queued:
        try:
            runs.launch(ws.path.resolve(), runs.RunRequest(campaign.name, (), (row_id,)), actor=session.actor(), ws=ws)
            message += "; running its auto-run steps"
        except runs.RunConflict:
            message += "; its auto-run steps are queued behind the current run"
    session.notify(message)


def provenance(ws: Workspace, campaign: Campaign, spec: CampaignSpec, cell: Cell) -> None:
    with st.expander("Provenance", expanded=False):
        deps = list(spec.column(cell.column).deps)
        if deps:
            row = campaign.page(rows=[cell.row_id], columns=deps).rows[0]
            st.markdown("**Inputs**")
            st.table({name: [cells.short(row[name].value, 120)] for name in deps})
        detail = cells.detail_of(cell)
        facts: dict[str, Any] = {
            "model": detail.get("model"),
            "credits": cell.cost,
            "tokens": cell.tokens,
            "latency": f"{cell.latency_ms:.0f} ms" if cell.latency_ms is not None else None,
            "from cache": cell.cached,
            "attempts": cell.attempts,
            "finished": cell.finished_at,
            "run": cell.run_id,
            "key": cell.key,
        }
        who = _run_of(ws, cell.run_id)
        if who:
            facts["by"] = f"{who.get('actor')} ({who.get('trigger')})"
        st.table({k: [str(v)] for k, v in facts.items() if v is not None})
        prompt = detail.get("messages") or detail.get("prompt") or detail.get("rendered")
        if prompt:
            st.markdown("**Rendered prompt**")
            st.code(prompt if isinstance(prompt, str) else _messages_text(prompt), language=None, wrap_lines=True)
        extra = {k: v for k, v in detail.items() if k not in ("model", "messages", "prompt", "rendered")}
        if extra:
            st.json(extra, expanded=False)


def _run_of(ws: Workspace, run_id: int | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    return ws.run_record(run_id)


def _messages_text(messages: Any) -> str:
    if isinstance(messages, list):
        return "\n\n".join(
            f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m) for m in messages
        )
    return str(messages)
