"""Which columns the grid shows, in what order, and which stay frozen at its left: step columns first (the work),
then the inputs, which collapse with one switch; each person rearranges the grid with the column chooser
(hide, move, freeze), and their layout is kept in the workspace under their name (`Workspace.column_layout`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import streamlit as st

from engine import CampaignSpec, ColumnLayout, Workspace
from ui import reads, session


@dataclass(frozen=True)
class Arrangement:
    """The grid's columns as drawn: `columns` in order (hidden ones left out), `frozen` a subset kept at the left."""

    columns: list[str]
    frozen: frozenset[str]


def default_order(spec: CampaignSpec) -> list[str]:
    """Step columns first, in spec order, then the inputs: the first screen shows the work."""
    return [c.name for c in spec.columns if not c.is_input] + [c.name for c in spec.columns if c.is_input]


def full_order(spec: CampaignSpec, layout: ColumnLayout) -> list[str]:
    """Every column: the layout's order, then the columns it does not place (new since) in their default order."""
    placed = [n for n in layout.order if n in spec.names]
    return placed + [n for n in default_order(spec) if n not in placed]


def arrange(spec: CampaignSpec, layout: ColumnLayout, *, editing: bool = False) -> Arrangement:
    """The columns the grid draws. Collapsed inputs are hidden unless frozen (a frozen name keeps rows telling
    apart); while editing inputs they all show, first, as they are what is being edited."""
    hidden = set(layout.hidden)
    order = full_order(spec, layout)
    if editing:
        order = [n for n in order if spec.column(n).is_input] + [n for n in order if not spec.column(n).is_input]
    columns = []
    for name in order:
        column = spec.column(name)
        if column.is_input and editing:
            columns.append(name)
        elif name in hidden:
            continue
        elif column.is_input and layout.inputs_collapsed and name not in layout.frozen:
            continue
        else:
            columns.append(name)
    return Arrangement(columns, frozenset(n for n in layout.frozen if n in columns))


def moved(spec: CampaignSpec, layout: ColumnLayout, name: str, step: int) -> ColumnLayout:
    """The layout with `name` moved `step` places (negative: to the left) among every column."""
    order = full_order(spec, layout)
    at = order.index(name)
    to = min(max(at + step, 0), len(order) - 1)
    order.insert(to, order.pop(at))
    return replace(layout, order=tuple(order))


# ---- Streamlit ---------------------------------------------------------------------------------------------


def current(ws: Workspace, campaign: str) -> ColumnLayout:
    """The acting user's layout of `campaign`, read again only when the workspace changed."""
    return reads.kept(ws, ("layout", ws.actor, campaign), lambda: ws.column_layout(campaign))


def save(ws: Workspace, campaign: str, layout: ColumnLayout) -> None:
    with session.friendly("columns"):
        ws.save_column_layout(campaign, layout)


def chooser(ws: Workspace, spec: CampaignSpec) -> None:
    """The column chooser: collapse the inputs, hide, freeze and move columns. Each change is kept at once."""
    layout = current(ws, spec.name)
    # Keys carry the kept layout: after a change (or Reset) the widgets start from what was kept.
    tag = zlib.crc32(repr(layout).encode())
    order = full_order(spec, layout)
    st.markdown("**Columns**")
    st.caption("Kept for you in this workspace. Step columns come first; frozen ones stay at the left.")

    def changed(field: str, key: str) -> None:
        value = st.session_state.get(key)
        if field == "inputs_collapsed":
            save(ws, spec.name, replace(layout, inputs_collapsed=bool(value)))
        elif field == "hidden":
            save(ws, spec.name, replace(layout, hidden=tuple(value or ())))
        else:
            save(ws, spec.name, replace(layout, frozen=tuple(value or ())))

    key = f"layout-inputs-{tag}"
    st.toggle(
        "Collapse inputs", value=layout.inputs_collapsed, key=key, on_change=changed, args=("inputs_collapsed", key)
    )
    key = f"layout-hidden-{tag}"
    st.multiselect("Hidden", order, default=list(layout.hidden), key=key, on_change=changed, args=("hidden", key))
    key = f"layout-frozen-{tag}"
    st.multiselect(
        "Frozen at the left", order, default=list(layout.frozen), key=key, on_change=changed, args=("frozen", key)
    )
    which = st.selectbox("Move", order, key="layout-move")
    left, right = st.columns(2)
    if left.button("← Earlier", key="layout-earlier", width="stretch") and which:
        save(ws, spec.name, moved(spec, layout, which, -1))
        st.rerun()
    if right.button("Later →", key="layout-later", width="stretch") and which:
        save(ws, spec.name, moved(spec, layout, which, 1))
        st.rerun()
    if st.button("Reset to the default layout", key="layout-reset", disabled=layout == ColumnLayout()):
        save(ws, spec.name, ColumnLayout())
        st.rerun()
