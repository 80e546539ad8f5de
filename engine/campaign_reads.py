"""Looking at a campaign: a cell as stored, a page of the grid, status counts and every value, each read in one
short transaction. `Campaign` (engine/campaign.py) adds the requests that change or run it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from engine.errors import EditError
from engine.graph import Request
from engine.graph.fate import CURRENT, HAND_SET
from engine.run.lifecycle import reclaim_dead_runs, run_transaction
from engine.run.selection import check_rows
from engine.spec import CampaignSpec
from engine.sql.query import matching_rows
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.cells import Scope
from engine.store.counts import count_states
from engine.store.database import Database, frame, scalar
from engine.store.schema import quote
from engine.types import ErrorCode, Status

CELL_FIELDS = (
    "value",
    "status",
    "key",
    "waiting_on",
    "error_code",
    "error_message",
    "error_hint",
    "cost",
    "started_at",
    "finished_at",
    "run_id",
    "tokens",
    "latency_ms",
    "attempts",
    "provider_cost",
    "cached",
    "detail",
)


@dataclass(frozen=True)
class Cell:
    """One cell as stored: for input columns only `value` is set and `status` is done."""

    row_id: int
    column: str
    value: Any
    status: Status
    key: str | None = None
    waiting_on: str | None = None  # the upstream column a waiting or blocked (upstream_error) cell is gated on
    error_code: str | None = None
    error_message: str | None = None
    error_hint: str | None = None
    cost: float | None = None
    started_at: Any = None
    finished_at: Any = None
    run_id: int | None = None
    tokens: int | None = None
    latency_ms: float | None = None
    attempts: int | None = None
    provider_cost: float | None = None
    cached: bool | None = None
    detail: Any = None  # paid kinds: JSON provenance (model, rendered messages, cache key)

    @property
    def current(self) -> bool:
        """Whether the value is current (done, pinned or confirmed): what Save to Record may copy."""
        return self.status in CURRENT

    @property
    def blocked_by(self) -> str | None:
        """The upstream column whose error blocks this cell (an `upstream_error` cell), else None."""
        return self.waiting_on if self.error_code == ErrorCode.UPSTREAM_ERROR else None

    @property
    def hand_set(self) -> bool:
        """Whether the cell was edited by hand (pinned, or confirmed for export)."""
        return self.status in HAND_SET


@dataclass(frozen=True)
class Page:
    """A page of the grid: `rows[i][column]` is a Cell."""

    columns: list[str]
    row_ids: list[int]
    rows: list[dict[str, Cell]]
    total_rows: int
    offset: int


class CampaignReads:
    """Reads of one campaign, each in its own short transaction."""

    def __init__(self, db: Database, name: str, *, actor: str = "api", trigger: str = "api") -> None:
        self.db = db
        self.name = name
        self.actor = actor
        self.trigger = trigger

    def _load(self, con: duckdb.DuckDBPyConnection) -> CampaignTables:
        return load_campaign(con, self.name)

    @property
    def spec(self) -> CampaignSpec:
        with self.db.transaction() as con:
            return self._load(con).spec

    def row_count(self) -> int:
        with self.db.transaction() as con:
            tables = self._load(con)
            return int(scalar(con, f"SELECT count(*) FROM {tables.rows_table}"))

    def page(
        self,
        offset: int = 0,
        limit: int = 50,
        *,
        rows: Sequence[int] | None = None,
        columns: Sequence[str] | None = None,
        compute: bool = False,
        where: str | None = None,
    ) -> Page:
        """A page of the grid in row order. With `compute`, free auto cells on the page are brought up to date
        first (a lazy pull); paid ones are queued; python ones keep their stored value (reads never import code).
        `where` is an SQL condition over the wide table (row_id and each column's value), run in the query
        sandbox: the page holds the rows it picks, and `total_rows` counts them."""
        if where is not None:
            if rows is not None:
                raise EditError("give rows or a where condition, not both", hint="put the row ids in the condition")
            total, picked = matching_rows(
                self.db.path,
                self.name,
                where,
                offset=offset,
                limit=limit,
                busy_timeout=self.db.busy_timeout,
                reader=self.actor,
            )
            found = self.page(rows=picked, columns=columns, compute=compute)
            return Page(found.columns, found.row_ids, found.rows, total_rows=total, offset=offset)
        with self.db.transaction() as con:
            tables = self._load(con)
            reclaim_dead_runs(con, tables)  # cells a dead run held are shown as given back, not running
            names = list(columns) if columns is not None else tables.spec.names
            for name in names:
                tables.column(name)
            total = int(scalar(con, f"SELECT count(*) FROM {tables.rows_table}"))
            if rows is None:
                ids = [
                    r[0]
                    for r in con.execute(
                        f"SELECT row_id FROM {tables.rows_table} ORDER BY row_id LIMIT ? OFFSET ?", [limit, offset]
                    ).fetchall()
                ]
            else:
                ids = list(rows)
                check_rows(con, tables, ids)
            scope = Scope.rows(ids)
            if compute and ids:
                auto = tables.spec.graph.auto_steps()
                run_transaction(con, tables, Request.pull(auto), scope, actor=self.actor, trigger="pull")
            grid: dict[int, dict[str, Cell]] = {row_id: {} for row_id in ids}
            for name in names:
                for cell in _read_cells(con, tables, name, scope):
                    grid[cell.row_id][name] = cell
            ordered = [{name: grid[r].get(name) or _empty(tables, r, name) for name in names} for r in ids]
        return Page(columns=names, row_ids=ids, rows=ordered, total_rows=total, offset=offset)

    def status_counts(self) -> dict[str, dict[str, int]]:
        """For every step column, how many cells are in each status (cells never computed count as empty)."""
        with self.db.transaction() as con:
            tables = self._load(con)
            reclaim_dead_runs(con, tables)  # cells a dead run held are counted as given back, not running
            steps = tables.spec.graph.steps()
            return count_states(con, tables.rows_table, {c: tables.tables[c] for c in steps})[1]

    def values(self) -> pl.DataFrame:
        """Every row with the value of every column, as a polars DataFrame (row_id first)."""
        with self.db.transaction() as con:
            tables = self._load(con)
            selects = ", ".join(f"t{i}.value AS {quote(c)}" for i, c in enumerate(tables.spec.names))
            joins = " ".join(
                f"LEFT JOIN {tables.tables[c]} t{i} ON t{i}.row_id = r.row_id" for i, c in enumerate(tables.spec.names)
            )
            return frame(con, f"SELECT r.row_id, {selects} FROM {tables.rows_table} r {joins} ORDER BY r.row_id")


def _read_cells(con: duckdb.DuckDBPyConnection, tables: CampaignTables, column: str, scope: Scope) -> list[Cell]:
    table = tables.tables[column]
    if tables.column(column).is_input:
        found = con.execute(f"SELECT row_id, value FROM {table} WHERE {scope.filter()}").fetchall()
        return [Cell(row_id, column, value, Status.DONE) for row_id, value in found]
    cursor = con.execute(f"SELECT row_id, {', '.join(CELL_FIELDS)} FROM {table} WHERE {scope.filter()}")
    cells = []
    for row_id, value, status, key, *rest in cursor.fetchall():
        cells.append(Cell(row_id, column, value, Status(status), None if key is None else f"{key:016x}", *rest))
    return cells


def _empty(tables: CampaignTables, row_id: int, column: str) -> Cell:
    is_input = tables.column(column).is_input
    return Cell(row_id, column, None, Status.DONE if is_input else Status.EMPTY)
