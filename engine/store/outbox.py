"""The export outbox: one row per decision to send a record somewhere, written in the same transaction that
claims the export cell, so a crash between deciding and delivering never loses a delivery.

An entry is `pending` until the runner reports its cell: `delivered` (done), `failed` (a permanent error), or
still `pending` after a passing failure (Stop, timeout, rate limit), in which case the next run that claims
the cell delivers the same entry again with the same idempotency key. A new decision for the same cell (its
inputs changed, or Run Again) supersedes a pending entry.
"""

from __future__ import annotations

import hashlib

import duckdb
import polars as pl

from engine.store.database import frame
from engine.store.schema import literal
from engine.types import RETRYABLE_CODES


def idempotency_key(campaign: str, row_id: int, column: str, cell_key: int, nonce: str = "") -> str:
    """Deterministic per (campaign, record, step, input key); Run Again adds a nonce so it sends on purpose."""
    text = "\x1f".join([campaign, str(row_id), column, str(cell_key), nonce])
    return hashlib.sha256(text.encode()).hexdigest()


def message_id(key: str) -> str:
    """The Standard Webhooks `webhook-id`: the same on every retry of one delivery."""
    return "msg_" + key[:32]


def record_decisions(
    con: duckdb.DuckDBPyConnection, campaign_id: int, column: str, decisions: pl.DataFrame, run_id: int,
    *, reuse: bool,
) -> pl.DataFrame:
    """Store the decision to send each row of `decisions` (row_id, key, idempotency_key, payload).

    With `reuse`, a row that already has a pending entry for the same cell key keeps it (its key, id and
    payload: a crashed run's delivery is repeated exactly). Other pending entries of those rows are superseded.
    Returns row_id, delivery_id, idempotency_key, message_id and payload for every row.
    """
    con.register("_decisions", decisions.to_arrow())
    try:
        where = f"o.campaign_id = {campaign_id} AND o.column_name = {literal(column)} AND o.status = 'pending'"
        kept = (
            frame(
                con,
                f"""SELECT o.row_id, o.delivery_id, o.idempotency_key, o.message_id, o.payload FROM outbox o
                    JOIN _decisions d ON d.row_id = o.row_id AND d.key = o.cell_key WHERE {where}""",
            )
            if reuse
            else pl.DataFrame()
        )
        kept_ids = kept["delivery_id"].to_list() if kept.height else []
        con.execute(
            f"""UPDATE outbox o SET status = 'superseded' FROM _decisions d
                WHERE d.row_id = o.row_id AND {where} AND NOT list_contains(?::BIGINT[], o.delivery_id)""",
            [kept_ids],
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _new_deliveries AS
                SELECT nextval('ids') AS delivery_id, d.row_id, d.key, d.idempotency_key, d.payload
                FROM _decisions d WHERE NOT list_contains(?::BIGINT[], d.row_id)""",
            [kept["row_id"].to_list() if kept.height else []],
        )
        con.execute(
            f"""INSERT INTO outbox (delivery_id, campaign_id, column_name, row_id, cell_key, idempotency_key,
                    message_id, payload, status, run_id, created_at)
                SELECT delivery_id, {campaign_id}, {literal(column)}, row_id, key, idempotency_key,
                    'msg_' || left(idempotency_key, 32), payload, 'pending', {run_id}, now()
                FROM _new_deliveries"""
        )
        fresh = frame(
            con,
            "SELECT row_id, delivery_id, idempotency_key, 'msg_' || left(idempotency_key, 32) AS message_id, "
            "payload FROM _new_deliveries",
        )
        con.execute("DROP TABLE _new_deliveries")
    finally:
        con.unregister("_decisions")
    return pl.concat([kept, fresh], how="vertical_relaxed") if kept.height else fresh


def record_outcomes(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str, results: str) -> None:
    """Settle the pending entries of the cells in `results` (the runner's written batch): delivered, failed, or
    left pending after a passing failure."""
    passing = ", ".join(literal(c.value) for c in sorted(RETRYABLE_CODES))
    con.execute(
        f"""UPDATE outbox o SET
                status = CASE WHEN r.status IN ('done', 'not_found') THEN 'delivered'
                              WHEN r.error_code IN ({passing}) THEN 'pending' ELSE 'failed' END,
                attempts = o.attempts + coalesce(r.attempts, 0),
                delivered_at = CASE WHEN r.status IN ('done', 'not_found') THEN now() END,
                last_error = r.error_message
            FROM {results} r
            WHERE o.campaign_id = {campaign_id} AND o.column_name = {literal(column)} AND o.row_id = r.row_id
              AND o.status = 'pending'"""
    )


def outbox_counts(con: duckdb.DuckDBPyConnection, campaign_id: int | None = None) -> dict[str, int]:
    """Entries per status, for one campaign or all."""
    where = "" if campaign_id is None else f"WHERE campaign_id = {int(campaign_id)}"
    return dict(con.execute(f"SELECT status, count(*) FROM outbox {where} GROUP BY 1").fetchall())

