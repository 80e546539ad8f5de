"""A run selection: what a person asks a run to compute, in one typed shape.

The faces build one (the CLI's `run` flags, the API's body, the UI's run menu), the facade takes it
(`Campaign.run`, `start_run`, `estimate`), the `runs` table stores it in a run's `request` (`to_json`), and
`plan_selection` is the one place that turns it into the planner's `Request` and the store's `Scope`.
`count_errors` says how many cells of a scope are in error, by code, so no face calls a scope "up to date" while
some of its cells failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from engine.errors import EditError, NotFoundError
from engine.graph import Request
from engine.graph.fate import retried
from engine.graph.planner import DEFAULT_RUN_STATUSES
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope
from engine.store.database import scalar
from engine.types import ErrorCode, Status

ERROR_CODES = tuple(code.value for code in ErrorCode)  # what `--code` accepts, in the order of ErrorCode


@dataclass(frozen=True)
class RunSelection:
    """Which cells a run computes.

    `columns`: the step columns (None: every auto-run step; named manual steps run too). `rows`: row ids (None:
    every row). Cells run when empty, stale, queued, waiting or paused; `only_stale` keeps the stale and queued
    ones, `only_empty` the empty and queued ones (both: their union). `force` is Run Again: every cell whatever its
    status, bypassing the cache; pinned cells are unpinned only when both `columns` and `rows` are given. `errors`
    retries failed cells: only the cells of `columns` in error (with `error_code`, only those that failed with it)
    run, whatever their mode, and what they feed follows; `rows` and `limit` narrow them. `limit` keeps the first
    N rows of the selection. Build one with `of` to accept any iterables.
    """

    columns: tuple[str, ...] | None = None
    rows: tuple[int, ...] | None = None
    only_stale: bool = False
    only_empty: bool = False
    force: bool = False
    limit: int | None = None
    errors: bool = False
    error_code: str | None = None

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
        errors: bool = False,
        error_code: str | None = None,
    ) -> RunSelection:
        """A selection from loose arguments: rows sorted without repeats, columns in the order given; an
        `error_code` implies `errors`."""
        return cls(
            None if columns is None else tuple(columns),
            None if rows is None else tuple(sorted({int(r) for r in rows})),
            only_stale=only_stale,
            only_empty=only_empty,
            force=force,
            limit=limit,
            errors=errors or error_code is not None,
            error_code=error_code,
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
            **({"errors": True, "error_code": self.error_code} if self.errors else {}),
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
            errors=bool(stored.get("errors")),
            error_code=stored.get("error_code"),
        )

    @property
    def plain(self) -> RunSelection:
        """The same columns and rows without asking for failed cells: the scope whose errors a run reports."""
        return RunSelection(self.columns, self.rows, limit=self.limit)

    def retry_codes(self) -> frozenset[ErrorCode]:
        """The error codes whose cells this selection retries (none unless `errors`). Raises EditError for an
        unknown code, naming the known ones."""
        if self.error_code is not None and self.error_code not in ERROR_CODES:
            raise EditError(f"unknown error code '{self.error_code}'", hint=f"give one of: {', '.join(ERROR_CODES)}")
        if not self.errors and self.error_code is None:
            return frozenset()
        return frozenset(ErrorCode) if self.error_code is None else frozenset({ErrorCode(self.error_code)})


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
    an input column, a limit below 1, an unknown error code or failed cells asked for with another cell filter,
    NotFoundError for a row the campaign does not have. Failed cells (`errors`) cover the rows where a chosen
    column has a cell in error with a chosen code."""
    graph = tables.spec.graph
    codes = selection.retry_codes()
    if codes and (selection.force or selection.only_stale or selection.only_empty):
        raise EditError(
            "failed cells cannot be combined with Run Again, stale-only or empty-only",
            hint="ask for the failed cells alone (--errors), then run the rest",
        )
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
    if codes:
        chosen = rows_in_error(con, tables, targets, codes, chosen)
    if selection.limit is not None:
        if selection.limit < 1:
            raise EditError(f"limit {selection.limit} is not a positive number of rows", hint="give 1 or more")
        if chosen is None:
            found = con.execute(f"SELECT row_id FROM {tables.rows_table} ORDER BY row_id LIMIT ?", [selection.limit])
            chosen = [r[0] for r in found.fetchall()]
        else:
            chosen = chosen[: selection.limit]
    scope = Scope.all() if chosen is None else Scope.rows(chosen)
    if codes:
        return Request.retry_errors(targets, codes), scope
    if selection.force:  # pinned cells are only unpinned when someone picks them: given columns and rows
        request = Request.run_again(targets, unpin=selection.columns is not None and selection.rows is not None)
    else:
        request = Request.run(targets, statuses=selection.statuses())
    return request, scope


def rows_in_error(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    columns: Iterable[str],
    codes: Iterable[ErrorCode],
    among: Sequence[int] | None = None,
) -> list[int]:
    """The rows (of `among`, if given) where a cell of `columns` is in error with one of `codes`, in order."""
    wanted = [c.value for c in codes]
    parts = [
        f"SELECT row_id FROM {tables.tables[column]} WHERE status = $error AND list_contains($codes, error_code)"
        for column in columns
        if column in tables.tables
    ]
    if not parts:
        return []
    query = " UNION ".join(parts)
    found = {r[0] for r in con.execute(query, {"error": Status.ERROR.value, "codes": wanted}).fetchall()}
    if among is not None:
        found &= set(among)
    return sorted(found)


def count_errors(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, columns: Iterable[str], scope: Scope
) -> dict[str, int]:
    """How many cells of `columns` in `scope` are in error, by error code (most first)."""
    scope.prepare(con)
    parts = [
        f"SELECT error_code FROM {tables.tables[column]} WHERE status = $error AND {scope.filter()}"
        for column in columns
        if column in tables.tables
    ]
    if not parts:
        return {}
    found = con.execute(
        f"SELECT coalesce(error_code, 'unknown'), count(*) FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL",
        {"error": Status.ERROR.value},
    ).fetchall()
    counts = Counter({code: int(n) for code, n in found})
    return dict(counts.most_common())


def split_errors(counts: dict[str, int], request: Request) -> tuple[dict[str, int], dict[str, int]]:
    """`counts` (cells in error by code, before `request` runs) split into those it computes again and those it
    leaves in error: Run Again computes every cell, a retry of failed cells those of its codes, a plain run those
    that failed for a passing reason (fate.retried: rate limits, timeouts, Stop, credits)."""
    retried_codes = {c.value for c in request.retry}

    def again(code: str) -> bool:
        if request.force:
            return True
        return code in retried_codes or retried(Status.ERROR, code)

    return (
        {code: n for code, n in counts.items() if again(code)},
        {code: n for code, n in counts.items() if not again(code)},
    )


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
