"""The SQL page: read-only SQL over the workspace in the engine's sandbox (the campaign as a wide table, the
long `cells` table with status, error, cost and timing, `runs` and `activity`), results, and their export."""

from __future__ import annotations

import pandas as pd
import polars as pl
import streamlit as st

from ui import features, reads, session

ROW_LIMIT = 10_000


def default_query(campaign: str | None) -> str:
    if campaign:
        return (
            "SELECT status, count(*) AS cells\nFROM cells\n"
            f"WHERE campaign = '{campaign}'\nGROUP BY status\nORDER BY cells DESC"
        )
    return "SELECT * FROM runs ORDER BY run_id DESC LIMIT 20"


def render() -> None:
    st.title("SQL")
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        name = reads.campaign_name(ws)
        st.caption(
            "Read-only SQL in a sandbox: each campaign as a table of values, `cells` (one row per cell with status, "
            "error, cost and timing), `runs` and `activity`. Nothing here can change the workspace."
        )
        sql = st.text_area("Query", value=default_query(name), height=150, key="sql_text")
        if st.button("Run query", type="primary", key="sql_run"):
            st.session_state.pop("sql_result", None)
            with session.friendly("query"):
                st.session_state["sql_result"] = (sql, to_pandas(features.query(ws, sql)))
                st.session_state.pop("sql_csv", None)
        stored = st.session_state.get("sql_result")
        if stored:
            query, result = stored
            shown = result.head(ROW_LIMIT)
            more = f" (showing the first {ROW_LIMIT:,})" if len(result) > ROW_LIMIT else ""
            st.caption(f"{len(result):,} row(s){more}")
            st.dataframe(shown, hide_index=True, width="stretch")
            if st.button("Export the result as CSV", key="sql_export"):
                with session.friendly("export"):
                    st.session_state["sql_csv"] = features.query_csv(ws, query)
            if st.session_state.get("sql_csv"):
                st.download_button(
                    "Download query.csv",
                    st.session_state["sql_csv"],
                    file_name="query.csv",
                    mime="text/csv",
                    key="sql_download",
                    type="primary",
                )


def to_pandas(result: pl.DataFrame) -> pd.DataFrame:
    return result.to_pandas()
