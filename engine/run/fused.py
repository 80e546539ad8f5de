"""The fused formula pass: when a large run plans every row of its scope the same way, its formula columns are
computed together in one statement, as a hand-written query would, and only the cells whose value, key or status
changed are written back.

A cell that was `done` keeps its stored key when none of its inputs changed in this run (rule 2: `done` means the
stored key is the current key; every writer of inputs or specs re-plans the cells downstream), so its key is not
hashed again; and a recomputed cell whose value came out the same is left as it is on disk (its run and times stay
those of the run that produced the value). Run Again still recomputes every cell and counts them all; a column read
by a step that keys on its upstream runs (export) is rewritten in full, so Run Again re-sends it (rule 7).

Tables that hold the row registry's rows in its order (every writer updates cells in place) are lined up by
position instead of joined on row_id; a positional scan runs on one thread, so over a whole table the statement is
split into ranges of rows, one per thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.cells.formula import failing_rows
from engine.graph.fate import FRESH_WHEN_KEY_MATCHES, sql_in, sql_literal
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope, aligned_tables, key_expression, merge_outcomes, update_outcomes
from engine.store.schema import quote
from engine.types import Status

# The statuses a fused column's cells may be in are engine/graph/fate.py's FUSABLE (FUSABLE_FORCED with Run Again).
# A cell's fate in the pass, as bits: recomputed (else kept), rewritten, and TRY() gave NULL (it may have raised).
RAN, WRITE, NULL = 1, 2, 4
# Each parallel branch of a statement over tables joined by position reads at least this many rows.
SPLIT_ROWS = 100_000


@dataclass(frozen=True)
class FusedColumn:
    """A formula column of the pass: its SQL (cast to its type), its inputs, the version its keys hash, whether
    this is Run Again, whether every recomputed cell must be rewritten (a downstream step keys on its runs),
    whether its stored keys may be kept (not when its version changed: a spec or context edit), and the statuses
    its cells in the scope are in (`empty` for rows without one)."""

    name: str
    expression: str
    deps: tuple[str, ...]
    version: str
    forced: bool
    stamp_all: bool
    same_version: bool
    statuses: frozenset[str]


@dataclass(frozen=True)
class Layout:
    """How the pass reads its tables: which have a cell in every row of the scope (joined with an inner join,
    which DuckDB runs about twice as fast as an outer one: a row has at most one cell per column), which hold the
    registry's rows in its order at its physical slots (joined by position, at next to no cost, where a hash join
    of a million rows costs 50-70 ms), and, when every table does, the ranges of slots read in parallel."""

    complete: set[str]
    aligned: set[str]
    ranges: list[tuple[int, int]]


@dataclass(frozen=True)
class FusedResult:
    """Per fused column: the rows whose cell was recomputed and those whose cell was kept; the columns with a cell
    written."""

    ran: dict[str, pa.ChunkedArray]
    kept: dict[str, pa.ChunkedArray]
    written: set[str]


def _name(prefix: str, column: str) -> str:
    """A working column of the statement; ':' cannot occur in a column name, so it never meets one."""
    return quote(f"{prefix}:{column}")


class FusedPass:
    """Computes `columns` (in topological order) for every row of `scope` on an open transaction."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, campaign: CampaignTables, columns: Sequence[FusedColumn], run_id: int
    ) -> None:
        self.con = con
        self.campaign = campaign
        self.columns = list(columns)
        self.run_id = run_id
        self.fused = {c.name for c in columns}
        self.layout = Layout(complete=set(), aligned=set(), ranges=[])  # how `statement` reads the tables

    def _layout(self, tables: Sequence[str], scope: Scope) -> Layout:
        """How to read `tables` for the scope (see Layout)."""
        aligned: set[str] = set()
        whole = scope.row_ids is None and scope.between is None  # by position only over whole tables
        if whole:
            db = str(self.con.execute("SELECT current_database()").fetchall()[0][0])
            by_table = {self.campaign.tables[name]: name for name in tables}
            pairs = [(self.campaign.rows_table, t) for t in by_table]
            aligned = {by_table[t] for t in aligned_tables(self.con, pairs, db, same_slots=True)}
        # a fused column's statuses say whether every row has a cell (`empty` stands for a missing one)
        known = {c.name for c in self.columns if Status.EMPTY.value not in c.statuses}
        rest = [name for name in tables if name not in aligned and name not in known]
        parts = [
            "SELECT NULL AS name, count(*) AS n, min(rowid) AS low, max(rowid) AS high "
            f"FROM {self.campaign.rows_table} WHERE {scope.filter()}"
        ]
        parts += [
            f"SELECT '{i}', count(*), NULL, NULL FROM {self.campaign.tables[name]} WHERE {scope.filter()}"
            for i, name in enumerate(rest)
        ]
        found = {name: (n, low, high) for name, n, low, high in self.con.execute(" UNION ALL ".join(parts)).fetchall()}
        rows, low, high = found.pop(None)
        complete = aligned | known | {rest[int(i)] for i, (n, _, _) in found.items() if n == rows}
        ranges: list[tuple[int, int]] = []
        parts_wanted = min(threads(self.con), rows // SPLIT_ROWS)
        every_slot = high - low + 1 == rows  # slots low..high, none deleted
        if whole and aligned >= set(tables) and parts_wanted > 1 and every_slot:
            bounds = [low + rows * k // parts_wanted for k in range(parts_wanted + 1)]
            ranges = [(bounds[k], bounds[k + 1] - 1) for k in range(parts_wanted)]
        return Layout(complete=complete, aligned=aligned, ranges=ranges)

    def statement(self, scope: Scope) -> str:
        """The SELECT computing every fused column with its old cell, whether the stored key still holds, and each
        cell's fate: a bit mask of RAN (recomputed, not kept), WRITE (its value, key or status changed) and NULL
        (TRY() gave NULL). New keys are left to the rows fetched (see `run`)."""
        outside = sorted({d for c in self.columns for d in c.deps} - self.fused)
        layout = self.layout = self._layout([*outside, *(c.name for c in self.columns)], scope)
        if not layout.ranges:
            return self._levels(self._source(outside, layout, scope, None))
        # A positional scan runs on one thread: each range of slots is scanned by its own branch, in parallel.
        return " UNION ALL ".join(self._levels(self._source(outside, layout, scope, r)) for r in layout.ranges)

    def _source(self, outside: list[str], layout: Layout, scope: Scope, slots: tuple[int, int] | None) -> str:
        """SELECT each row of the scope (in the range of `slots`, if given) with the inputs the fused columns read
        from outside the pass and each fused column's old value, status and key."""
        in_range = "" if slots is None else f" WHERE rowid BETWEEN {slots[0]} AND {slots[1]}"

        def join(name: str, alias: str, select: str) -> str:
            table = self.campaign.tables[name]
            if name in layout.aligned:
                return f"POSITIONAL JOIN (SELECT {select} FROM {table}{in_range}) {alias}"
            kind = "JOIN" if name in layout.complete else "LEFT JOIN"
            return (
                f"{kind} (SELECT row_id, {select} FROM {table} WHERE {scope.filter()}) {alias} "
                f"ON {alias}.row_id = r.row_id"
            )

        joins = [(dep, join(dep, f"d{i}", f"value AS {quote(dep)}")) for i, dep in enumerate(outside)]
        joins += [
            (
                c.name,
                join(
                    c.name,
                    f"c{i}",
                    f"value AS {_name('old', c.name)}, status AS {_name('status', c.name)}, "
                    f"key AS {_name('key', c.name)}",
                ),
            )
            for i, c in enumerate(self.columns)
        ]
        # the positional joins first, straight after the registry, whose order they line up with
        ordered = [j for name, j in joins if name in layout.aligned]
        ordered += [j for name, j in joins if name not in layout.aligned]
        if layout.aligned:
            registry = f"(SELECT row_id FROM {self.campaign.rows_table}{in_range})"
        else:
            registry = f"(SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()})"
        return (
            f"SELECT r.row_id{''.join(f', {quote(d)}' for d in outside)}"
            f"{''.join(f', {_name(p, c.name)}' for c in self.columns for p in ('old', 'status', 'key'))} "
            f"FROM {registry} r {' '.join(ordered)}"
        )

    def _levels(self, sql: str) -> str:
        """Over `sql` (see _source): the fused columns' new values, the facts about each cell, and its fate."""
        for column in self.columns:  # each level adds one column's new value, read by the levels after it
            sql = f"SELECT *, TRY({column.expression}) AS {quote(column.name)} FROM ({sql})"
        facts = ", ".join(  # each computed once: the key and the fate of a cell and of its readers use them
            f"{_done(c)} AS {_name('done', c.name)}, "
            f"{quote(c.name)} IS NOT DISTINCT FROM {_name('old', c.name)} AS {_name('same', c.name)}"
            for c in self.columns
        )
        sql = f"SELECT *, {facts} FROM ({sql})"
        trusted = ", ".join(f"{self._trusted(c)} AS {_name('trusted', c.name)}" for c in self.columns)
        sql = f"SELECT *, {trusted} FROM ({sql})"
        fates = []
        for column in self.columns:
            trusted, value = _name("trusted", column.name), quote(column.name)
            # a trusted cell keeps its key, so it is kept (unless forced) and rewritten only if its value changed;
            # any other cell gets a new key (a changed input or version), so it runs and is rewritten
            kept = "FALSE" if column.forced else trusted
            write = "TRUE" if column.stamp_all else f"NOT ({trusted} AND {_name('same', column.name)})"
            fates.append(
                f"CASE WHEN {kept} THEN 0 ELSE {RAN} + {WRITE} * ({write})::UTINYINT "
                f"+ {NULL} * ({value} IS NULL)::UTINYINT END::UTINYINT AS {_name('fate', column.name)}"
            )
        return f"SELECT *, {', '.join(fates)} FROM ({sql})"

    def _new_key(self, column: FusedColumn) -> str:
        """A cell's key: the stored one while it holds, else hashed from the version and the inputs."""
        return (
            f"CASE WHEN {_name('trusted', column.name)} THEN {_name('key', column.name)} "
            f"ELSE {key_expression(column.version, [quote(d) for d in column.deps])} END"
        )

    def _trusted(self, column: FusedColumn) -> str:
        """Whether a cell's stored key is still its key: it is done, its version did not change, and no input it
        reads changed value in this run (then its key is not hashed again)."""
        if not column.same_version:
            return "FALSE"
        return " AND ".join(
            _name(fact, name)
            for fact, name in [("done", column.name), *(("same", d) for d in column.deps if d in self.fused)]
        )

    def run(self, scope: Scope) -> FusedResult | None:
        """Compute and write the fused columns. None, with nothing written, when a formula raises in some row:
        the caller then takes the general path, which records those errors cell by cell."""
        statement = self.statement(scope)
        wanted = ["row_id"]
        for c in self.columns:  # new values and keys only where they are written: most often nowhere
            fate = _name("fate", c.name)
            rewritten = f"{fate} & {WRITE} <> 0"
            wanted += [
                fate,
                f"CASE WHEN {rewritten} THEN {quote(c.name)} END AS {_name('value', c.name)}",
                f"CASE WHEN {rewritten} THEN {self._new_key(c)} END AS {_name('new_key', c.name)}",
            ]
            if c.name not in self.layout.complete:  # whether the table holds the cell: updated, else appended
                wanted.append(f"{_name('status', c.name)} IS NOT NULL AS {_name('present', c.name)}")
        # Only the rows where some cell is rewritten or came out NULL are fetched: after a Run Again whose values
        # come out the same, none. They also tell which cells ran: a column that is not forced recomputes a cell
        # only for a new key, so it rewrites it too; a forced column recomputes every cell.
        fetched = f"({' | '.join(_name('fate', c.name) for c in self.columns)}) & {WRITE | NULL} <> 0"
        # ranges read in parallel need a sink that takes rows in any order (an ordered result takes them in turn)
        order = " ORDER BY row_id" if self.layout.ranges else ""
        cells = self.con.sql(f"SELECT {', '.join(wanted)} FROM ({statement}) WHERE {fetched}{order}").to_arrow_table()
        fates = {c.name: cells.column(f"fate:{c.name}") for c in self.columns}
        if self._raises(cells.column("row_id"), fates, statement):
            return None
        self.con.register("_fused", cells)
        written: set[str] = set()
        for column in self.columns:
            rewritten = _has(fates[column.name], WRITE)
            if pc.any(rewritten).as_py():
                self._write(column, scope, cells, rewritten)
                written.add(column.name)
        rows = (
            self.con.sql(f"SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}")
            .to_arrow_table()
            .column("row_id")
        )
        ran, kept = {}, {}
        for column in self.columns:
            if column.forced:
                ran[column.name], kept[column.name] = rows, rows.slice(0, 0)
                continue
            ran[column.name] = pc.filter(cells.column("row_id"), _has(fates[column.name], RAN))
            kept[column.name] = _other_rows(rows, ran[column.name])
        return FusedResult(ran=ran, kept=kept, written=written)

    def _raises(self, row_ids: pa.ChunkedArray, fates: dict[str, pa.ChunkedArray], statement: str) -> bool:
        """Whether a formula raised in a row where TRY() gave NULL (checked outside the transaction, as the
        general path does, on just those rows and their inputs)."""
        for column in self.columns:
            nulls = pc.filter(row_ids, _has(fates[column.name], NULL))
            if not len(nulls):
                continue
            names = ", ".join(["row_id", *(quote(d) for d in column.deps)])
            candidates = pl.from_arrow(
                self.con.sql(
                    f"SELECT {names} FROM ({statement}) WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
                    params=[nulls.to_pylist()],
                ).to_arrow_table()
            )
            assert isinstance(candidates, pl.DataFrame)
            if failing_rows(candidates, column.expression):
                return True
        return False

    def _write(self, column: FusedColumn, scope: Scope, cells: pa.Table, rewritten: pa.ChunkedArray) -> None:
        """Replace the cells of `column` the pass rewrites (`rewritten`, per row of `cells`, registered as _fused):
        done, with the new value and key, stamped by this run."""
        complete = column.name in self.layout.complete
        present = "TRUE" if complete else _name("present", column.name)
        source = (
            f"(SELECT row_id, {_name('value', column.name)} AS value, {sql_literal(Status.DONE)} AS status, "
            f"{_name('new_key', column.name)} AS key, "
            "NULL AS waiting_on, NULL AS error_code, NULL AS error_message, NULL AS error_hint, 0.0 AS cost, "
            f"now()::TIMESTAMP AS started_at, now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id, "
            "NULL AS tokens, NULL AS latency_ms, NULL AS attempts, NULL AS provider_cost, NULL AS cached, "
            f"NULL AS detail, {present} AS present FROM _fused WHERE {_name('fate', column.name)} & {WRITE} <> 0)"
        )
        table = self.campaign.tables[column.name]
        if complete:  # every rewritten cell exists: updated in place
            update_outcomes(self.con, table, source)
            return
        held = pc.and_(rewritten, cells.column(f"present:{column.name}"))
        merge_outcomes(
            self.con, table, source, scope, present=pc.sum(held).as_py() or 0, rows=pc.sum(rewritten).as_py() or 0
        )


def threads(con: duckdb.DuckDBPyConnection) -> int:
    """How many threads DuckDB runs a statement on."""
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


def _done(column: FusedColumn) -> str:
    """SQL for whether a cell of `column` holds the result for its key when its key matches (fate's
    FRESH_WHEN_KEY_MATCHES; of the statuses a fused cell may be in, only done): a constant when its statuses in
    the scope say so."""
    done = sql_in(_name("status", column.name), FRESH_WHEN_KEY_MATCHES, possible=column.statuses)
    return done if done in ("TRUE", "FALSE") else f"coalesce({done}, FALSE)"


def _other_rows(rows: pa.ChunkedArray, some: pa.ChunkedArray) -> pa.ChunkedArray:
    """The rows of `rows` that are not in `some` (a subset of them)."""
    if not len(some):
        return rows
    if len(some) == len(rows):
        return rows.slice(0, 0)
    return pc.filter(rows, pc.invert(pc.is_in(rows, value_set=some.combine_chunks())))


def _has(fates: pa.ChunkedArray, bit: int) -> pa.ChunkedArray:
    """Per cell, whether its fate has `bit`."""
    return pc.not_equal(pc.bit_wise_and(fates, pa.scalar(bit, pa.uint8())), pa.scalar(0, pa.uint8()))
