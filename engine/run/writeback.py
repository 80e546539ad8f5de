"""Writes paid results to the workspace in batches: per column one Arrow table joined in one UPDATE ... FROM,
plus the activity rows, the credit ledger and the run's progress (through engine.run.lifecycle, the writer of
`runs`), all in one short transaction."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from engine.cells import kind_named
from engine.graph.fate import ANSWERED, sql_in
from engine.run.lifecycle import add_progress, stop_requested
from engine.runner.calls import CellResult
from engine.store.catalog import CampaignTables
from engine.store.database import Database, scalar
from engine.store.outbox import record_outcomes
from engine.store.schema import literal
from engine.types import HINTS

log = logging.getLogger(__name__)


@dataclass
class Written:
    """What a batch changed, for the run's report and budget."""

    credits: float
    balance: float
    stop_requested: bool


def write_results(
    db: Database, tables: CampaignTables, run_id: int, who: tuple[str, str], results: list[CellResult]
) -> Written:
    """Store `results` on the cells this run claimed (a cell reclaimed by another run is left alone)."""
    by_column: dict[str, list[CellResult]] = defaultdict(list)
    for result in results:
        by_column[result.column].append(result)
    credits = sum(r.credits for r in results)
    with db.transaction() as con:
        for column, batch in by_column.items():
            spec = tables.column(column)
            con.register("_results", _arrow(batch, spec.value_type))
            value = "s.value::JSON" if spec.value_type == "JSON" else f"TRY_CAST(s.value AS {spec.value_type})"
            hints = " ".join(f"WHEN {literal(c.value)} THEN {literal(h)}" for c, h in HINTS.items())
            con.execute(
                f"""UPDATE {tables.tables[column]} AS t SET value = CASE WHEN s.status = 'error' THEN t.value
                    ELSE {value} END, status = s.status, key = s.key, waiting_on = NULL, error_code = s.error_code,
                    error_message = s.error_message, error_hint = CASE s.error_code {hints} END, cost = s.credits,
                    finished_at = now()::TIMESTAMP, tokens = s.tokens, latency_ms = s.latency_ms,
                    attempts = s.attempts, provider_cost = s.provider_cost, cached = s.cached,
                    detail = s.detail::JSON
                FROM _results AS s WHERE t.row_id = s.row_id AND t.status = 'running' AND t.run_id = {run_id}"""
            )
            con.execute(
                f"""INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, logged_at,
                    duration_ms, cost, actor, trigger, tokens, provider_cost, cached, error_code)
                SELECT {run_id}, {tables.campaign_id}, {literal(column)}, row_id, 1, 'run',
                    CASE WHEN error_code = 'insufficient_credits' THEN 'refused' ELSE status END, now(), latency_ms,
                    credits, {literal(who[0])}, {literal(who[1])}, tokens, provider_cost, cached, error_code
                FROM _results"""
            )
            if kind_named(spec.kind).side_effect:  # an export settles its outbox entries in this transaction
                record_outcomes(con, tables.campaign_id, column, "_results")
            con.unregister("_results")
        if credits:
            con.execute(
                "INSERT INTO credit_ledger VALUES (now(), ?, ?, ?, 'run')",
                [-credits, run_id, tables.campaign_id],
            )
        add_progress(
            con,
            run_id,
            done=len(results),
            credits=credits,
            tokens=sum(r.tokens for r in results),
            provider_cost=sum(r.provider_cost or 0.0 for r in results),
            cache_hits=sum(r.cached for r in results),
            credits_saved=sum(r.saved for r in results),
            beat=True,
        )
        balance = float(scalar(con, "SELECT coalesce(sum(amount), 0) FROM credit_ledger"))
        stop = stop_requested(con, run_id)
    _remember(db, tables, by_column)
    return Written(credits, balance, stop)


def _remember(db: Database, tables: CampaignTables, by_column: dict[str, list[CellResult]]) -> None:
    """Index the answers of cacheable steps by cell key in the memo, in a transaction of its own: two runs that
    shared one answer write the same memo key at once, and DuckDB refuses one of the commits. The memo only
    saves a lookup (the result cache holds every answer), so the refused one is skipped, never the results."""
    import duckdb

    for column, batch in by_column.items():
        spec = tables.column(column)
        if not kind_named(spec.kind).cacheable:
            continue
        try:
            with db.transaction() as con:
                con.register("_results", _arrow(batch, spec.value_type))
                con.execute(
                    f"""INSERT OR REPLACE INTO memo SELECT DISTINCT ON (key) key, value, status, now() FROM _results
                    WHERE {sql_in("status", ANSWERED)} AND key IS NOT NULL"""
                )
                con.unregister("_results")
        except (duckdb.TransactionException, duckdb.ConstraintException) as conflict:
            log.debug("memo write skipped for %s: %s", column, conflict)


def _arrow(batch: list[CellResult], value_type: str) -> pa.Table:
    def encode(value: object) -> str | None:
        if value is None:
            return None
        if value_type == "JSON" or isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return str(value)

    return pa.table(
        {
            "row_id": pa.array([r.row_id for r in batch], pa.int64()),
            "value": pa.array([encode(r.value) for r in batch], pa.string()),
            "status": pa.array([r.status.value for r in batch], pa.string()),
            "key": pa.array([r.key for r in batch], pa.uint64()),
            "error_code": pa.array([r.error_code.value if r.error_code else None for r in batch], pa.string()),
            "error_message": pa.array([r.error_message for r in batch], pa.string()),
            "credits": pa.array([r.credits for r in batch], pa.float64()),
            "tokens": pa.array([r.tokens for r in batch], pa.int64()),
            "latency_ms": pa.array([r.latency_ms for r in batch], pa.float64()),
            "attempts": pa.array([r.attempts for r in batch], pa.int32()),
            "provider_cost": pa.array([r.provider_cost for r in batch], pa.float64()),
            "cached": pa.array([r.cached for r in batch], pa.bool_()),
            "detail": pa.array([json.dumps(r.detail, ensure_ascii=False, default=str) for r in batch], pa.string()),
        }
    )
