"""The run log: every run with who and why (trigger, actor), its scope, counts by outcome, credits, duration
and live progress, read from `runs`; a column's history following its renames, and deleted only on request."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from engine.store.database import dict_rows

LOG_FIELDS = (
    "run_id, campaign, trigger, actor, status, request, counts, total, done, credits, cache_hits, started_at, "
    "finished_at, message"
)


def run_log(
    con: duckdb.DuckDBPyConnection,
    *,
    campaign: str | None = None,
    trigger: str | None = None,
    actor: str | None = None,
    after: int = 0,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Runs newest first (those with an id above `after`), with `scope`, `outcomes` (summed over columns) and
    `seconds` (so far, for a running run) worked out."""
    where: list[str] = ["r.run_id > ?"]
    params: list[object] = [after]
    for column, value in (("c.name", campaign), ("r.trigger", trigger), ("r.actor", actor)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    cursor = con.execute(
        f"""SELECT r.run_id, c.name AS campaign, r.trigger, r.actor, r.status, r.request, r.counts, r.total, r.done,
                r.credits, r.cache_hits, r.started_at, r.finished_at, r.message,
                epoch(coalesce(r.finished_at, now()::TIMESTAMP) - r.started_at) AS seconds
            FROM runs r LEFT JOIN campaigns c USING (campaign_id) WHERE {" AND ".join(where)}
            ORDER BY r.run_id DESC LIMIT ?""",
        [*params, limit],
    )
    rows = dict_rows(cursor)
    for row in rows:
        request = json.loads(row["request"]) if isinstance(row["request"], str) else (row["request"] or {})
        counts = json.loads(row["counts"]) if isinstance(row["counts"], str) else (row["counts"] or {})
        row["request"], row["counts"] = request, counts
        row["scope"] = _scope(request)
        outcomes: dict[str, int] = {}
        for per_column in counts.values():
            for outcome, n in per_column.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + n
        row["outcomes"] = dict(sorted(outcomes.items()))
    return rows


def _scope(request: dict[str, Any]) -> str:
    columns = (
        request.get("action") or ",".join(request.get("columns") or []) or "auto steps"
    )  # an action's run names it
    kind = request.get("kind", "run")
    rows = "all rows" if request.get("scope") == "all" else "some rows"
    if "row" in request:
        rows = f"row {request['row']}"
    return f"{kind}{' (again)' if request.get('force') else ''}: {columns} / {rows}"


# The tables that name a campaign's column: its history (activity, export deliveries) and its switches.
COLUMN_RECORDS = ("activity", "outbox", "paused")


def follow_rename(con: duckdb.DuckDBPyConnection, campaign_id: int, campaign: str, old: str, new: str) -> None:
    """A renamed column keeps its history and switches: its activity rows, export deliveries, pause and
    schedules are shown under its new name. (Runs keep the names they ran with, in their request and counts.)"""
    for table in COLUMN_RECORDS:
        con.execute(
            f"UPDATE {table} SET column_name = ? WHERE campaign_id = ? AND column_name = ?", [new, campaign_id, old]
        )
    con.execute("UPDATE schedules SET column_name = ? WHERE campaign = ? AND column_name = ?", [new, campaign, old])


def history_counts(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str) -> dict[str, int]:
    """How many activity rows and export deliveries name `column`."""
    return {
        table: int(
            con.execute(
                f"SELECT count(*) FROM {table} WHERE campaign_id = ? AND column_name = ?", [campaign_id, column]
            ).fetchall()[0][0]
        )
        for table in ("activity", "outbox")
    }


def purge_history(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str) -> dict[str, int]:
    """Delete a column's activity rows and export deliveries (only ever asked for explicitly: `runsheet history
    purge`); runs and credit rows stay, as they add up the balance. Returns how many rows went, per table."""
    gone = history_counts(con, campaign_id, column)
    for table in gone:
        con.execute(f"DELETE FROM {table} WHERE campaign_id = ? AND column_name = ?", [campaign_id, column])
    return gone
