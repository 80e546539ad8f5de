"""The export outbox: one row per decision to send a record somewhere, written in the same transaction that
claims the export cell, so a crash between deciding and delivering never loses a delivery.

A decision is made only when the payload differs from the one last delivered for that record and step, or a
person asked (Run Again). Its idempotency key derives from the payload's content (engine/cells/export.py).

The export step says what each claimed cell would send (engine/cells/export.py, `payloads`); the executor
records the decisions here (`decide_sends`) and write-back settles them (`record_outcomes`): step kinds never
touch the store.

An entry is `pending` until the runner reports its cell: `delivered` (done), `failed` (a permanent error), or
still `pending` after a passing failure (Stop, timeout, rate limit), in which case the next run that claims
the cell delivers the same entry again with the same idempotency key. A new decision for the same cell (its
payload changed, or Run Again) supersedes a pending entry.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from engine.graph.fate import ANSWERED, sql_in
from engine.store.database import frame
from engine.store.schema import literal
from engine.types import RETRYABLE_CODES

if TYPE_CHECKING:
    from engine.store.catalog import CampaignTables


def content_hash(payload: str) -> str:
    """What a payload says, whenever it was made: sha256 of the canonical JSON of its `type` and `data`."""
    parsed: dict[str, Any] = json.loads(payload)
    canonical = json.dumps(
        {"type": parsed.get("type"), "data": parsed.get("data")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(campaign: str, row_id: int, column: str, content: str, nonce: str = "") -> str:
    """Deterministic per (campaign, record, step, payload content); a nonce sets apart a send on purpose (Run
    Again) or a payload going back to one delivered before, so the receiver does not drop either as a repeat."""
    text = "\x1f".join([campaign, str(row_id), column, content, nonce])
    return hashlib.sha256(text.encode()).hexdigest()


def message_id(key: str) -> str:
    """The Standard Webhooks `webhook-id`: the same on every retry of one delivery."""
    return "msg_" + key[:32]


def record_decisions(
    con: duckdb.DuckDBPyConnection,
    campaign_id: int,
    campaign: str,
    column: str,
    decisions: pl.DataFrame,
    run_id: int,
    *,
    again: str | None,
) -> pl.DataFrame:
    """Decide, for each row of `decisions` (row_id, key, payload), what to send, and store the decisions.

    Without `again` (a Run Again's nonce): a pending entry with the same content is kept (its key, id and frozen
    payload: a crashed run's delivery is repeated exactly); a payload equal to the last one delivered is
    `unchanged` (no entry, nothing to send); any other gets a new entry. Other pending entries of those rows
    are superseded. Returns row_id, delivery_id, idempotency_key, message_id, payload and unchanged per row.
    """
    rows = decisions["row_id"].to_list()
    history = frame(
        con,
        f"""SELECT row_id, delivery_id, idempotency_key, message_id, payload, status FROM outbox
            WHERE campaign_id = {campaign_id} AND column_name = {literal(column)}
              AND status IN ('pending', 'delivered') AND list_contains(?::BIGINT[], row_id)
            ORDER BY delivery_id""",
        [rows],
    )
    pending: dict[int, dict[str, Any]] = {}
    delivered_keys: dict[int, set[str]] = {}
    latest: dict[int, dict[str, Any]] = {}
    for entry in history.iter_rows(named=True):
        if entry["status"] == "pending":
            pending[entry["row_id"]] = entry
        else:
            latest[entry["row_id"]] = entry
            delivered_keys.setdefault(entry["row_id"], set()).add(entry["idempotency_key"])
    out: list[dict[str, Any]] = []
    kept: list[int] = []
    fresh: list[dict[str, Any]] = []
    for row in decisions.iter_rows(named=True):
        row_id, content = row["row_id"], content_hash(row["payload"])
        waiting = pending.get(row_id)
        if again is None and waiting is not None and content_hash(waiting["payload"]) == content:
            kept.append(waiting["delivery_id"])
            out.append({**_picked(waiting), "unchanged": False})
            continue
        last = latest.get(row_id)
        if again is None and last is not None and content_hash(last["payload"]) == content:
            out.append({**_picked(last), "delivery_id": None, "unchanged": True})
            continue
        key = idempotency_key(campaign, row_id, column, content, again or "")
        if key in delivered_keys.get(row_id, set()) and last is not None:
            key = idempotency_key(campaign, row_id, column, content, "after:" + last["idempotency_key"])
        entry = {
            "row_id": row_id,
            "key": row["key"],
            "idempotency_key": key,
            "message_id": message_id(key),
            "payload": row["payload"],
        }
        fresh.append(entry)
        out.append({**entry, "delivery_id": None, "unchanged": False})
    con.execute(
        f"""UPDATE outbox SET status = 'superseded'
            WHERE campaign_id = {campaign_id} AND column_name = {literal(column)} AND status = 'pending'
              AND list_contains(?::BIGINT[], row_id) AND NOT list_contains(?::BIGINT[], delivery_id)""",
        [rows, kept],
    )
    if fresh:
        ids = [int(i) for (i,) in con.execute(f"SELECT nextval('ids') FROM range({len(fresh)})").fetchall()]
        for entry, delivery_id in zip(fresh, ids, strict=True):
            entry["delivery_id"] = delivery_id
        new = pl.DataFrame(
            fresh,
            schema={
                "row_id": pl.Int64,
                "key": pl.UInt64,
                "idempotency_key": pl.String,
                "message_id": pl.String,
                "payload": pl.String,
                "delivery_id": pl.Int64,
            },
        )
        con.register("_new_deliveries", new.to_arrow())
        try:
            con.execute(
                f"""INSERT INTO outbox (delivery_id, campaign_id, column_name, row_id, cell_key, idempotency_key,
                        message_id, payload, status, run_id, created_at)
                    SELECT delivery_id, {campaign_id}, {literal(column)}, row_id, key, idempotency_key, message_id,
                        payload, 'pending', {run_id}, now()
                    FROM _new_deliveries"""
            )
        finally:
            con.unregister("_new_deliveries")
        by_row = {e["row_id"]: e["delivery_id"] for e in fresh}
        for chosen in out:
            if chosen["delivery_id"] is None and not chosen["unchanged"]:
                chosen["delivery_id"] = by_row[chosen["row_id"]]
    return pl.DataFrame(
        [
            {k: c[k] for k in ("row_id", "delivery_id", "idempotency_key", "message_id", "payload", "unchanged")}
            for c in out
        ],
        schema={
            "row_id": pl.Int64,
            "delivery_id": pl.Int64,
            "idempotency_key": pl.String,
            "message_id": pl.String,
            "payload": pl.String,
            "unchanged": pl.Boolean,
        },
    )


def decide_sends(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    column: str,
    rows: pl.DataFrame,
    payloads: pl.DataFrame,
    run_id: int,
    *,
    force: bool,
) -> pl.DataFrame:
    """Record the decisions to send the claimed `rows` (row_id, key, inputs) whose `payloads` (row_id, key,
    payload: what the step says each would send) call for it, in the claiming transaction; under Run Again
    (`force`) every row sends, with this run in its key. Returns `rows` with each row's decision as
    _delivery_id, _idempotency_key, _message_id, _payload and _unchanged (what the export's `prepare` reads)."""
    again = f"again:{run_id}" if force else None
    stored = record_decisions(con, tables.campaign_id, tables.spec.name, column, payloads, run_id, again=again)
    renamed = stored.rename({c: "_" + c for c in stored.columns if c != "row_id"})
    return rows.join(renamed, on="row_id", how="left")


def _picked(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("row_id", "delivery_id", "idempotency_key", "message_id", "payload")}


def record_outcomes(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str, results: str) -> None:
    """Settle the pending entries of the cells in `results` (the runner's written batch): delivered, failed, or
    left pending after a passing failure."""
    passing = ", ".join(literal(c.value) for c in sorted(RETRYABLE_CODES))
    con.execute(
        f"""UPDATE outbox o SET
                status = CASE WHEN {sql_in("r.status", ANSWERED)} THEN 'delivered'
                              WHEN r.error_code IN ({passing}) THEN 'pending' ELSE 'failed' END,
                attempts = o.attempts + coalesce(r.attempts, 0),
                delivered_at = CASE WHEN {sql_in("r.status", ANSWERED)} THEN now() END,
                last_error = r.error_message
            FROM {results} r
            WHERE o.campaign_id = {campaign_id} AND o.column_name = {literal(column)} AND o.row_id = r.row_id
              AND o.status = 'pending'"""
    )


def outbox_counts(con: duckdb.DuckDBPyConnection, campaign_id: int | None = None) -> dict[str, int]:
    """Entries per status, for one campaign or all."""
    where = "" if campaign_id is None else f"WHERE campaign_id = {int(campaign_id)}"
    return dict(con.execute(f"SELECT status, count(*) FROM outbox {where} GROUP BY 1").fetchall())
