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

from engine.store.catalog import CampaignTables
from engine.store.cells import Scope, key_expression, merge_outcomes
from engine.store.schema import quote

# Statuses a fused column's cells may be in: with Run Again any settled or hand-set one; otherwise only those a
# run recomputes or keeps by its key alone (an error is kept by rule 9 and a skip needs run_if: the general path).
FORCED_STATUSES = frozenset({"done", "stale", "queued", "empty", "error", "pinned", "confirmed"})
PLAIN_STATUSES = frozenset({"done", "stale", "queued", "empty"})


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

    ran: dict[str, pa.Array]
    row_ids: pa.Array
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

    def statement(self, scope: Scope) -> str:
        """The SELECT computing every fused column with its old cell, key, verdict and whether it is rewritten."""
        outside = sorted({d for c in self.columns for d in c.deps} - self.fused)
        joins = [
            f"LEFT JOIN (SELECT row_id, value AS {quote(dep)} FROM {self.campaign.tables[dep]} WHERE {scope.filter()}) "
            f"d{i} ON d{i}.row_id = r.row_id"
            for i, dep in enumerate(outside)
        ]
        joins += [
            f"LEFT JOIN (SELECT row_id, value AS {_name('old', c.name)}, status AS {_name('status', c.name)}, "
            f"key AS {_name('key', c.name)} FROM {self.campaign.tables[c.name]} WHERE {scope.filter()}) "
            f"c{i} ON c{i}.row_id = r.row_id"
            for i, c in enumerate(self.columns)
        ]
        sql = (
            f"SELECT r.row_id{''.join(f', {quote(d)}' for d in outside)}"
            f"{''.join(f', {_name(p, c.name)}' for c in self.columns for p in ('old', 'status', 'key'))} "
            f"FROM (SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}) r {' '.join(joins)}"
        )
        for column in self.columns:  # each level adds one column's new value, read by the levels after it
            sql = f"SELECT *, TRY({column.expression}) AS {quote(column.name)} FROM ({sql})"
        for column in self.columns:
            sql = f"SELECT *, {self._key(column)} AS {_name('new_key', column.name)} FROM ({sql})"
        verdicts = []
        for column in self.columns:
            status, key = _name("status", column.name), _name("new_key", column.name)
            kept = "FALSE" if column.forced else f"coalesce({status} = 'done' AND {key} = {_name('key', column.name)}, FALSE)"
            same = (
                f"coalesce({status} = 'done', FALSE) AND {key} IS NOT DISTINCT FROM {_name('key', column.name)} "
                f"AND {quote(column.name)} IS NOT DISTINCT FROM {_name('old', column.name)}"
            )
            written = "TRUE" if column.stamp_all else f"NOT ({same})"
            verdicts.append(
                f"NOT {kept} AS {_name('ran', column.name)}, "
                f"NOT {kept} AND {written} AS {_name('write', column.name)}, "
                f"NOT {kept} AND {quote(column.name)} IS NULL AS {_name('null', column.name)}"
            )
        return f"SELECT *, {', '.join(verdicts)} FROM ({sql})"

    def _key(self, column: FusedColumn) -> str:
        """The cell's key: the stored one while its cell is done and no input it reads changed in this run (so it
        is not hashed again), else the key expression over its inputs' new values."""
        changed = [
            f"{quote(d)} IS DISTINCT FROM {_name('old', d)}" for d in column.deps if d in self.fused
        ]
        fresh = key_expression(column.version, [quote(d) for d in column.deps])
        if not column.same_version:
            return fresh
        trusted = " AND ".join([f"coalesce({_name('status', column.name)} = 'done', FALSE)", *(f"NOT ({c})" for c in changed)])
        return f"CASE WHEN {trusted} THEN {_name('key', column.name)} ELSE {fresh} END"

    def run(self, scope: Scope) -> FusedResult | None:
        """Compute and write the fused columns. None, with nothing written, when a formula raises in some row:
        the caller then takes the general path, which records those errors cell by cell."""
        statement = self.statement(scope)
        wanted = ["row_id"]
        for c in self.columns:  # new values and keys only where they are written: most often nowhere
            write = _name("write", c.name)
            wanted += [_name("ran", c.name), write, _name("null", c.name),
                       f"CASE WHEN {write} THEN {quote(c.name)} END AS {_name('value', c.name)}",
                       f"CASE WHEN {write} THEN {_name('new_key', c.name)} END AS {_name('new_key', c.name)}"]
        cells = self.con.sql(f"SELECT {', '.join(wanted)} FROM ({statement})").to_arrow_table()
        if self._raises(cells, statement):
            return None
        self.con.register("_fused", cells)
        written: set[str] = set()
        for column in self.columns:
            if pc.any(cells.column(f"write:{column.name}")).as_py():
                self._write(column, scope)
                written.add(column.name)
        ran = {c.name: cells.column(f"ran:{c.name}") for c in self.columns}
        return FusedResult(ran=ran, row_ids=cells.column("row_id"), written=written)

    def _raises(self, cells: pa.Table, statement: str) -> bool:
        """Whether a formula raised in a row where TRY() gave NULL (checked outside the transaction, as the
        general path does, on just those rows and their inputs)."""
        from engine.executor import failing_rows  # the executor imports this module

        for column in self.columns:
            nulls = pc.filter(cells.column("row_id"), cells.column(f"null:{column.name}"))
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
            f"(SELECT row_id, {_name('value', column.name)} AS value, 'done' AS status, {_name('new_key', column.name)} AS key, "
            "NULL AS waiting_on, NULL AS error_code, NULL AS error_message, NULL AS error_hint, 0.0 AS cost, "
            f"now()::TIMESTAMP AS started_at, now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id, "
            "NULL AS tokens, NULL AS latency_ms, NULL AS attempts, NULL AS provider_cost, NULL AS cached, "
            f"NULL AS detail FROM _fused WHERE {_name('write', column.name)}) AS _rewritten"
        )
        merge_outcomes(self.con, self.campaign.tables[column.name], source, scope)

