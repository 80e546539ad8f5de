"""Plans shared by every row of a large scope: found from each step column's distinct statuses (a few small scans)
instead of a status signature per row (which costs a join of every step table)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import duckdb

from engine.graph import CellPlan, Request, plan_row
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope
from engine.types import Status

COMBINATIONS = 256  # status combinations planned, at most, to tell whether a scope plans the same everywhere


def uniform_plans(
    con: duckdb.DuckDBPyConnection, campaign: CampaignTables, steps: list[str], scope: Scope, request: Request
) -> dict[str, tuple[CellPlan, set[str]]] | None:
    """When every row of `scope` gets the same plan, each planned column's plan and the statuses its cells are in;
    else None. If every combination of the columns' distinct statuses plans the same, so does every row."""
    parts = [f"SELECT -1 AS step, NULL AS status, count(*) AS n FROM {campaign.rows_table} WHERE {scope.filter()}"]
    parts += [
        f"SELECT {i} AS step, status, count(*) AS n FROM {campaign.tables[column]} WHERE {scope.filter()} "
        "GROUP BY status"
        for i, column in enumerate(steps)
    ]
    found = con.execute(" UNION ALL ".join(parts)).fetchall()
    rows = sum(n for step, _, n in found if step < 0)
    sets: list[set[str]] = [set() for _ in steps]
    counts = [0] * len(steps)
    for step, status, n in found:
        if step >= 0:
            sets[step].add(status)
            counts[step] += n
    for i, counted in enumerate(counts):
        if counted < rows:  # rows without a cell in this column yet
            sets[i].add(Status.EMPTY.value)
    if not rows or math.prod(len(s) for s in sets) > COMBINATIONS:
        return None
    plans: dict[str, set[CellPlan | None]] = defaultdict(set)
    for combination in itertools.product(*(sorted(s) for s in sets)):
        states = {c: Status(s) for c, s in zip(steps, combination, strict=True)}
        planned = plan_row(campaign.spec.graph, states, request)
        for column in steps:
            plans[column].add(planned.get(column))
    if any(len(p) > 1 for p in plans.values()):
        return None
    return {column: (plan, sets[steps.index(column)]) for column, (plan,) in plans.items() if plan is not None}
