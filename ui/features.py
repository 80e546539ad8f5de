"""The workspace features the UI reads beyond cells and runs: estimates, credits, settings, global context,
SQL and exports, each through the public `engine` API, shaped for the pages (plain dicts and bytes)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from engine import Campaign, RunSelection, Workspace


def estimate(campaign: Campaign, selection: RunSelection) -> dict[str, Any]:
    """What running `selection` would cost: calls, cache hits, credits, tokens, per column (downstream auto-run
    columns included)."""
    return campaign.estimate(selection).as_dict()


def credits(ws: Workspace) -> float:
    return float(ws.credits())


def add_credits(ws: Workspace, amount: float, actor: str) -> None:
    ws.add_credits(amount, reason=f"added in the UI by {actor}")


def settings(ws: Workspace) -> dict[str, Any]:
    return dataclasses.asdict(ws.settings())


def set_setting(ws: Workspace, name: str, value: Any) -> None:
    ws.set_setting(name, value)


def confirm_threshold(ws: Workspace) -> float | None:
    """Credits above which a run asks first; None: never ask."""
    value = ws.settings().confirm_threshold
    return None if value is None else float(value)


def context(ws: Workspace) -> dict[str, str]:
    """The global context documents' texts by name."""
    return {name: doc.text for name, doc in ws.context().items()}


def set_context(ws: Workspace, name: str, text: str, actor: str) -> None:
    ws.set_context(name, text, actor=actor)


def query(ws: Workspace, sql: str) -> pl.DataFrame:
    """Read-only SQL in the engine's sandbox; a polars DataFrame."""
    return ws.query(sql)


def query_csv(ws: Workspace, sql: str) -> bytes:
    """The whole result of `sql` as CSV (cells that look like spreadsheet formulas are escaped)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "query.csv"
        ws.query_to_file(sql, path, format="csv")
        return path.read_bytes()


def export_campaign(campaign: Campaign, fmt: str, with_state: bool) -> bytes:
    """The campaign's values (and, with `with_state`, each step's status, error and credits) as file bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{campaign.name}.{fmt}"
        campaign.export(path, format=fmt, with_state=with_state)
        return path.read_bytes()
