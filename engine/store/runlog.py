"""The run log: every run with who and why (trigger, actor), its scope, counts by outcome, credits, duration
and live progress, read from `runs`; and forgetting a deleted step's logs."""

from __future__ import annotations

import json
from typing import Any

import duckdb

LOG_FIELDS = (
    "run_id, campaign, trigger, actor, status, request, counts, total, done, credits, cache_hits, started_at, "
    "finished_at, message"
)


def run_log(
    con: duckdb.DuckDBPyConnection, *, campaign: str | None = None, trigger: str | None = None,
    actor: str | None = None, after: int = 0, limit: int = 20,
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
            FROM runs r LEFT JOIN campaigns c USING (campaign_id) WHERE {' AND '.join(where)}
            ORDER BY r.run_id DESC LIMIT ?""",
        [*params, limit],
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
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
    columns = ",".join(request.get("columns") or []) or "auto steps"
    kind = request.get("kind", "run")
    rows = "all rows" if request.get("scope") == "all" else "some rows"
    if "row" in request:
        rows = f"row {request['row']}"
    return f"{kind}{' (again)' if request.get('force') else ''}: {columns} / {rows}"


def forget_step(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str) -> None:
    """A deleted step's logs go with it: its activity rows and export outbox entries."""
    con.execute("DELETE FROM activity WHERE campaign_id = ? AND column_name = ?", [campaign_id, column])
    con.execute("DELETE FROM outbox WHERE campaign_id = ? AND column_name = ?", [campaign_id, column])
