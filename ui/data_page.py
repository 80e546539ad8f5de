"""The Import / Export page: load CSV or Parquet records into a campaign (their free auto-run steps compute at
once, paid ones are queued and can be run from here) and download a campaign's values as CSV or Parquet."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from engine import Campaign, ImportReport, Workspace
from ui import column_menu, features, reads, runs, session

APPEND = "(append as new rows)"


def render() -> None:
    st.title("Import / Export")
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        name = reads.campaign_name(ws)
        if name is None:
            st.info("Create a campaign first: apply its spec.")
            column_menu.apply_spec_form(ws)
            return
        campaign = session.open_campaign(ws, name)
        left, right = st.columns(2, gap="large")
        with left:
            import_form(ws, campaign)
        with right:
            export_form(campaign)


def import_form(ws: Workspace, campaign: Campaign) -> None:
    st.subheader(f"Import into {campaign.name}")
    spec = campaign.spec
    inputs = [c.name for c in spec.columns if c.is_input]
    st.caption(f"The file's columns must be input columns: {', '.join(inputs)}.")
    upload = st.file_uploader("CSV or Parquet file", type=["csv", "tsv", "parquet"], key="import_file")
    key_column = st.selectbox(
        "Match existing records on (upsert)",
        [APPEND, *inputs],
        key="import_key",
        help="Records whose value in this column matches an existing row update it; only changed inputs recompute.",
    )
    if upload is not None and st.button("Import", type="primary", key="import_go"):
        with session.friendly("import"), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(upload.name).name
            path.write_bytes(upload.getvalue())
            result = campaign.import_file(path, key=None if key_column == APPEND else key_column)
            session.notify(import_summary(campaign.name, result))
            st.rerun()
    queued = sum(found.get("queued", 0) + found.get("empty", 0) for column, found in _paid_auto_counts(campaign))
    if queued:
        st.info(f"{queued:,} auto-run cells of paid steps are waiting to run.")
        if st.button("Run them now", key="import_run_queued"):
            with session.friendly("run"):
                runs.launch(ws.path.resolve(), runs.RunRequest(campaign.name), actor=session.actor(), ws=ws)
                session.notify("Started the auto-run steps", ":material/play_arrow:")
                st.rerun()


def import_summary(name: str, result: ImportReport) -> str:
    """One line saying what an import did (new, updated, unchanged and rejected records)."""
    parts = [f"{len(result.inserted)} new"]
    parts += [
        f"{n} {label}"
        for label, n in [("updated", result.updated), ("unchanged", result.unchanged), ("rejected", result.rejected)]
        if n
    ]
    return f"Imported into {name}: " + ", ".join(parts)


def _paid_auto_counts(campaign: Campaign) -> list[tuple[str, dict[str, int]]]:
    spec = campaign.spec
    paid_auto = {c.name for c in spec.columns if not c.is_input and c.run == "auto" and not c.free}
    return [(c, found) for c, found in campaign.status_counts().items() if c in paid_auto]


def export_form(campaign: Campaign) -> None:
    st.subheader(f"Export {campaign.name}")
    fmt = st.radio("Format", ["csv", "parquet"], format_func=str.upper, horizontal=True, key="export_format")
    with_state = st.checkbox("With each step's status, error and credits", key="export_state")
    st.caption(f"{campaign.row_count():,} rows, every column's current value.")
    if st.button("Prepare the file", key="export_prepare"):
        with session.friendly("export"):
            st.session_state["export_blob"] = (
                campaign.name,
                fmt,
                with_state,
                features.export_campaign(campaign, fmt, with_state),
            )
    blob = st.session_state.get("export_blob")
    if blob and blob[:3] == (campaign.name, fmt, with_state):
        st.download_button(
            f"Download {campaign.name}.{fmt}",
            blob[3],
            file_name=f"{campaign.name}.{fmt}",
            mime="text/csv" if fmt == "csv" else "application/octet-stream",
            key="export_download",
            type="primary",
        )
