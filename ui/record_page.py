"""The Record page: one record of a campaign (`/record?campaign=NAME&row=ID`, opened by search or from the grid's
cell panel), its fields, every step cell with its state, a Run Action list of the library actions this user's
role may run, the result panel of the last action run here (live while it runs, then the result as markdown with
Copy, Copy as Markdown, Regenerate, Save to Record and Send to Copilot), and the record's timeline.

It reads one row (`Campaign.page(rows=[id])`), never the whole campaign: a record of a million-row campaign opens
as fast as one of ten.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import streamlit as st

from engine import ActionLibrary, Campaign, CampaignSpec, Cell, NotFoundError, Status, Workspace
from ui import cells, copilot_chat, grid, live, panel, reads, runs, session

RESULT_POLL_S = 0.25  # an offline action takes a few ms: its result shows within a quarter second
CELLS_POLL_S = 1.0
TIMELINE = 20
FOUND = 20
RESULT_KEY = "_record_result"  # {"campaign", "row", "id"}: the result panel's action run
REFUSED_KEY = "_record_refused"  # a refusal raised in a button's callback, said by the run that follows
# Set by a button inside the result panel (a fragment, whose clicks rerun it alone): the whole page is drawn again,
# so the fields and the timeline show what Save to Record changed and the panel follows a regenerated result.
WHOLE_PAGE_KEY = "_record_whole_page"
MARKDOWN_SIGNS = re.compile(r"([\\`*_{}\[\]()#+\-.!:|<>~$])")
STATUS_COLOURS = {"running": "blue", "done": "green", "error": "red", "skipped": "gray"}


def render() -> None:
    st.title("Record")
    ws = reads.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        name = reads.campaign_name(ws)
        if name is None:
            st.info("There is no campaign yet: apply a spec on the **Grid** page first.")
            return
        campaign = reads.campaign(ws, name)
        library = ws.actions(actor=session.actor(), trigger="ui")
        finder(ws, library, name)
        row_id = chosen_row()
        if row_id is None:
            st.caption("Find a record above by its name, email, domain or row id, or open one from the grid.")
            return
        try:
            page = campaign.page(rows=[row_id])
        except NotFoundError:
            st.warning(f"Campaign **{name}** has no record {row_id}: find one above.")
            return
        spec = reads.spec(ws, campaign)
        record_body(ws, library, campaign, spec, row_id, page.rows[0])


def chosen_row() -> int | None:
    """The record the URL names (`?row=ID`): a record has a link."""
    text = str(st.query_params.get("row") or "").strip()
    return int(text) if text.isdigit() else None


def open_row(row_id: int) -> None:
    st.query_params["row"] = str(row_id)


def finder(ws: Workspace, library: ActionLibrary, campaign: str) -> None:
    """Find a record: a text box (name, email, domain or row id) and the records that match, to pick one."""
    text = st.text_input(
        "Find a record", key="record-search", placeholder="a name, an email, a domain or a row id"
    ).strip()
    if not text:
        return
    found = reads.kept(ws, ("find", campaign, text), lambda: library.find_records(campaign, text, FOUND))
    if not found:
        st.caption(f"No record of **{campaign}** matches “{text}”.")
        return
    with st.container(key="record-found"):
        for record in found:
            label = f"#{record['row_id']} · " + " · ".join(
                cells.short(v, 40) for k, v in record.items() if k != "row_id" and v not in (None, "")
            )
            st.button(label, key=f"record-pick-{record['row_id']}", on_click=open_row, args=(int(record["row_id"]),))


def record_body(
    ws: Workspace, library: ActionLibrary, campaign: Campaign, spec: CampaignSpec, row_id: int, row: dict[str, Cell]
) -> None:
    st.subheader(f"{plain(record_title(spec, row))} · row {row_id}")
    st.caption(f"Campaign **{campaign.name}** · link: `?campaign={campaign.name}&row={row_id}`")
    left, right = st.columns([3, 2], gap="medium")
    with left:
        fields(spec, row)
        step_cells(ws, campaign, spec, row_id, row)
        timeline(ws, library, campaign.name, row_id)
    with right:
        run_action(ws, library, campaign, row_id, [(c.kind, row[c.name]) for c in spec.columns if not c.is_input])
        result_panel(ws, library, campaign.name, row_id)


def record_title(spec: CampaignSpec, row: dict[str, Cell]) -> str:
    """The record's first non-empty text input (its name or email, in practice)."""
    for column in spec.columns:
        value = row[column.name].value
        if column.is_input and isinstance(value, str) and value.strip():
            return cells.short(value, 60)
    return "Record"


def fields(spec: CampaignSpec, row: dict[str, Cell]) -> None:
    """The record's inputs, one line each (one element: a record of many fields draws as fast as one of few)."""
    lines = []
    for column in spec.columns:
        if column.is_input:
            value = row[column.name].value
            lines.append(f"**{column.name}**: " + ("—" if value in (None, "") else plain(cells.short(value, 2000))))
    with st.container(border=True, key="record-fields"):
        st.markdown("**Fields**  \n" + "  \n".join(lines))


def step_cells(ws: Workspace, campaign: Campaign, spec: CampaignSpec, row_id: int, first: dict[str, Cell]) -> None:
    """Every step cell with its state and value, and Click to Run / Run Again; kept live while a run goes."""
    steps = [c for c in spec.columns if not c.is_input]
    if not steps:
        return
    polling = live.is_active(ws, campaign.name)

    @st.fragment(run_every=CELLS_POLL_S if polling else None)
    def area() -> None:
        row = first
        if st.session_state.pop("_record_cells_read", False) is False:  # a poll: read the row again
            reads.fresh()
            row = campaign.page(rows=[row_id]).rows[0]
        clicked = grid.clicked_cells(ws, campaign.name)
        shown = [
            (column.kind, cells.running_now(row[column.name]) if (row_id, column.name) in clicked else row[column.name])
            for column in steps
        ]
        with st.container(border=True, key="record-cells"):
            st.markdown("**Steps**\n\n" + steps_table(shown))
            run_buttons(ws, campaign, shown)
            refused = st.session_state.pop("_start_refused", None)  # Click to Run refused (panel.start_before_rerun)
            if refused is not None:
                with session.friendly("run"):
                    raise refused
        # a run ended (stop polling), or Click to Run here started one (its clicks rerun this fragment alone)
        if polling != live.is_active(ws, campaign.name):
            session.rerun_keeping_notices()

    st.session_state["_record_cells_read"] = True  # this full run just read the row
    area()


def steps_table(shown: list[tuple[str, Cell]]) -> str:
    """Every step cell as a row of one markdown table: its kind and name, its state, its value (or its error)."""
    lines = ["| step | state | value |", "|---|---|---|"]
    for kind, cell in shown:
        colour = "gray" if cell.blocked_by else panel.BADGE_COLOURS.get(cell.status, "gray")
        label = re.sub(r"[\[\]]", "", panel.status_label(cell))
        if cell.value is not None:
            value = plain(cells.short(cell.value, 300))
        elif cell.status is Status.ERROR and cell.error_message:
            value = plain(cell.error_message + (f" — {cell.error_hint}" if cell.error_hint else ""))
        else:
            value = ""
        lines.append(f"| {cells.KIND_ICONS.get(kind, '•')} **{cell.column}** | :{colour}-badge[{label}] | {value} |")
    return "\n".join(lines)


def run_buttons(ws: Workspace, campaign: Campaign, shown: list[tuple[str, Cell]]) -> None:
    """Click to Run / Run Again for the step cells a run can help, as in the grid's cell panel."""
    runnable = [(kind, cell) for kind, cell in shown if cells.why_not_runnable(cell, kind) is None]
    if not runnable:
        return
    for slot, (_, cell) in zip(st.columns(min(len(runnable), 4)) * len(runnable), runnable, strict=False):
        again = cells.can_run_again(cell)
        request = runs.RunRequest(campaign.name, (cell.column,), (cell.row_id,), force=again)
        slot.button(
            f"⟳ Run Again {cell.column}" if again else f"▶ Click to Run {cell.column}",
            key=f"record-run-{cell.column}",
            disabled=cell.status is Status.RUNNING,
            on_click=panel.start_before_rerun,
            args=(ws, request),
            width="stretch",
        )


def run_action(
    ws: Workspace, library: ActionLibrary, handle: Campaign, row_id: int, steps: list[tuple[str, Cell]]
) -> None:
    """Run Action: the enabled library actions this user's role may run now, searchable, each with its category
    and description (its standard procedure); then the campaign's own steps that can run on this record (Click
    to Run / Run Again on its cell)."""
    campaign = handle.name
    with st.container(border=True, key="run-action"):
        st.markdown("**Run Action**")
        search = st.text_input(
            "Search actions", key="action-search", placeholder="a name, a category or words of a description"
        ).strip()
        who = session.actor()
        listed = reads.kept(ws, ("runnable", who, search), lambda: library.listed(runnable=True, search=search))
        if not listed:
            role = reads.kept(ws, ("role", who), lambda: ws.role(who))
            if role == "viewer":
                st.caption("Viewers read records and results; they run no action. Ask an admin to make you a member.")
            elif search:
                st.caption(f"No action you may run matches “{search}”.")
            else:
                st.caption("No action you may run: an admin adds actions and resumes them on the **Actions** page.")
        for action in listed:
            text, button = st.columns([5, 1.2], vertical_alignment="center")
            text.markdown(f"**{action['name']}** :gray-badge[{action['category']}]")
            text.caption(action["description"])
            button.button(
                "Run",
                key=f"run-action-{action['name']}",
                on_click=start_action,
                args=(library, action["name"], campaign, row_id),
                width="stretch",
            )
        role = reads.kept(ws, ("role", who), lambda: ws.role(who))
        if role != "viewer":
            campaign_steps(ws, handle, steps, search)
    refused = st.session_state.pop(REFUSED_KEY, None)
    if refused is not None:
        with session.friendly("action"):
            raise refused


def campaign_steps(ws: Workspace, campaign: Campaign, steps: list[tuple[str, Cell]], search: str) -> None:
    """The campaign's steps in the Run Action list: those a run can help on this record, matching the search."""
    needle = search.lower()
    for kind, cell in steps:
        if cells.why_not_runnable(cell, kind) is not None or (needle and needle not in f"{cell.column} {kind}".lower()):
            continue
        again = cells.can_run_again(cell)
        text, button = st.columns([5, 1.2], vertical_alignment="center")
        text.markdown(f"**{cell.column}** :blue-badge[campaign step · {kind}]")
        text.caption(f"This campaign's {kind} step: {'Run Again' if again else 'Click to Run'} on this record's cell.")
        button.button(
            "Run Again" if again else "Run",
            key=f"run-step-{cell.column}",
            disabled=cell.status is Status.RUNNING,
            on_click=panel.start_before_rerun,
            args=(ws, runs.RunRequest(campaign.name, (cell.column,), (cell.row_id,), force=again)),
            width="stretch",
        )


def start_action(library: ActionLibrary, name: str, campaign: str, row_id: int, force: bool = False) -> None:
    """Run (or Regenerate, with `force`) as the button's callback: the call starts in the background before the
    rerun the click causes, so that rerun already draws the panel."""
    try:
        result_id = library.start(name, campaign, row_id, force=force)
    except Exception as error:
        st.session_state[REFUSED_KEY] = error
        return
    st.session_state[RESULT_KEY] = {"campaign": campaign, "row": row_id, "id": result_id}
    st.session_state[WHOLE_PAGE_KEY] = True


def save_result(library: ActionLibrary, result_id: int) -> None:
    try:
        saved = library.save_result(result_id)
    except Exception as error:
        st.session_state[REFUSED_KEY] = error
        st.session_state[WHOLE_PAGE_KEY] = True
        return
    session.notify(f"Saved {saved['action']} to the record's {saved['saved_field']}")
    st.session_state[WHOLE_PAGE_KEY] = True


def result_panel(ws: Workspace, library: ActionLibrary, campaign: str, row_id: int) -> None:
    """The result of the action last run on this record from this page: polled while it runs, then shown."""
    st.session_state.pop(WHOLE_PAGE_KEY, None)  # this is a run of the whole page
    shown = st.session_state.get(RESULT_KEY)
    if not shown or shown["campaign"] != campaign or shown["row"] != row_id:
        return
    result_id = int(shown["id"])
    running = library.result(result_id)["status"] == "running"

    @st.fragment(run_every=RESULT_POLL_S if running else None)
    def area() -> None:
        if st.session_state.pop(WHOLE_PAGE_KEY, False):
            session.rerun_keeping_notices()
        with session.friendly():
            found = library.result(result_id)
            if running and found["status"] != "running":
                st.rerun()  # the whole page: the panel stops polling, the timeline shows the run
            draw_result(ws, library, found)

    area()


def draw_result(ws: Workspace, library: ActionLibrary, found: dict[str, Any]) -> None:
    status = str(found["status"])
    with st.container(border=True, key="result-panel"):
        st.markdown(f"**{found['action']}** · result {found['result_id']}")
        st.badge(status, color=STATUS_COLOURS.get(status, "gray"))  # type: ignore[arg-type]
        if status == "running":
            st.caption(f"Running since {clock(found['started_at'])}…")
            return
        st.caption(completion(found))
        if status == "error":
            st.error(f"**{found['error_code']}**: {found['error_message'] or 'the action failed'}")
            if found.get("error_hint"):
                st.caption(f"How to fix: {found['error_hint']}")
        value = found.get("value")
        if value is not None:
            with st.container(border=True, key="result-body"):
                st.markdown(cells.as_markdown(value))
            st.caption("Copy")
            st.code(cells.as_plain_text(value), language=None, wrap_lines=True)
            st.caption("Copy as Markdown")
            st.code(cells.as_markdown(value), language="markdown", wrap_lines=True)
        again, save = st.columns(2)
        again.button(
            "⟳ Regenerate",
            key="result-regenerate",
            on_click=start_action,
            args=(library, found["action"], found["campaign"], int(found["row_id"]), True),
            width="stretch",
        )
        if status == "done" and value is not None:
            save.button(
                "Save to Record",
                key="result-save",
                type="primary",
                disabled=found.get("saved_at") is not None,
                on_click=save_result,
                args=(library, int(found["result_id"])),
                width="stretch",
            )
        if found.get("saved_at") is not None:
            st.caption(f"Saved to {found['saved_field']} by {found['saved_by']} at {clock(found['saved_at'])}")
        if status == "done" and value is not None:
            copilot_chat.copilot_box(ws, found["campaign"], int(found["row_id"]), result_id=int(found["result_id"]))
        messages = (found.get("detail") or {}).get("messages")
        if messages:
            with st.expander("Provenance"):
                st.code(messages_text(messages), language=None, wrap_lines=True)


def plain(text: str) -> str:
    """Text shown as written: a record's values are data, not markdown (`probe(C:small)` is no directive)."""
    return MARKDOWN_SIGNS.sub(r"\\\1", text)


def completion(found: dict[str, Any]) -> str:
    parts = [f"{found['status'].capitalize()} at {clock(found['finished_at'])}"]
    if found.get("latency_ms") is not None:
        parts.append(f"{found['latency_ms']:.0f} ms")
    if found.get("credits"):
        parts.append(f"{found['credits']:g} credits")
    if found.get("cached"):
        parts.append("from cache")
    return " · ".join(parts)


def clock(when: Any) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}" if isinstance(when, datetime) else "?"


def messages_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return str(messages)
    return "\n\n".join(
        f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m) for m in messages
    )


def timeline(ws: Workspace, library: ActionLibrary, campaign: str, row_id: int) -> None:
    """The record's activity, newest first: edits, action runs, and Save to Record entries marked AI generated."""
    entries = reads.kept(
        ws, ("timeline", campaign, row_id), lambda: ws.activity(TIMELINE, campaign=campaign, row_id=row_id)
    )
    names = {a["action_id"]: a["name"] for a in reads.kept(ws, ("actions", session.actor()), library.listed)}
    with st.container(border=True, key="record-timeline"):
        st.markdown("**Timeline**  \n" + "  \n".join(timeline_line(entry, names) for entry in entries))
        if not entries:
            st.caption("Nothing has happened to this record yet.")


def timeline_line(entry: dict[str, Any], names: dict[Any, str]) -> str:
    who, when = entry.get("actor") or "?", clock(entry.get("logged_at"))
    action, column, outcome = entry.get("action"), entry.get("column_name"), entry.get("outcome")
    if action == "save_to_record" and entry.get("action_id") is not None:
        source = names.get(entry["action_id"], "an action")
        what = f":violet-badge[AI generated] **{source}** result saved to **{column}**"
    elif action == "copilot":
        what = f"asked Copilot about **{column}**: {outcome}"
    elif action == "copilot_reply":
        into = "used as the cell's value" if outcome == "pinned" else "saved to"
        what = f":violet-badge[AI generated] **Copilot** reply {into} **{column}**"
    elif action == "save_to_record":
        what = f"saved a value into **{column}**"
    elif action == "action":
        what = f"ran action **{column}**: {outcome}"
    elif action == "edit":
        what = f"edited **{column}**"
    else:
        what = f"{action} **{column}**: {outcome}"
    return f"{when} · {who} · {what}"
