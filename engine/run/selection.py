"""A run selection: what a person asks a run to compute, in one typed shape.

The faces build one (the CLI's `run` flags, the API's body, the UI's run menu), the facade takes it
(`Campaign.run`, `start_run`, `estimate`), the `runs` table stores it in a run's `request` (`to_json`), and
`plan_selection` is the one place that turns it into the planner's `Request` and the store's `Scope`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from engine.errors import EditError, NotFoundError
from engine.graph import Request
from engine.graph.planner import DEFAULT_RUN_STATUSES
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope
from engine.store.database import scalar
from engine.types import Status


@dataclass(frozen=True)
class RunSelection:
    """Which cells a run computes.

    `columns`: the step columns (None: every auto-run step; named manual steps run too). `rows`: row ids (None:
    every row). Cells run when empty, stale, queued, waiting or paused; `only_stale` keeps the stale and queued
    ones, `only_empty` the empty and queued ones (both: their union). `force` is Run Again: every cell whatever its
    status, bypassing the cache; pinned cells are unpinned only when both `columns` and `rows` are given. `limit`
    keeps the first N rows of the selection. Build one with `of` to accept any iterables.
    """

    columns: tuple[str, ...] | None = None
    rows: tuple[int, ...] | None = None
    only_stale: bool = False
    only_empty: bool = False
    force: bool = False
    limit: int | None = None

    @classmethod
    def of(
        cls,
        columns: Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
        *,
        only_stale: bool = False,
        only_empty: bool = False,
        force: bool = False,
        limit: int | None = None,
    ) -> RunSelection:
        """A selection from loose arguments: rows sorted without repeats, columns in the order given."""
        return cls(
            None if columns is None else tuple(columns),
            None if rows is None else tuple(sorted({int(r) for r in rows})),
            only_stale=only_stale,
            only_empty=only_empty,
            force=force,
            limit=limit,
        )

    def statuses(self) -> frozenset[Status]:
        """The statuses of the cells this selection runs (all of them with `force`)."""
        if self.force:
            return frozenset(Status)
        if self.only_stale or self.only_empty:
            return frozenset(
                ({Status.STALE, Status.QUEUED} if self.only_stale else set())
                | ({Status.EMPTY, Status.QUEUED} if self.only_empty else set())
            )
        return DEFAULT_RUN_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The selection as a run's `request` stores it (rows as ranges, '1-3,7', to stay short)."""
        return {
            "columns": None if self.columns is None else list(self.columns),
            "rows": None if self.rows is None else format_rows(self.rows),
            "only_stale": self.only_stale,
            "only_empty": self.only_empty,
            "force": self.force,
            "limit": self.limit,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> RunSelection:
        """The selection `to_json` stored."""
        rows = stored.get("rows")
        columns = stored.get("columns")
        return cls(
            None if columns is None else tuple(columns),
            None if rows is None else tuple(parse_rows(rows)),
            only_stale=bool(stored.get("only_stale")),
            only_empty=bool(stored.get("only_empty")),
            force=bool(stored.get("force")),
            limit=stored.get("limit"),
        )


def as_selection(
    columns: RunSelection | Iterable[str] | None,
    rows: Iterable[int] | None,
    *,
    only_stale: bool,
    only_empty: bool,
    force: bool,
    limit: int | None,
) -> RunSelection:
    """The facade's arguments as one selection: a RunSelection given first is taken as it is (then the loose
    arguments must keep their defaults), else the loose arguments make one."""
    if isinstance(columns, RunSelection):
        if rows is not None or only_stale or only_empty or force or limit is not None:
            raise TypeError("give either a RunSelection or loose selection arguments, not both")
        return columns
    return RunSelection.of(columns, rows, only_stale=only_stale, only_empty=only_empty, force=force, limit=limit)


def plan_selection(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, selection: RunSelection
) -> tuple[Request, Scope]:
    """The planner's request and the rows it covers, for `selection` on `tables`' campaign. Raises EditError for
    an input column or a limit below 1, NotFoundError for a row the campaign does not have."""
    graph = tables.spec.graph
    if selection.columns is None:
        targets = graph.auto_steps()
    else:
        targets = list(selection.columns)
        for column in targets:
            if tables.column(column).is_input:
                raise EditError(f"'{column}' is an input column", hint="run a step column instead")
    chosen = None if selection.rows is None else list(selection.rows)
    if chosen is not None:
        check_rows(con, tables, chosen)
    if selection.limit is not None:
        if selection.limit < 1:
            raise EditError(f"limit {selection.limit} is not a positive number of rows", hint="give 1 or more")
        if chosen is None:
            found = con.execute(f"SELECT row_id FROM {tables.rows_table} ORDER BY row_id LIMIT ?", [selection.limit])
            chosen = [r[0] for r in found.fetchall()]
        else:
            chosen = chosen[: selection.limit]
    scope = Scope.all() if chosen is None else Scope.rows(chosen)
    if selection.force:  # pinned cells are only unpinned when someone picks them: given columns and rows
        request = Request.run_again(targets, unpin=selection.columns is not None and selection.rows is not None)
    else:
        request = Request.run(targets, statuses=selection.statuses())
    return request, scope


def check_rows(con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_ids: Sequence[int]) -> None:
    """Raise NotFoundError naming the lowest of `row_ids` the campaign does not have (one query for all)."""
    if not row_ids:
        return
    ids = [int(r) for r in row_ids]
    # The BETWEEN lets DuckDB skip row groups by their min/max, so checking one row stays cheap at any size.
    missing = scalar(
        con,
        f"SELECT min(r) FROM unnest($1::BIGINT[]) AS t(r) WHERE r NOT IN "
        f"(SELECT row_id FROM {tables.rows_table} WHERE row_id BETWEEN $2 AND $3)",
        [ids, min(ids), max(ids)],
    )
    if missing is not None:
        raise NotFoundError(
            f"campaign '{tables.spec.name}' has no row {missing}", hint="see the row ids with `runsheet show`"
        )


def format_rows(rows: Iterable[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3,7,9-10' (the CLI's --rows syntax)."""
    parts: list[str] = []
    ordered = sorted({int(r) for r in rows})
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            first, last = ordered[start], ordered[i - 1]
            parts.append(str(first) if first == last else f"{first}-{last}")
            start = i
    return ",".join(parts)


def parse_rows(text: str) -> list[int]:
    """'1,2,10-12' -> [1, 2, 10, 11, 12] ('' -> []); raises ValueError on anything else."""
    rows: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        first, _, last = part.strip().partition("-")
        rows.extend(range(int(first), int(last or first) + 1))
    return rows
