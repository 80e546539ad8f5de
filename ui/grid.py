"""The Grid page: one campaign as a paged spreadsheet read from DuckDB, each step cell showing its state, a cell
panel beside it, the column menu above it, and the live runs bar. While a run is going the page refreshes
itself (a Streamlit fragment polling the workspace), so progress and new values appear without a click.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pandas as pd
import streamlit as st

from engine import Campaign, CampaignSpec, Page, RunsheetError, Status, Workspace
from ui import cells, column_menu, layout, live, panel, reads, runs, session

log = logging.getLogger(__name__)

PAGE_SIZES = (25, 50, 100, 200)
# The grid is as tall as its page's rows, but no taller than the window below the menus: it fills the screen and
# scrolls inside (its header row stays). The box is sized here; the grid stretches to fill it.
GRID_TOP_PX = 350
GRID_CSS = (
    f"<style>div.st-key-grid-box{{height:min(CONTENTpx, calc(100vh - {GRID_TOP_PX}px)) !important;"
    f"min-height:min(CONTENTpx, calc(100vh - {GRID_TOP_PX}px)) !important;max-height:none !important;"
    "flex:0 0 auto !important;overflow:visible !important}</style>"
)
POLL_S = 1.0
# While a run this server just launched is going (a click), poll faster: its value shows within a quarter second
# of landing, not up to a second later (a click on the warm runner takes about the provider's latency).
CLICK_POLL_S = 0.25
CLICK_WINDOW_S = 10.0
CLICK_WAIT_S = 0.5
NUMERIC_TYPES = ("BIGINT", "INTEGER", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT", "SMALLINT", "TINYINT", "REAL")


def render() -> None:
    ws = reads.workspace()
    if ws is None:
        return
    with session.friendly():
        name = reads.campaign_name(ws)
        if name is None:
            session.show_notices()
            empty_workspace(ws)
            return
        polling = live.is_active(ws, name)

        @st.fragment(run_every=poll_interval(ws, name) if polling else None)
        def live_area() -> None:
            if not st.session_state.pop("_reads_current", False):
                # a click's run usually ends within this wait: its value is read as it lands, not a poll later
                runs.wait_for_clicks(ws.path.resolve(), name, CLICK_WAIT_S)
                reads.fresh()  # a rerun of the fragment alone is a new run (e.g. "the workspace is busy" said once)
            # here, not before the fragment: a click inside it (Run Again) reruns the fragment alone, and its run
            # can end before the fragment does (a warm runner), leaving no full run to show "Started"
            session.show_notices()
            with session.friendly():
                body(ws, name, polling)

        st.session_state["_reads_current"] = True  # this full run already started afresh
        live_area()


def poll_interval(ws: Workspace, name: str) -> float:
    """How often the grid looks for news: faster while a click of ours (a run of a few cells) has just started."""
    launched = runs.launches(ws.path.resolve(), name)
    recent = any(
        item.running and item.request.few_cells and time.time() - item.started < CLICK_WINDOW_S for item in launched
    )
    return CLICK_POLL_S if recent else POLL_S


def empty_workspace(ws: Workspace) -> None:
    st.title("No campaign yet")
    st.markdown(
        "A campaign is a table defined by a YAML spec. Apply one here (or with `runsheet apply SPEC`), "
        "then add records on the **Import / Export** page."
    )
    column_menu.apply_spec_form(ws)


def body(ws: Workspace, name: str, polling: bool) -> None:
    campaign = reads.campaign(ws, name)
    spec = reads.spec(ws, campaign)
    # Laid out top to bottom, drawn grid first: Streamlit sends each element as it is drawn.
    bar, head, tools = st.container(), st.container(), st.container()
    grid_area, panel_area = st.columns([3.4, 1.2], gap="small")
    size = int(st.session_state.get("page_size", 50))
    number = int(st.session_state.get(f"page-{name}", 1))
    page = read_page(ws, campaign, spec, (number - 1) * size, size)
    total = page.total_rows
    pages = max(1, math.ceil(total / size))
    if number > pages:  # the campaign shrank under this page number
        number = pages
        page = read_page(ws, campaign, spec, (number - 1) * size, size)
    offset = page.offset
    editing = bool(st.session_state.get("edit_mode"))
    drew_running = False  # clicked cells drawn running (their run may end before this run does)
    shown = layout.arrange(spec, layout.current(ws, name), editing=editing)
    with grid_area:
        # The page controls sit above the grid, clear of its right end, where the grid's own toolbar (search,
        # download, full screen) shows on hover: it then covers none of them, nor the menus above.
        pager = st.columns([1.3, 2.6, 1.1, 0.9], vertical_alignment="center")
        first = offset + 1 if page.row_ids else 0
        pager[0].caption(f"Rows {first:,}–{offset + len(page.row_ids):,} of {total:,}")
        with pager[1]:
            st.pagination(pages, key=f"page-{name}", max_visible_pages=7)
        with pager[2]:
            st.selectbox(
                "Rows per page",
                PAGE_SIZES,
                index=PAGE_SIZES.index(size),
                key="page_size",
                format_func=lambda n: f"{n} rows a page",
                label_visibility="collapsed",
            )
        if not page.row_ids:
            st.info("This campaign has no records yet: add some on the **Import / Export** page.")
        elif editing:
            editor(ws, campaign, spec, page, shown)
        else:
            drew_running = table(ws, campaign, spec, page, shown)
    with bar:
        active_now = live.runs_bar(ws, name)
    with head:
        header(ws, campaign, spec)
    with tools:
        column_menu.toolbar(ws, campaign, spec, page)
    with panel_area:
        panel.render(ws, campaign, spec)
    # A run started or ended: refresh the whole app (sidebar too) and start or stop polling. Only now, after the
    # buttons above were drawn: a click that arrived with this run is acted on, not lost to the rerun. A click's
    # run can end while this run draws (the warm runner takes about the provider's latency): its cell was drawn
    # running, so draw it again.
    if polling != active_now or (drew_running and not active_now):
        session.rerun_keeping_notices()


def header(ws: Workspace, campaign: Campaign, spec: CampaignSpec) -> None:
    st.subheader(campaign.name)
    counts = reads.status_counts(ws, campaign)
    totals: dict[str, int] = {}
    for found in counts.values():
        for status, count in found.items():
            totals[status] = totals.get(status, 0) + count
    summary = " · ".join(f"{count:,} {status.replace('_', ' ')}" for status, count in sorted(totals.items()))
    line = spec.description + ("  \n" if spec.description else "") + (f"Step cells: {summary}" if summary else "")
    if line:
        st.caption(line)


def read_page(ws: Workspace, campaign: Campaign, spec: CampaignSpec, offset: int, size: int) -> Page:
    """A page of the grid; a lazy pull first when a free auto cell on it is out of date (DESIGN rule 6). Read
    anew whenever the workspace changed, else shared by the reruns of this session."""

    def read() -> Page:
        page = campaign.page(offset, size)
        behind = {Status.EMPTY, Status.STALE, Status.QUEUED}
        free_auto = [c.name for c in spec.columns if c.free and c.run == "auto"]
        if any(row[c].status in behind for row in page.rows for c in free_auto):
            page = campaign.page(offset, size, compute=True)
        return page

    return reads.held(ws, ("page", campaign.name, offset, size), read)


def column_label(spec: CampaignSpec, name: str) -> str:
    column = spec.column(name)
    if column.is_input:
        return name
    icon = cells.KIND_ICONS.get(column.kind, "•")
    marks = " · manual" if column.run == "manual" else ""
    if not column.enabled:
        marks += " · paused"
    return f"{icon} {name}{marks}"


def column_help(spec: CampaignSpec, name: str) -> str:
    column = spec.column(name)
    if column.is_input:
        return f"input ({column.value_type}): select a cell to edit it, or switch on Edit inputs"
    deps = ", ".join(column.deps) or "nothing"
    return f"{column.kind} step, runs {column.run}; reads {deps}"


def is_numeric(spec: CampaignSpec, name: str) -> bool:
    column = spec.column(name)
    return column.is_input and column.value_type.upper().startswith(NUMERIC_TYPES)


def grid_frames(
    spec: CampaignSpec,
    page: Page,
    columns: list[str] | None = None,
    clicked: frozenset[tuple[int, str]] = frozenset(),
    *,
    editing: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The page's `columns` (default: all) as display values and, alongside, the CSS of each cell. An empty input
    is "" (the grid draws a null as a grey "None", like the text "None"), so number inputs are text here too,
    except while editing, where they must stay numbers; a step cell in `clicked` (a run asked for it, its process
    has not finished) shows running before the run has marked it so."""
    values: dict[str, list[Any]] = {}
    styles: dict[str, list[str]] = {}
    for name in page.columns if columns is None else columns:
        column = spec.column(name)
        manual = column.run == "manual"
        if column.is_input:
            raw = [row[name].value for row in page.rows]
            if not is_numeric(spec, name):
                values[name] = ["" if v is None else v for v in raw]
            else:
                values[name] = raw if editing else [number_text(v) for v in raw]
            styles[name] = [""] * len(page.rows)
        else:
            shown = [
                cells.running_now(row[name]) if (rid, name) in clicked else row[name]
                for rid, row in zip(page.row_ids, page.rows, strict=True)
            ]
            values[name] = [cells.grid_text(cell, manual) for cell in shown]
            styles[name] = [cells.STYLES[cells.style_key(cell, manual)] for cell in shown]
    index = pd.Index(page.row_ids, name="row")
    return pd.DataFrame(values, index=index), pd.DataFrame(styles, index=index)


def column_config(
    spec: CampaignSpec, columns: list[str], frozen: frozenset[str] = frozenset(), *, editing: bool = False
) -> dict[str, Any]:
    config: dict[str, Any] = {"row": st.column_config.NumberColumn("row", width="small", format="%d")}
    for name in columns:
        label, help_text = column_label(spec, name), column_help(spec, name)
        pinned = True if name in frozen else None
        if is_numeric(spec, name) and editing:
            config[name] = st.column_config.NumberColumn(label, help=help_text, pinned=pinned)
        elif is_numeric(spec, name):  # numbers as text (grid_frames), aligned as numbers
            config[name] = st.column_config.TextColumn(label, help=help_text, pinned=pinned, alignment="right")
        else:
            config[name] = st.column_config.TextColumn(label, help=help_text, pinned=pinned)
    return config


def table_height(rows: int) -> int:
    """Every row of the page (the browser caps the grid at the window's height: GRID_CSS)."""
    return 38 + 35 * max(rows, 1)


def grid_box(rows: int) -> Any:
    """The box the grid stretches to fill: as tall as its rows, at most the window below the menus (GRID_CSS)."""
    st.html(GRID_CSS.replace("CONTENT", str(table_height(rows))))
    return st.container(key="grid-box", height=table_height(rows), border=False)


def number_text(value: Any) -> str:
    """A number input's text in the grid: blank when null, whole numbers without a decimal point."""
    if _blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def styled(spec: CampaignSpec, frame: pd.DataFrame, css: pd.DataFrame) -> pd.DataFrame | Any:
    """The frame with its cell colours; the plain frame when no cell has one (a Styler doubles what is sent).
    The Styler's text of a number column is `number_text` (its own would be 40.000000)."""
    if not css.to_numpy().any():
        return frame
    styler = frame.style.apply(lambda _: css, axis=None)
    numbers = [n for n in frame.columns if is_numeric(spec, n) and frame[n].dtype.kind in "iuf"]
    return styler.format(number_text, subset=numbers) if numbers else styler


def clicked_cells(ws: Workspace, campaign: str) -> frozenset[tuple[int, str]]:
    """Cells this session asked to run whose run has not ended: they show running at once."""
    asked: dict[tuple[int, str], int] = st.session_state.get("_clicked", {})
    alive = {item.ident for item in runs.launches(ws.path.resolve(), campaign) if item.running}
    kept = {cell: ident for cell, ident in asked.items() if ident in alive}
    st.session_state["_clicked"] = kept
    return frozenset(kept)


def table(ws: Workspace, campaign: Campaign, spec: CampaignSpec, page: Page, shown: layout.Arrangement) -> bool:
    """The read-only grid: select a cell to open its panel, tick rows to run a column on them. Returns whether
    it drew cells of this session's clicks running."""
    clicked = clicked_cells(ws, campaign.name)
    frame, css = grid_frames(spec, page, shown.columns, clicked)
    key = f"grid-{campaign.name}-{page.offset}-{len(page.row_ids)}"
    with grid_box(len(page.row_ids)):
        st.dataframe(
            styled(spec, frame, css),
            key=key,
            on_select=lambda: _selected(key, page),
            selection_mode=["single-cell", "multi-row"],
            column_config=column_config(spec, shown.columns, shown.frozen),
            height="stretch",
            width="stretch",
        )
    return bool(clicked)


def _selected(key: str, page: Page) -> None:
    """Selection changed in the grid: remember the cell (by row id) and the ticked rows."""
    state = st.session_state.get(key)
    selection = getattr(state, "selection", None) or (state or {}).get("selection", {})
    picked = list(selection.get("cells") or [])
    if picked:
        position, column = picked[0]
        if 0 <= int(position) < len(page.row_ids):
            st.session_state["selected"] = (page.row_ids[int(position)], str(column))
    rows = [page.row_ids[int(p)] for p in selection.get("rows") or [] if 0 <= int(p) < len(page.row_ids)]
    st.session_state["selected_rows"] = rows


def editor(ws: Workspace, campaign: Campaign, spec: CampaignSpec, page: Page, shown: layout.Arrangement) -> None:
    """Edit mode: input cells are editable in place, step cells keep their state colours. An edit is written by
    the editor's callback, so the rerun it causes already shows the downstream cells it recomputed.

    The editor keeps its key from one edit to the next, so the browser updates the grid it has rather than
    building a new one; it still holds the edits typed into it, which is right while they match the workspace.
    When one does not (it failed, or someone changed that cell since), a new key drops them."""
    frame, css = grid_frames(spec, page, shown.columns, editing=True)
    base = f"editor-{campaign.name}-{page.offset}-{len(page.row_ids)}"
    key = f"{base}-{st.session_state.get('editor_version', 0)}"
    if not edits_match(st.session_state.get(key), frame):
        st.session_state["editor_version"] = st.session_state.get("editor_version", 0) + 1
        key = f"{base}-{st.session_state['editor_version']}"
    steps = [name for name in shown.columns if not spec.column(name).is_input]
    with grid_box(len(page.row_ids)):
        st.data_editor(
            styled(spec, frame, css),
            key=key,
            disabled=[*steps, "_index"],  # row ids are not editable either
            column_config=column_config(spec, shown.columns, shown.frozen, editing=True),
            height="stretch",
            width="stretch",
            on_change=_apply_edits,
            args=(ws, campaign, page, key),
        )
    for problem in st.session_state.pop("_edit_problems", []):
        st.error(problem, icon="⚠️")
    st.caption("Edit mode: type into input cells; step cells are computed (pin one from its panel).")


def edits_match(state: Any, frame: pd.DataFrame) -> bool:
    """Whether every edit the editor holds shows what the workspace now has in that cell."""
    for position, edits in ((state or {}).get("edited_rows") or {}).items():
        if not 0 <= int(position) < len(frame):
            return False
        for column, value in edits.items():
            if column not in frame.columns or not _same(frame[column].iloc[int(position)], value):
                return False
    return True


def _same(stored: Any, typed: Any) -> bool:
    if _blank(stored) or _blank(typed):
        return _blank(stored) and _blank(typed)
    return bool(stored == typed) or str(stored) == str(typed)


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return value == ""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _apply_edits(ws: Workspace, campaign: Campaign, page: Page, key: str) -> None:
    """Write the cells whose typed value differs from the page the editor showed (earlier edits it still holds
    landed already); say what failed in the rerun that follows."""
    changes: dict[Any, dict[str, Any]] = (st.session_state.get(key) or {}).get("edited_rows") or {}
    problems: list[str] = []
    for position, edits in changes.items():
        if not 0 <= int(position) < len(page.row_ids):
            continue
        row_id, row = page.row_ids[int(position)], page.rows[int(position)]
        for column, value in edits.items():
            if column not in row or _same(row[column].value, value):
                continue
            try:
                panel.save_value(ws, campaign, row_id, column, value)
            except RunsheetError as error:
                hint = f" — {session.hint_of(error)}" if session.hint_of(error) else ""
                problems.append(f"{column} on row {row_id} was not saved: {error.message}{hint}")
            except Exception as error:  # an engine bug: say so plainly, keep the page alive
                log.exception("editing %s on row %s failed", column, row_id)
                reason = f"something went wrong ({type(error).__name__})"
                problems.append(f"{column} on row {row_id} was not saved: {reason}")
    if problems:
        st.session_state["_edit_problems"] = problems
