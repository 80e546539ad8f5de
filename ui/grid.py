"""The Grid page: one campaign as a paged spreadsheet read from DuckDB, each step cell showing its state, a cell
panel beside it, the column menu above it, and the live runs bar. While a run is going the page refreshes
itself (a Streamlit fragment polling the workspace), so progress and new values appear without a click.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from engine import Campaign, CampaignSpec, Page, Status, Workspace
from ui import cells, column_menu, live, panel, reads, session

PAGE_SIZES = (25, 50, 100, 200)
POLL_S = 1.0
FREE_KINDS = frozenset({"formula", "python"})
NUMERIC_TYPES = ("BIGINT", "INTEGER", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT", "SMALLINT", "TINYINT", "REAL")


def render() -> None:
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        name = session.campaign_name(ws)
        if name is None:
            empty_workspace(ws)
            return
        polling = live.is_active(ws, name)

        @st.fragment(run_every=POLL_S if polling else None)
        def live_area() -> None:
            if not st.session_state.pop("_reads_current", False):
                reads.fresh()  # a rerun of the fragment alone: read the workspace anew
            with session.friendly():
                body(ws, name, polling)

        st.session_state["_reads_current"] = True  # this full run's reads are still current
        live_area()


def empty_workspace(ws: Workspace) -> None:
    st.title("No campaign yet")
    st.markdown(
        "A campaign is a table defined by a YAML spec. Apply one here (or with `runsheet apply SPEC`), "
        "then add records on the **Import / Export** page."
    )
    column_menu.apply_spec_form(ws)


def body(ws: Workspace, name: str, polling: bool) -> None:
    campaign = session.open_campaign(ws, name)
    spec = reads.spec(ws, campaign)
    # Laid out top to bottom, drawn grid first: Streamlit sends each element as it is drawn.
    bar, head, tools = st.container(), st.container(), st.container()
    grid_area, panel_area = st.columns([3.4, 1.2], gap="small")
    size = int(st.session_state.get("page_size", 50))
    number = int(st.session_state.get(f"page-{name}", 1))
    page = read_page(campaign, spec, (number - 1) * size, size)
    total = page.total_rows
    pages = max(1, math.ceil(total / size))
    if number > pages:  # the campaign shrank under this page number
        number = pages
        page = read_page(campaign, spec, (number - 1) * size, size)
    offset = page.offset
    with grid_area:
        if not page.row_ids:
            st.info("This campaign has no records yet: add some on the **Import / Export** page.")
        elif st.session_state.get("edit_mode"):
            editor(ws, campaign, spec, page)
        else:
            table(campaign, spec, page)
        footer = st.columns([2, 1])
        with footer[0]:
            st.pagination(pages, key=f"page-{name}", max_visible_pages=7)
        with footer[1]:
            st.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(size), key="page_size")
        first = offset + 1 if page.row_ids else 0
        st.caption(f"Rows {first:,}–{offset + len(page.row_ids):,} of {total:,}")
    with bar:
        active_now = live.runs_bar(ws, name)
    if polling != active_now:
        st.rerun()  # a run started or ended: refresh the whole app (sidebar too) and start or stop polling
    with head:
        header(ws, campaign, spec)
    with tools:
        column_menu.toolbar(ws, campaign, spec, page)
    with panel_area:
        panel.render(ws, campaign, spec)


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


def read_page(campaign: Campaign, spec: CampaignSpec, offset: int, size: int) -> Page:
    """A page of the grid; a lazy pull first when a free auto cell on it is out of date (DESIGN rule 6)."""
    page = campaign.page(offset, size)
    behind = {Status.EMPTY, Status.STALE, Status.QUEUED}
    free_auto = [c.name for c in spec.columns if c.kind in FREE_KINDS and c.run == "auto"]
    if any(row[c].status in behind for row in page.rows for c in free_auto):
        page = campaign.page(offset, size, compute=True)
    return page


def column_label(spec: CampaignSpec, name: str) -> str:
    column = spec.column(name)
    if column.is_input:
        return name
    icon = cells.KIND_ICONS.get(column.kind, "•")
    marks = " · manual" if column.run == "manual" else ""
    if getattr(column.options, "enabled", True) is False:
        marks += " · paused"
    return f"{icon} {name}{marks}"


def column_help(spec: CampaignSpec, name: str) -> str:
    column = spec.column(name)
    if column.is_input:
        return f"input ({column.value_type}): select a cell to edit it, or switch on Edit inputs"
    deps = ", ".join(column.deps) or "nothing"
    return f"{column.kind} step, runs {column.run}; reads {deps}"


def grid_frames(spec: CampaignSpec, page: Page) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The page as display values and, alongside, the CSS of each cell."""
    values: dict[str, list[Any]] = {}
    styles: dict[str, list[str]] = {}
    for name in page.columns:
        column = spec.column(name)
        manual = column.run == "manual"
        if column.is_input:
            values[name] = [row[name].value for row in page.rows]
            styles[name] = [""] * len(page.rows)
        else:
            values[name] = [cells.grid_text(row[name], manual) for row in page.rows]
            styles[name] = [cells.STYLES[cells.style_key(row[name], manual)] for row in page.rows]
    index = pd.Index(page.row_ids, name="row")
    return pd.DataFrame(values, index=index), pd.DataFrame(styles, index=index)


def column_config(spec: CampaignSpec, page: Page) -> dict[str, Any]:
    config: dict[str, Any] = {"row": st.column_config.NumberColumn("row", width="small", format="%d")}
    for name in page.columns:
        label, help_text = column_label(spec, name), column_help(spec, name)
        column = spec.column(name)
        if column.is_input and column.value_type.upper().startswith(NUMERIC_TYPES):
            config[name] = st.column_config.NumberColumn(label, help=help_text)
        else:
            config[name] = st.column_config.TextColumn(label, help=help_text)
    return config


def table_height(rows: int) -> int:
    return 38 + 35 * min(max(rows, 1), 16)


def table(campaign: Campaign, spec: CampaignSpec, page: Page) -> None:
    """The read-only grid: select a cell to open its panel, tick rows to run a column on them."""
    frame, css = grid_frames(spec, page)
    styled = frame.style.apply(lambda _: css, axis=None)
    key = f"grid-{campaign.name}-{page.offset}-{len(page.row_ids)}"
    st.dataframe(
        styled,
        key=key,
        on_select=lambda: _selected(key, page),
        selection_mode=["single-cell", "multi-row"],
        column_config=column_config(spec, page),
        height=table_height(len(page.row_ids)),
        width="stretch",
    )


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


def editor(ws: Workspace, campaign: Campaign, spec: CampaignSpec, page: Page) -> None:
    """Edit mode: input cells are editable in place; downstream cells recompute when an edit lands."""
    frame, _ = grid_frames(spec, page)
    version = st.session_state.get("editor_version", 0)
    key = f"editor-{campaign.name}-{page.offset}-{version}"
    steps = [name for name in page.columns if not spec.column(name).is_input]
    st.data_editor(
        frame,
        key=key,
        disabled=[*steps, "_index"],  # row ids are not editable either
        column_config=column_config(spec, page),
        height=table_height(len(page.row_ids)),
        width="stretch",
        on_change=_apply_edits,
        args=(ws, campaign, page, key),
    )
    st.caption("Edit mode: type into input cells; step cells are computed (pin one from its panel).")


def _apply_edits(ws: Workspace, campaign: Campaign, page: Page, key: str) -> None:
    changes: dict[int, dict[str, Any]] = (st.session_state.get(key) or {}).get("edited_rows", {})
    for position, edits in changes.items():
        row_id = page.row_ids[int(position)]
        for column, value in edits.items():
            panel.save_value(ws, campaign, row_id, column, value)
    st.session_state["editor_version"] = st.session_state.get("editor_version", 0) + 1
