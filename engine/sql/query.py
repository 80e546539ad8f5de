"""Users' queries: one read-only SELECT over the workspace's views, its result in memory (written to a file, it is
an export: engine/io/exporter.py's `export_query`); and the rows of a campaign a user's SQL condition picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import QueryError
from engine.sql.needs import Needs, needs_of
from engine.sql.sandbox import Limits, open_sandbox
from engine.sql.statement import parse_read
from engine.store.schema import quote


def run_query(
    db_path: Path, sql: str, *, limits: Limits | None = None, busy_timeout: float = 30.0, reader: str | None = None
) -> pl.DataFrame:
    """The result of `sql` as a polars DataFrame (see engine/sql/views.py for the tables it can read; `reader`
    sees the actions the action library shows them)."""
    with open_sandbox(db_path, limits=limits, busy_timeout=busy_timeout, query=sql, reader=reader) as box:
        table = box.query(sql)
    result = pl.from_arrow(table)
    assert isinstance(result, pl.DataFrame)
    return result


def matching_rows(
    db_path: Path,
    campaign: str,
    where: str,
    *,
    offset: int = 0,
    limit: int = 50,
    limits: Limits | None = None,
    busy_timeout: float = 30.0,
    reader: str | None = None,
) -> tuple[int, list[int]]:
    """How many rows of `campaign` satisfy the SQL condition `where` (over its wide table: row_id and each
    column's value), and the ids of `limit` of them from `offset`, in row order. The condition is user SQL:
    the statement holding it is checked like a query before it runs, in the sandbox."""
    if not where.strip():
        raise QueryError("the where filter is empty", hint="write a condition, e.g. employees > 10, or leave it out")
    filtered = needs_of(f"SELECT 1 WHERE {where}")
    columns = None if filtered.columns is None else filtered.columns | {"row_id"}
    needs = Needs(filtered.tables, columns, filtered.looked_up).plus_tables(campaign)
    with open_sandbox(db_path, limits=limits, busy_timeout=busy_timeout, needs=needs, reader=reader) as box:
        layout = box.layout(campaign)  # NotFoundError naming the campaigns there are
        select = f"SELECT row_id FROM campaign.{quote(campaign)} w WHERE ({where}\n)"
        if not _only_filters(parse_read(box.con, select, what="where filter").tree):
            raise QueryError(
                "the where filter is more than a condition",
                hint="give only what follows WHERE, e.g. employees > 10 (a subquery in parentheses may read more)",
            )
        text = box.check(select, what="where filter")
        try:
            found = box.run(
                f"WITH m AS MATERIALIZED ({text}\n) SELECT (SELECT count(*) FROM m), (SELECT coalesce(list(row_id "
                f"ORDER BY row_id), []) FROM (SELECT row_id FROM m ORDER BY row_id LIMIT {int(limit)} "
                f"OFFSET {int(offset)}))"
            )
        except QueryError as err:
            if "Referenced column" not in err.message:
                raise
            known = ", ".join(["row_id", *(c.name for c in layout.columns)])
            raise QueryError(f"the where filter: {err.message}", hint=f"name columns of '{campaign}': {known}") from err
    total, ids = found[0]
    assert isinstance(total, int) and isinstance(ids, list)
    return total, [int(r) for r in ids]


def _only_filters(tree: dict[str, Any]) -> bool:
    """Whether a statement built as `SELECT row_id FROM <view> w WHERE (<condition>)` is still only that: the
    condition closed no parenthesis to add a UNION, GROUP BY, ORDER BY, LIMIT, QUALIFY or the like."""
    node = tree.get("node") or {}
    extras = ("modifiers", "group_expressions", "group_sets", "having", "qualify", "sample")
    return (
        node.get("type") == "SELECT_NODE"
        and not any(node.get(name) for name in extras)
        and not (node.get("cte_map") or {}).get("map")
    )
