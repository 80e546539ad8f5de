"""The toolbar above the grid: the column menu (run a column after its estimate, with a confirmation above the
workspace's threshold; switch auto/manual; pause; edit the step with a preview on a sample row), adding a
column, the dependency graph, the builder chat (Build / Refine with chat: ui/builder_panel.py), the edit-mode
switch, and applying a spec to an empty workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from engine import Campaign, CampaignSpec, Page, Workspace
from ui import builder_panel, features, layout, reads, runs, session, specs

ROWS_SCOPES = {"all": "All rows", "ticked": "Selected rows", "first": "First N rows"}
CELL_SCOPES = {
    "pending": "Not run yet or stale",
    "empty": "Not run yet only",
    "stale": "Stale only",
    "again": "Every cell: Run Again (bypasses the cache)",
    "errors": "Retry failed cells (those in error)",
}
KINDS = ("formula", "ai", "python", "http", "export", "probe", "input")


def toolbar(ws: Workspace, campaign: Campaign, spec: CampaignSpec, page: Page) -> None:
    steps = [c.name for c in spec.columns if not c.is_input]
    follow_selection(steps)
    cols = st.columns([2.2, 1, 1, 1, 1.1, 1, 1, 1, 1.3], vertical_alignment="bottom")
    with cols[0]:
        column = st.selectbox("Column", steps, key="menu_column", placeholder="no step columns") if steps else None
    # Menus draw their content only while open (a closed menu costs the page nothing).
    if column is not None:
        with cols[1], menu("Run", ":material/play_arrow:", "menu_run") as open_:
            if open_:
                run_form(ws, campaign, spec, column)
        with cols[2], menu("Mode", ":material/tune:", "menu_mode") as open_:
            if open_:
                mode_form(ws, campaign, spec, column)
        with cols[3], menu("Edit", ":material/edit:", "menu_edit") as open_:
            if open_:
                edit_form(ws, campaign, spec, column, page)
    with cols[4], menu("Columns", ":material/view_column:", "menu_columns") as open_:
        if open_:
            layout.chooser(ws, spec)
    with cols[5], menu("Column", ":material/add:", "menu_add") as open_:
        if open_:
            add_form(ws, spec)
    with cols[6], menu("Graph", ":material/account_tree:", "menu_graph") as open_:
        if open_:
            st.graphviz_chart(specs.dependency_dot(spec, column))
    with cols[7], menu("Chat", ":material/forum:", "menu_chat") as open_:
        if open_:
            builder_panel.chat_menu(ws, spec, column)
    with cols[8]:
        st.toggle("Edit inputs", key="edit_mode", help="Type into input cells in the grid itself")
    builder_panel.on_grid(ws, spec, lambda source, message: apply(ws, source, message))


def follow_selection(steps: list[str]) -> None:
    """A newly selected cell of a step column becomes the menus' column, and the Run menu's rows the selected
    ones: the Run menu acts on what was clicked."""
    selected = st.session_state.get("selected")
    if not selected or selected == st.session_state.get("_menu_follows"):
        return
    st.session_state["_menu_follows"] = selected
    if selected[1] in steps:
        st.session_state["menu_column"] = selected[1]
        st.session_state["run_rows"] = "ticked"


def selected_rows() -> list[int]:
    """The rows the Run menu's "Selected rows" means: the ticked ones, else the selected cell's row."""
    ticked = [int(r) for r in st.session_state.get("selected_rows") or []]
    selected = st.session_state.get("selected")
    if not ticked and selected:
        return [int(selected[0])]
    return ticked


@contextmanager
def menu(label: str, icon: str, key: str) -> Iterator[bool]:
    """A popover that reruns the page when opened or closed; yields whether it is open."""
    with st.popover(label, icon=icon, width="stretch", key=key, on_change="rerun") as popover:
        yield bool(getattr(popover, "open", True))


# ---- run a column ------------------------------------------------------------------------------------------


def run_form(ws: Workspace, campaign: Campaign, spec: CampaignSpec, column: str) -> None:
    st.markdown(f"**Run {column}**")
    rows_scope = st.radio("Rows", list(ROWS_SCOPES), format_func=ROWS_SCOPES.get, key="run_rows", horizontal=True)
    first_n = 10
    if rows_scope == "first":
        first_n = int(st.number_input("N", min_value=1, max_value=100_000, value=10, key="run_first_n"))
    cells_scope = st.radio("Cells", list(CELL_SCOPES), format_func=CELL_SCOPES.get, key="run_cells")
    ticked = selected_rows()
    if rows_scope == "ticked" and not ticked:
        st.caption("Select a cell or tick rows in the grid first (the boxes left of the row numbers).")
        return
    if rows_scope == "ticked":
        st.caption(f"Rows {runs.compress_rows(ticked)}")
    limit = first_n if rows_scope == "first" else None
    rows = None if limit is not None else _rows_for(campaign, rows_scope, ticked, first_n)
    request = runs.RunRequest(
        campaign.name,
        (column,),
        None if rows is None else tuple(rows),
        force=cells_scope == "again",
        only_stale=cells_scope == "stale",
        only_empty=cells_scope == "empty",
        limit=limit,
        errors=cells_scope == "errors",
    )
    wanted = request
    if st.button("Estimate", key="run_estimate"):
        with session.friendly("estimate"):
            st.session_state["estimate"] = (wanted, _estimate(campaign, request))
    stored = st.session_state.get("estimate")
    if not stored or stored[0] != wanted:
        st.caption("Estimate first: calls, cache hits, credits and downstream auto-run are shown before anything runs.")
        return
    estimate = stored[1]
    threshold = features.confirm_threshold(ws)
    show_estimate(estimate)
    credits = float(estimate.get("credits") or 0)
    confirmed = True
    if threshold is not None and credits > threshold:
        st.warning(f"This would spend about {credits:g} credits, above the workspace's threshold of {threshold:g}.")
        confirmed = st.checkbox(f"Yes, spend up to {credits:g} credits", key="run_confirm")
    if st.button(f"Run {column}", type="primary", key="run_go", disabled=not confirmed):
        st.session_state.pop("estimate", None)
        with session.friendly("run"):
            runs.launch(ws.path.resolve(), request, actor=session.actor(), ws=ws)
            session.notify(f"Started: {request.describe()}", ":material/play_arrow:")
            st.rerun()


def _rows_for(campaign: Campaign, scope: str, ticked: list[int], first_n: int) -> list[int] | None:
    if scope == "ticked":
        return sorted(ticked)
    if scope == "first":
        return list(campaign.page(0, first_n, columns=[]).row_ids)
    return None


def _estimate(campaign: Campaign, request: runs.RunRequest) -> dict[str, Any]:
    return features.estimate(campaign, request.selection)


def show_estimate(estimate: dict[str, Any]) -> None:
    metrics = st.columns(4)
    for slot, (label, key) in zip(
        metrics,
        (("calls", "calls"), ("cache hits", "cache_hits"), ("credits", "credits"), ("rows", "rows")),
        strict=True,
    ):
        value = estimate.get(key)
        slot.metric(label, "—" if value is None else f"{value:,.0f}" if isinstance(value, int | float) else str(value))
    for key, said in (("retries", "Retries"), ("errors", "Leaves in error (retry them with Retry failed cells)")):
        failed = estimate.get(key) or {}
        if failed:
            codes = ", ".join(f"{code} {n}" for code, n in failed.items())
            st.caption(f"{said}: {sum(failed.values())} cell(s) ({codes})")
    table = estimate["columns"]
    if table:
        st.caption("Including downstream auto-run columns:")
        st.dataframe(table, hide_index=True, width="stretch")


# ---- mode, pause, edit, add ----------------------------------------------------------------------------------


def mode_form(ws: Workspace, campaign: Campaign, spec: CampaignSpec, column: str) -> None:
    current = spec.column(column)
    st.markdown(f"**{column}** ({current.kind})")
    if column in ws.pause_state(campaign.name).columns:
        # Pausing is an operating switch (engine/store/pause.py), not a spec change: cells keep what they hold.
        st.caption(
            "Paused: this step spends nothing and its cells keep their values until you resume it "
            "(a new paid step starts paused; Run shows its estimate)."
        )
        if st.button("▶ Resume this step", key="mode_start", type="primary"):
            with session.friendly("resume"):
                ws.resume(campaign.name, column, run=False)
                reads.forget_cached()
                session.notify(f"{column} resumed: run it from the Run menu, or it runs as its inputs change")
                st.rerun()
    elif not current.is_input and st.button(
        "Pause this step",
        icon=":material/pause:",
        key="mode_pause",
        help="A paused step runs nothing and keeps its values; its empty cells show paused until you resume it",
    ):
        with session.friendly("pause"):
            ws.pause(campaign.name, column)
            reads.forget_cached()
            session.notify(f"{column} paused: its values are kept; resume it here or with `runsheet resume`")
            st.rerun()
    mode = st.radio(
        "Runs",
        ["auto", "manual"],
        index=0 if current.run == "auto" else 1,
        key=f"mode-{column}",
        horizontal=True,
        help="auto: computes as soon as its inputs change (auto-pilot). manual: waits for Click to Run (co-pilot).",
    )
    if mode != current.run and st.button(f"Switch to {mode}", key="mode_apply", type="primary"):
        apply(ws, specs.with_column(spec, column, {"run": mode}), f"{column} now runs {mode}")
    if not current.enabled:
        st.caption("Disabled in the spec (`enabled: false`): its cells say action_disabled until the spec enables it.")


def edit_form(ws: Workspace, campaign: Campaign, spec: CampaignSpec, column: str, page: Page) -> None:
    current = spec.column(column)
    entry = specs.column_entry(spec, column)
    fields = [f for f in specs.EDITABLE_FIELDS if f in type(current.options).model_fields]
    st.markdown(f"**Edit {column}** ({current.kind})")
    changes: dict[str, Any] = {}
    for field in fields:
        value = entry.get(field)
        key = f"edit-{column}-{field}"
        if field in ("prompt", "expression"):
            changes[field] = st.text_area(field, value=value or "", key=key, height=110)
        elif field == "required":
            text = st.text_input("required (comma-separated)", value=", ".join(value or []), key=key)
            changes[field] = [c.strip() for c in text.split(",") if c.strip()]
        else:
            changes[field] = st.text_input(field, value="" if value is None else str(value), key=key)
    edited = specs.with_column(spec, column, changes)
    preview(ws, campaign, edited, column, page)
    if st.button("Apply the change", type="primary", key=f"edit-apply-{column}"):
        apply(ws, edited, f"{column} updated: its cells and their downstream are stale")


def preview(ws: Workspace, campaign: Campaign, source: dict[str, Any], column: str, page: Page) -> None:
    """Validate the edited spec and show what the step would see on a sample row."""
    from engine import parse_spec

    sample = (st.session_state.get("selected") or (page.row_ids[0] if page.row_ids else None, None))[0]
    with session.friendly("preview"):
        edited = parse_spec(source)
        st.caption(f"✓ valid · reads {', '.join(edited.column(column).deps) or 'nothing'}")
        entry = next(c for c in source["columns"] if c.get("name") == column)
        if sample is None or "prompt" not in entry:
            return
        import jinja2

        deps = [d for d in edited.column(column).deps if d in campaign.spec.names]
        row = campaign.page(rows=[int(sample)], columns=deps).rows[0]
        values: dict[str, Any] = {name: row[name].value for name in deps}
        values["context"] = features.context(ws)
        rendered = jinja2.Environment(undefined=jinja2.ChainableUndefined).from_string(entry["prompt"]).render(values)
        st.caption(f"Prompt on row {sample}:")
        st.code(rendered, language=None, wrap_lines=True)


def add_form(ws: Workspace, spec: CampaignSpec) -> None:
    st.markdown("**Add a column**")
    name = st.text_input("Name", key="add_name", placeholder="e.g. opener")
    kind = st.selectbox("Kind", KINDS, key="add_kind")
    template = specs.KIND_TEMPLATES.get(kind, "")
    options = st.text_area("Options (YAML)", value=template, key=f"add_options_{kind}", height=130)
    after = st.selectbox("After", spec.names, index=len(spec.names) - 1, key="add_after")
    if st.button("Add column", type="primary", key="add_go", disabled=not name):
        with session.friendly("add column"):
            try:
                entry = {"name": name.strip(), "kind": kind, **specs.parse_options(options)}
            except ValueError as err:
                st.error(str(err))
                return
            apply(ws, specs.with_new_column(spec, entry, after), f"added {name}")


def apply(ws: Workspace, source: dict[str, Any], message: str) -> None:
    with session.friendly("spec"):
        result = ws.apply(specs.dump(source), actor=session.actor(), origin="ui")
        reads.forget_cached()
        st.session_state.pop("estimate", None)
        for column in result.paused:  # nothing paid starts without consent
            message += f" · {column} is a new paid step: paused until you start it (Mode menu)"
        session.notify(message)
        st.rerun()


def apply_spec_form(ws: Workspace) -> None:
    """Create a campaign from a spec: a sample from campaigns/, an uploaded YAML file, or pasted YAML."""
    samples = sorted({*Path.cwd().glob("campaigns/*.yaml"), *Path(runs.ROOT).glob("campaigns/*.yaml")})
    tabs = st.tabs(["Sample spec", "Upload", "Paste"])
    with tabs[0]:
        if samples:
            choice = st.selectbox("Spec", samples, format_func=lambda p: p.name, key="sample_spec")
            if st.button("Apply", type="primary", key="apply_sample"):
                _apply_text(ws, choice.read_text(encoding="utf-8"))
        else:
            st.caption("No campaigns/*.yaml here.")
    with tabs[1]:
        upload = st.file_uploader("Spec (YAML)", type=["yaml", "yml"], key="spec_upload")
        if upload is not None and st.button("Apply", type="primary", key="apply_upload"):
            _apply_text(ws, upload.getvalue().decode("utf-8"))
    with tabs[2]:
        text = st.text_area("Spec (YAML)", key="spec_text", height=200)
        if st.button("Apply", type="primary", key="apply_text", disabled=not text.strip()):
            _apply_text(ws, text)


def _apply_text(ws: Workspace, text: str) -> None:
    with session.friendly("spec"):
        result = ws.apply(text if "\n" in text else text + "\n", actor=session.actor(), origin="ui")
        session.choose_campaign(result.campaign)
        session.notify(f"campaign {result.campaign} ready")
        st.rerun()
