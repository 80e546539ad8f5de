"""The fused formula pass: when a large run plans every row of its scope the same way, its formula columns are
computed together in one statement, as a hand-written query would, and only the cells whose value, key or status
changed are written back.

A cell that was `done` keeps its stored key when none of its inputs changed in this run (rule 2: `done` means the
stored key is the current key; every writer of inputs or specs re-plans the cells downstream), so its key is not
hashed again; and a recomputed cell whose value came out the same is left as it is on disk (its run and times stay
those of the run that produced the value). Run Again still recomputes every cell and counts them all; a column read
by a step that keys on its upstream runs (export) is rewritten in full, so Run Again re-sends it (rule 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.cells.formula import failing_rows
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope, key_expression, merge_outcomes, update_outcomes
from engine.store.schema import quote

# Statuses a fused column's cells may be in: with Run Again any settled or hand-set one; otherwise only those a
# run recomputes or keeps by its key alone (an error is kept by rule 9 and a skip needs run_if: the general path).
FORCED_STATUSES = frozenset({"done", "stale", "queued", "empty", "error", "pinned", "confirmed"})
PLAIN_STATUSES = frozenset({"done", "stale", "queued", "empty"})
# A cell's fate in the pass, as bits: recomputed (else kept), rewritten, and TRY() gave NULL (it may have raised).
RAN, WRITE, NULL = 1, 2, 4


@dataclass(frozen=True)
class FusedColumn:
    """A formula column of the pass: its SQL (cast to its type), its inputs, the version its keys hash, whether
    this is Run Again, whether every recomputed cell must be rewritten (a downstream step keys on its runs), and
    whether its stored keys may be kept (not when its version changed: a spec or context edit)."""

    name: str
    expression: str
    deps: tuple[str, ...]
    version: str
    forced: bool
    stamp_all: bool
    same_version: bool


@dataclass(frozen=True)
class FusedResult:
    """Per fused column: the rows whose cell was recomputed, and whether any cell was written."""

    ran: dict[str, pa.ChunkedArray]
    row_ids: pa.ChunkedArray
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
        self._complete_columns: set[str] = set()  # columns with a cell in every row of the scope (see statement)

    def _complete(self, tables: Sequence[str], scope: Scope) -> set[str]:
        """The columns among `tables` with a cell in every row of the scope: joined with an inner join, which
        DuckDB runs about twice as fast as an outer one (a row has at most one cell per column)."""
        parts = [f"SELECT NULL AS name, count(*) AS n FROM {self.campaign.rows_table} WHERE {scope.filter()}"]
        parts += [
            f"SELECT '{i}' AS name, count(*) AS n FROM {self.campaign.tables[name]} WHERE {scope.filter()}"
            for i, name in enumerate(tables)
        ]
        counts = dict(self.con.execute(" UNION ALL ".join(parts)).fetchall())
        rows = counts.pop(None)
        return {tables[int(i)] for i, n in counts.items() if n == rows}

    def statement(self, scope: Scope) -> str:
        """The SELECT computing every fused column with its old cell and new key, and each cell's fate: a bit
        mask of RAN (recomputed, not kept), WRITE (its value, key or status changed) and NULL (TRY() gave NULL)."""
        outside = sorted({d for c in self.columns for d in c.deps} - self.fused)
        complete = self._complete_columns = self._complete([*outside, *(c.name for c in self.columns)], scope)

        def join(name: str, alias: str, select: str) -> str:
            kind = "JOIN" if name in complete else "LEFT JOIN"
            return (
                f"{kind} (SELECT row_id, {select} FROM {self.campaign.tables[name]} WHERE {scope.filter()}) {alias} "
                f"ON {alias}.row_id = r.row_id"
            )

        joins = [join(dep, f"d{i}", f"value AS {quote(dep)}") for i, dep in enumerate(outside)]
        joins += [
            join(c.name, f"c{i}", f"value AS {_name('old', c.name)}, status AS {_name('status', c.name)}, "
                 f"key AS {_name('key', c.name)}")
            for i, c in enumerate(self.columns)
        ]
        sql = (
            f"SELECT r.row_id{''.join(f', {quote(d)}' for d in outside)}"
            f"{''.join(f', {_name(p, c.name)}' for c in self.columns for p in ('old', 'status', 'key'))} "
            f"FROM (SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}) r {' '.join(joins)}"
        )
        for column in self.columns:  # each level adds one column's new value, read by the levels after it
            sql = f"SELECT *, TRY({column.expression}) AS {quote(column.name)} FROM ({sql})"
        facts = ", ".join(  # each computed once: the key and the fate of a cell and of its readers use them
            f"coalesce({_name('status', c.name)} = 'done', FALSE) AS {_name('done', c.name)}, "
            f"{quote(c.name)} IS NOT DISTINCT FROM {_name('old', c.name)} AS {_name('same', c.name)}"
            for c in self.columns
        )
        sql = f"SELECT *, {facts} FROM ({sql})"
        trusted = ", ".join(f"{self._trusted(c)} AS {_name('trusted', c.name)}" for c in self.columns)
        sql = f"SELECT *, {trusted} FROM ({sql})"
        keys = ", ".join(
            f"CASE WHEN {_name('trusted', c.name)} THEN {_name('key', c.name)} "
            f"ELSE {key_expression(c.version, [quote(d) for d in c.deps])} END AS {_name('new_key', c.name)}"
            for c in self.columns
        )
        sql = f"SELECT *, {keys} FROM ({sql})"
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

    def _trusted(self, column: FusedColumn) -> str:
        """Whether a cell's stored key is still its key: it is done, its version did not change, and no input it
        reads changed value in this run (then its key is not hashed again)."""
        if not column.same_version:
            return "FALSE"
        return " AND ".join(_name(fact, name) for fact, name in [
            ("done", column.name), *(("same", d) for d in column.deps if d in self.fused)
        ])

    def run(self, scope: Scope) -> FusedResult | None:
        """Compute and write the fused columns. None, with nothing written, when a formula raises in some row:
        the caller then takes the general path, which records those errors cell by cell."""
        statement = self.statement(scope)
        wanted = ["row_id"]
        for c in self.columns:  # new values and keys only where they are written: most often nowhere
            fate = _name("fate", c.name)
            rewritten = f"{fate} & {WRITE} <> 0"
            wanted += [fate, f"CASE WHEN {rewritten} THEN {quote(c.name)} END AS {_name('value', c.name)}",
                       f"CASE WHEN {rewritten} THEN {_name('new_key', c.name)} END AS {_name('new_key', c.name)}"]
        cells = self.con.sql(f"SELECT {', '.join(wanted)} FROM ({statement})").to_arrow_table()
        fates = {c.name: cells.column(f"fate:{c.name}") for c in self.columns}
        if self._raises(cells.column("row_id"), fates, statement):
            return None
        self.con.register("_fused", cells)
        written: set[str] = set()
        for column in self.columns:
            if pc.any(_has(fates[column.name], WRITE)).as_py():
                self._write(column, scope)
                written.add(column.name)
        ran = {name: _has(fate, RAN) for name, fate in fates.items()}
        return FusedResult(ran=ran, row_ids=cells.column("row_id"), written=written)

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

    def _write(self, column: FusedColumn, scope: Scope) -> None:
        """Replace the cells of `column` the pass rewrites: done, with the new value and key, stamped by this run."""
        source = (
            f"(SELECT row_id, {_name('value', column.name)} AS value, 'done' AS status, "
            f"{_name('new_key', column.name)} AS key, "
            "NULL AS waiting_on, NULL AS error_code, NULL AS error_message, NULL AS error_hint, 0.0 AS cost, "
            f"now()::TIMESTAMP AS started_at, now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id, "
            "NULL AS tokens, NULL AS latency_ms, NULL AS attempts, NULL AS provider_cost, NULL AS cached, "
            f"NULL AS detail FROM _fused WHERE {_name('fate', column.name)} & {WRITE} <> 0)"
        )
        table = self.campaign.tables[column.name]
        if column.name in self._complete_columns:  # every rewritten cell exists: updated in place, no sort
            update_outcomes(self.con, table, source)
        else:
            merge_outcomes(self.con, table, source, scope)


def _has(fates: pa.ChunkedArray, bit: int) -> pa.ChunkedArray:
    """Per cell, whether its fate has `bit`."""
    return pc.not_equal(pc.bit_wise_and(fates, pa.scalar(bit, pa.uint8())), pa.scalar(0, pa.uint8()))
