"""The workspace reads a page makes, each done once per script run (or fragment run) and shared by every part
of the page, plus the few that are cached across runs because they only change with a new run.

Each read opens a short transaction (tens of ms on a big workspace), so the grid page asks for the campaign
list, the recent runs and the credit balance once, and reuses the spec and the status counts until the
workspace's latest run changes: every change to cells or specs goes through a run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from engine import Campaign, CampaignSpec, Workspace
from ui import runs

T = TypeVar("T")
SHORT_WORK = ("pull", "apply", "new_rows", "estimate")  # triggers of in-request work, not runs to follow
RECLAIM_EVERY_S = 10.0  # how often crashed runs are looked for (Workspace.active_runs gives them back)
_reclaimed: dict[str, float] = {}
_by_version: dict[tuple[Any, ...], Any] = {}


def fresh() -> None:
    """Forget this session's per-run reads: call at the start of every script run and fragment run."""
    st.session_state["_reads"] = {}


def once(key: str, compute: Callable[[], T]) -> T:
    store: dict[str, Any] = st.session_state.setdefault("_reads", {})
    if key not in store:
        store[key] = compute()
    return store[key]  # type: ignore[no-any-return]


def campaign_names(ws: Workspace) -> list[str]:
    return once("campaigns", ws.campaigns)


def recent_runs(ws: Workspace) -> list[dict[str, Any]]:
    """The latest 50 runs of the workspace (newest first); crashed ones are reclaimed every few seconds."""

    def load() -> list[dict[str, Any]]:
        key = str(ws.path.resolve())
        if time.monotonic() - _reclaimed.get(key, 0.0) > RECLAIM_EVERY_S:
            _reclaimed[key] = time.monotonic()
            ws.active_runs()
        return runs.recent_runs(ws, 50)

    return once("runs", load)


def batch_runs(ws: Workspace, campaign: str | None = None) -> list[dict[str, Any]]:
    """Runs going now that a person would follow (not pulls, applies or new-row recomputes)."""
    return [
        r for r in recent_runs(ws)
        if r.get("status") == "running" and r.get("trigger") not in SHORT_WORK and runs.same_campaign(r, campaign)
    ]


def version(ws: Workspace) -> tuple[Any, ...]:
    """Changes whenever cells or specs may have changed: the latest run and the progress of running ones."""
    latest = recent_runs(ws)
    return (
        str(ws.path.resolve()),
        latest[0]["run_id"] if latest else None,
        tuple((r["run_id"], r.get("done"), r.get("status")) for r in latest if r.get("status") == "running"),
    )


def _cached(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    if key not in _by_version:
        if len(_by_version) > 256:
            _by_version.clear()
        _by_version[key] = compute()
    return _by_version[key]  # type: ignore[no-any-return]


def spec(ws: Workspace, campaign: Campaign) -> CampaignSpec:
    return _cached(("spec", campaign.name, *version(ws)), lambda: campaign.spec)


def status_counts(ws: Workspace, campaign: Campaign) -> dict[str, dict[str, int]]:
    return _cached(("counts", campaign.name, *version(ws)), campaign.status_counts)


def forget_cached() -> None:
    """After this process changed a spec or settings outside a run."""
    _by_version.clear()
