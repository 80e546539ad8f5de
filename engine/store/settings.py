"""Workspace settings (a small key/value table of JSON) and the credit balance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from engine.errors import EditError
from engine.store.database import scalar

DEFAULT_TIERS = {"fast": 1.0, "standard": 3.0, "deep": 10.0, "thinking": 15.0}
STARTING_CREDITS = 1000.0


@dataclass(frozen=True)
class Settings:
    """What runs read: concurrency, credit prices, caps, rate limits, the confirm threshold."""

    concurrency: int = 16
    # Credits above which a spec change's re-run (or a UI run) asks first; None: always ask.
    confirm_threshold: float | None = 100.0
    tiers: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    run_cap: float | None = None  # credits one run may spend
    campaign_caps: dict[str, float] = field(default_factory=dict)  # credits each campaign may spend in all
    rate_limits: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> {"rpm": .., "tpm": ..}
    max_attempts: int = 4  # attempts per call on transient failures (429, 5xx, timeouts)
    # hosts (`name` or `name:port`) http and export steps may reach although they are not public addresses
    allowed_hosts: list[str] = field(default_factory=list)
    login_hours: float = 12.0  # how long a UI login lasts before the UI asks again (engine/logins.py)
    # Credits a day (the server's calendar day) that records posted to the API may spend on their own, per
    # campaign (engine/intake.py): `intake_budget` for every campaign (None: no limit), `intake_budgets` by name.
    intake_budget: float | None = 100.0
    intake_budgets: dict[str, float] = field(default_factory=dict)
    # A run takes its rows in windows (engine/run/windows.py): each window is planned and claimed in one transaction
    # of at most this many rows, shrunk towards `claim_window_seconds` a transaction, so other processes (the UI,
    # the API, `runsheet set`) get the workspace between windows instead of waiting out one long claim.
    claim_window_rows: int = 50_000
    claim_window_seconds: float = 1.0
    # Runs with at least this many paid cells make their calls on Ray (`runsheet run --backend ray`, the optional
    # `ray` extra); None: on Ray only when asked.
    ray_min_cells: int | None = None
    # On Ray, a row-wise python step's batch of at least this many rows is computed in shards on the cluster;
    # smaller ones in the run's process. None: the backend's default (engine/runner/backend.py).
    ray_rowwise_min_rows: int | None = None

    def intake_budget_of(self, campaign: str) -> float | None:
        """The credits a day records posted to `campaign` through the API may spend by themselves."""
        return self.intake_budgets.get(campaign, self.intake_budget)


FIELDS = set(Settings.__dataclass_fields__)


def load_settings(con: duckdb.DuckDBPyConnection) -> Settings:
    stored = {key: json.loads(value) for key, value in con.execute("SELECT key, value FROM settings").fetchall()}
    return Settings(**{k: v for k, v in stored.items() if k in FIELDS})


def store_setting(con: duckdb.DuckDBPyConnection, key: str, value: Any) -> None:
    """Change one setting after checking it has the right shape."""
    if key not in FIELDS:
        raise EditError(f"unknown setting '{key}'", hint=f"use one of: {', '.join(sorted(FIELDS))}")
    try:
        Settings(**{key: value})
        _check(key, value)
    except (TypeError, ValueError) as err:
        raise EditError(
            f"bad value for setting '{key}': {err}", hint=f"see `runsheet settings` for {key}'s shape"
        ) from err
    con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, json.dumps(value)])


def _check(key: str, value: Any) -> None:
    if key == "concurrency" and (not isinstance(value, int) or not 1 <= value <= 4096):
        raise ValueError("a whole number from 1 to 4096")
    if key == "claim_window_rows" and (not isinstance(value, int) or value < 1):
        raise ValueError("a whole number of rows, 1 or more")
    if key == "claim_window_seconds" and (not isinstance(value, int | float) or value <= 0):
        raise ValueError("a number of seconds, more than 0")
    if key == "ray_min_cells" and value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError("a whole number of cells, 0 or more (or null: Ray only when asked)")
    if key == "ray_rowwise_min_rows" and value is not None and (type(value) is not int or value < 1):
        raise ValueError("a whole number of rows, 1 or more (or null: the default)")
    if key == "max_attempts" and (not isinstance(value, int) or not 1 <= value <= 20):
        raise ValueError("a whole number from 1 to 20")
    if (
        key in ("confirm_threshold", "run_cap", "intake_budget")
        and value is not None
        and (not isinstance(value, int | float) or value < 0)
    ):
        raise ValueError("a number of credits, 0 or more")
    if key in ("tiers", "campaign_caps", "intake_budgets") and (
        not isinstance(value, dict) or not all(isinstance(v, int | float) and v >= 0 for v in value.values())
    ):
        raise ValueError("a mapping of names to credits")
    if key == "login_hours" and (not isinstance(value, int | float) or not 0 < value <= 24 * 366):
        raise ValueError("a number of hours, more than 0 and at most a year (8784)")
    if key == "allowed_hosts" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ValueError('a list of host names, e.g. ["127.0.0.1:8080", "crm.internal"]')
    if key == "rate_limits" and (
        not isinstance(value, dict) or not all(isinstance(v, dict) and set(v) <= {"rpm", "tpm"} for v in value.values())
    ):
        raise ValueError("a mapping of model names to {rpm: .., tpm: ..}")


def balance(con: duckdb.DuckDBPyConnection) -> float:
    return float(scalar(con, "SELECT coalesce(sum(amount), 0) FROM credit_ledger"))


def campaign_spent(con: duckdb.DuckDBPyConnection, campaign_id: int) -> float:
    spent = scalar(
        con,
        "SELECT coalesce(-sum(amount), 0) FROM credit_ledger WHERE campaign_id = ? AND amount < 0",
        [campaign_id],
    )
    return float(spent)


def intake_spent_today(con: duckdb.DuckDBPyConnection, campaign_id: int) -> float:
    """Credits the campaign's background intake runs (trigger `intake`) started today have spent."""
    spent = scalar(
        con,
        "SELECT coalesce(-sum(l.amount), 0) FROM credit_ledger l JOIN runs r USING (run_id) WHERE r.campaign_id = ? "
        "AND r.trigger = 'intake' AND r.started_at >= current_date AND l.amount < 0",
        [campaign_id],
    )
    return float(spent)


def grant(con: duckdb.DuckDBPyConnection, amount: float, reason: str) -> float:
    """Add (or, negative, remove) credits; returns the new balance."""
    con.execute("INSERT INTO credit_ledger VALUES (now(), ?, NULL, NULL, ?)", [float(amount), reason])
    return balance(con)
