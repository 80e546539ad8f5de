"""The workspace reads the pages make, kept in this process until the workspace changes.

Every read opens a DuckDB connection (tens of ms on a million-row workspace: most of a page's server time), so
everything the pages read except the grid's page of cells is kept here, shared by every session of this server,
under the workspace's change key (`Workspace.change_key`: the size, modification time and inode of its database
file and write-ahead log). Every committed write changes them, whichever process made it (this server, a CLI run,
another tab's run process); reads leave them alone. The key is taken before the read it guards, so a write racing
the read can only make the kept value newer than its key, never older: the next look sees a new key and reads again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from engine import Campaign, CampaignSpec, Workspace
from ui import runs, session

T = TypeVar("T")
SHORT_WORK = ("pull", "apply", "new_rows", "estimate")  # triggers of in-request work, not runs to follow
RECLAIM_EVERY_S = 10.0  # how often runs marked as going are checked for a crashed process
_LOCK = threading.Lock()
_kept: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = {}  # (path, what) -> (change key, value)
_workspaces: dict[tuple[str, str, str], Workspace] = {}
_campaigns: dict[tuple[str, str, str], Campaign] = {}
_reclaimed: dict[str, float] = {}


def fresh() -> None:
    """Start a script run or fragment run: forget what was said once per run (e.g. "the workspace is busy")."""
    st.session_state["_reads"] = {}


def kept(ws: Workspace, what: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """`compute()`, or the value it gave last time if the workspace has not changed since."""
    key = ws.change_key()
    slot = (str(ws.path.resolve()), *what)
    with _LOCK:
        found = _kept.get(slot)
    if found is not None and found[0] == key:
        return found[1]  # type: ignore[no-any-return]
    value = compute()
    with _LOCK:
        _kept[slot] = (key, value)
    return value


def held(ws: Workspace, what: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """Like `kept`, but kept in this browser session only: for reads each new session must make itself (the
    grid's page), which the reruns of one session (a widget echoing its state, a poll) can share."""
    key = ws.change_key()
    store: dict[tuple[Any, ...], tuple[tuple[Any, ...], Any]] = st.session_state.setdefault("_held", {})
    found = store.get(what)
    if found is not None and found[0] == key:
        return found[1]  # type: ignore[no-any-return]
    value = compute()
    store.clear()  # one page at a time
    store[what] = (key, value)
    return value


def forget_cached() -> None:
    """Forget every kept read (the change key already covers writes; this is for tests and odd cases)."""
    with _LOCK:
        _kept.clear()
        _campaigns.clear()


# ---- the workspace and its campaigns --------------------------------------------------------------------


def workspace() -> Workspace | None:
    """The served workspace, opened once per process (opening checks its tables: a transaction); None, after
    telling the user why, when there is none or it cannot be opened (see `session.workspace`)."""
    path = session.workspace_path()
    slot = (str(path), os.environ.get(session.BUSY_TIMEOUT_ENV) or "", session.actor())
    if Workspace.exists(path):
        with _LOCK:
            found = _workspaces.get(slot)
        if found is not None:
            return found
    ws = session.workspace()
    if ws is not None:
        with _LOCK:
            _workspaces[slot] = ws
    return ws


def campaign_names(ws: Workspace) -> list[str]:
    return kept(ws, ("campaigns",), ws.campaigns)


def campaign_name(ws: Workspace) -> str | None:
    """The campaign chosen in the sidebar (its widget owns the choice), else the first one."""
    names = campaign_names(ws)
    if not names:
        return None
    chosen = st.session_state.get("campaign")
    return chosen if chosen in names else names[0]


def campaign(ws: Workspace, name: str) -> Campaign:
    """The campaign as the UI's user acts on it (`session.open_campaign`, which checks that it exists, the first
    time). A `Campaign` is a handle holding no data: should the campaign go, the next read through it raises
    NotFoundError as opening it would."""
    slot = (str(ws.path.resolve()), name, session.actor())
    with _LOCK:
        found = _campaigns.get(slot)
    if found is not None:
        return found
    opened = session.open_campaign(ws, name)
    with _LOCK:
        _campaigns[slot] = opened
    return opened


def spec(ws: Workspace, campaign: Campaign) -> CampaignSpec:
    return kept(ws, ("spec", campaign.name), lambda: campaign.spec)


def status_counts(ws: Workspace, campaign: Campaign) -> dict[str, dict[str, int]]:
    return kept(ws, ("counts", campaign.name), campaign.status_counts)


def credits(ws: Workspace) -> float:
    return kept(ws, ("credits",), lambda: float(ws.credits()))


# ---- runs -----------------------------------------------------------------------------------------------


def recent_runs(ws: Workspace) -> list[dict[str, Any]]:
    """The latest 50 runs of the workspace (newest first). While some are marked as going, their processes are
    checked every few seconds and crashed ones given back (`Workspace.active_runs`)."""
    found: list[dict[str, Any]] = kept(ws, ("runs",), lambda: runs.recent_runs(ws, 50))
    if any(r.get("status") in runs.ACTIVE for r in found):
        path = str(ws.path.resolve())
        if time.monotonic() - _reclaimed.get(path, 0.0) > RECLAIM_EVERY_S:
            _reclaimed[path] = time.monotonic()
            ws.active_runs()
            found = kept(ws, ("runs",), lambda: runs.recent_runs(ws, 50))
    return found


def batch_runs(ws: Workspace, campaign: str | None = None) -> list[dict[str, Any]]:
    """Runs going now that a person would follow (not pulls, applies or new-row recomputes)."""
    return [
        r
        for r in recent_runs(ws)
        if r.get("status") == "running" and r.get("trigger") not in SHORT_WORK and runs.same_campaign(r, campaign)
    ]
