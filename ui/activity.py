"""The Activity page: runs (live, with progress and Stop, then their outcome, cost and who asked) and the log
of every cell execution, newest first."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from engine import Workspace
from ui import reads, runs, session

RUN_FIELDS = (
    "run_id",
    "campaign",
    "status",
    "actor",
    "trigger",
    "started_at",
    "finished_at",
    "total",
    "done",
    "credits",
    "tokens",
    "cache_hits",
    "counts",
)


def render() -> None:
    st.title("Activity")
    ws = session.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        going = reads.batch_runs(ws)

        @st.fragment(run_every=1.0 if going else None)
        def live() -> None:
            reads.fresh()
            with session.friendly():
                now = reads.batch_runs(ws)
                if going and not now:
                    st.rerun()
                st.subheader("Running now")
                if not now:
                    st.caption("Nothing is running.")
                for run in now:
                    fraction, summary = runs.progress(run)
                    left, right = st.columns([6, 1], vertical_alignment="center")
                    left.progress(fraction, text=f"Run {run['run_id']} · {run.get('actor')} · {summary}")
                    if right.button("■ Stop", key=f"activity-stop-{run['run_id']}"):
                        session.notify(runs.stop(ws, run=run), ":material/stop_circle:")
                        st.rerun()
                st.subheader("Runs")
                st.dataframe(runs_frame(runs.recent_runs(ws, 100)), hide_index=True, width="stretch")

        live()
        spec_changes(ws, st.session_state.get("campaign"))
        st.subheader("Cell log")
        log = pd.DataFrame(ws.activity(500))
        if log.empty:
            st.caption("No activity yet.")
            return
        outcomes = sorted(str(o) for o in log["outcome"].dropna().unique()) if "outcome" in log else []
        picked = st.multiselect("Outcomes", outcomes, key="activity_outcomes")
        if picked:
            log = log[log["outcome"].isin(picked)]
        st.dataframe(log, hide_index=True, width="stretch")


def spec_changes(ws: Workspace, campaign: str | None) -> None:
    """The chosen campaign's spec changes, newest first: when, who, where from (file, ui, api...) and the diff."""
    if not campaign:
        return
    changes = ws.spec_history(campaign, 20)
    with st.expander(f"Spec changes of {campaign} ({len(changes)})"):
        if not changes:
            st.caption("No spec change recorded yet.")
        for change in changes:
            when = f"{change['changed_at']:%Y-%m-%d %H:%M:%S}" if change["changed_at"] else "?"
            st.markdown(f"**#{change['change_id']}** {when} · {change['actor'] or 'unknown'} · via {change['origin']}")
            st.code(change["diff"], language="diff")


def runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = []
    for run in rows:
        entry = {field: run.get(field) for field in RUN_FIELDS if field in run or field == "campaign"}
        if isinstance(entry.get("counts"), dict):
            entry["counts"] = json.dumps(entry["counts"])
        request = run.get("request")
        entry["what"] = ", ".join((request or {}).get("columns") or []) if isinstance(request, dict) else ""
        table.append(entry)
    return pd.DataFrame(table)
