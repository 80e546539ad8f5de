"""Runs: one row per execution request, with who asked, why, and what it did."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from engine.executor import Executor, RunReport
from engine.graph import Request
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope
from engine.store.database import scalar


def run_transaction(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    request: Request,
    scope: Scope,
    *,
    actor: str,
    trigger: str,
    describe: dict[str, Any] | None = None,
) -> RunReport:
    """Record a run, execute `request` over `scope` on the open transaction, and store its counts."""
    run_id = int(scalar(con, "SELECT nextval('ids')"))
    details = {
        "kind": request.kind,
        "columns": sorted(request.columns),
        "force": request.force,
        "scope": "all" if scope.row_ids is None and scope.between is None else "rows",
        **(describe or {}),
    }
    con.execute(
        "INSERT INTO runs (run_id, campaign_id, actor, trigger, request, status, started_at) "
        "VALUES (?, ?, ?, ?, ?, 'running', now())",
        [run_id, campaign.campaign_id, actor, trigger, json.dumps(details)],
    )
    report = Executor(con, campaign, run_id, actor=actor, trigger=trigger).execute(request, scope)
    counts = {column: dict(outcomes) for column, outcomes in report.counts().items()}
    con.execute(
        "UPDATE runs SET status = 'done', finished_at = now(), counts = ? WHERE run_id = ?",
        [json.dumps(counts), run_id],
    )
    return report
