"""A campaign's cells counted by state: the row count and every step's statuses in one query (what `status`, the
UI's progress and `Campaign.status_counts` show)."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from engine.types import Status


def count_states(
    con: duckdb.DuckDBPyConnection, rows_table: str, step_tables: Mapping[str, str]
) -> tuple[int, dict[str, dict[str, int]]]:
    """The campaign's row count, and for each step of `step_tables` (step -> its table, in the order given) how
    many of its cells are in each status, by status name. A row with no cell in a step's table was never computed:
    it counts as empty."""
    steps = list(step_tables)
    parts = [f"SELECT -1 AS step, NULL AS status, count(*) AS n FROM {rows_table}"]
    parts += [
        f"SELECT {i} AS step, status, count(*) AS n FROM {step_tables[step]} GROUP BY status"
        for i, step in enumerate(steps)
    ]
    found: dict[int, dict[str, int]] = {i: {} for i in range(len(steps))}
    total = 0
    for i, status, n in con.execute(" UNION ALL ".join(parts)).fetchall():
        if i < 0:
            total = int(n)
        else:
            found[i][status] = int(n)
    counts: dict[str, dict[str, int]] = {}
    for i, step in enumerate(steps):
        cells = found[i]
        empty = total - sum(cells.values())
        if empty:
            cells[Status.EMPTY.value] = cells.get(Status.EMPTY.value, 0) + empty
        counts[step] = dict(sorted(cells.items()))
    return total, counts
