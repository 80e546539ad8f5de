"""The live runs bar: every run going on the campaign (from any tab, any process), its progress, and Stop;
runs launched here that have not written their run row yet; runs that failed, said once in plain words.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import Workspace
from ui import reads, runs, session


def is_active(ws: Workspace, campaign: str) -> bool:
    """Whether the page should keep polling: a batch run or a launch of ours is going on this campaign."""
    path = ws.path.resolve()
    active = _batch_runs(ws, campaign)
    return bool(active) or bool(runs.starting(path, campaign, active)) or runs.clicks_going(path, campaign)


def _batch_runs(ws: Workspace, campaign: str) -> list[dict[str, Any]]:
    return reads.batch_runs(ws, campaign)


def runs_bar(ws: Workspace, campaign: str) -> bool:
    """Draw the bar; returns whether anything is still going."""
    path = ws.path.resolve()
    active = _batch_runs(ws, campaign)
    launching = runs.starting(path, campaign, active)
    for run in active:
        fraction, summary = runs.progress(run)
        columns = ", ".join(sorted(runs.run_columns(run))) or "auto-run steps"
        left, right = st.columns([6, 1], vertical_alignment="center")
        with left:
            st.progress(
                fraction,
                text=f"⟳ Run {run['run_id']} · {columns} · by {run.get('actor') or '?'} · {summary}",
            )
        with right:
            if st.button("■ Stop", key=f"stop-{run['run_id']}", width="stretch"):
                with session.friendly("stop"):
                    session.notify(runs.stop(ws, run=run), ":material/stop_circle:")
                    st.rerun()
    for item in launching:
        left, right = st.columns([6, 1], vertical_alignment="center")
        with left:
            st.progress(0.0, text=f"⟳ Starting a run of {item.request.describe()} …")
        with right:
            if st.button("■ Stop", key=f"stop-launch-{item.ident}", width="stretch"):
                session.notify(runs.stop(ws, launch_item=item), ":material/stop_circle:")
                st.rerun()
    for item in runs.failures(path, campaign):
        left, right = st.columns([6, 1], vertical_alignment="center")
        with left:
            st.error(f"The run of {item.request.describe()} failed: {item.failure()}", icon="⚠️")
        with right:
            if st.button("Dismiss", key=f"dismiss-{item.ident}", width="stretch"):
                runs.dismiss(item)
                st.rerun()
    for run in _failed_runs(ws, campaign):
        left, right = st.columns([6, 1], vertical_alignment="center")
        with left:
            reason = run.get("message") or "see the Activity page for the cells that failed"
            st.error(f"Run {run['run_id']} {run.get('status')}: {reason}", icon="⚠️")
        with right:
            if st.button("Dismiss", key=f"dismiss-run-{run['run_id']}", width="stretch"):
                st.session_state.setdefault("_failed_dismissed", set()).add(int(run["run_id"]))
                st.rerun()
    return bool(active) or bool(launching) or runs.clicks_going(path, campaign)


def _failed_runs(ws: Workspace, campaign: str) -> list[dict[str, Any]]:
    """Failed runs among this campaign's latest ones that this session has not dismissed."""
    dismissed: set[int] = st.session_state.get("_failed_dismissed", set())
    recent = [r for r in reads.recent_runs(ws)[:10] if runs.same_campaign(r, campaign)]
    return [r for r in recent if r.get("status") == "failed" and int(r["run_id"]) not in dismissed]
