"""The cells of a few rows (an edit, a click), read in one statement and kept as the run writes them, so each
planned column's cells are gathered from memory rather than by a join of its inputs' tables.

At a million records an edit spent half its time in those joins, one per downstream column: DuckDB plans each one
over whole tables before pruning them to the row. One UNION ALL BY NAME of small scans, each pruned to the rows by
its literal filter, reads every cell the run may look at. For an edit, one more statement over those rows alone
works out every downstream formula (value and key, with the engine's own SQL for them) as if each cell were
recomputed; a column takes its part while its inputs hold the values it was worked out from, and otherwise (a cell
upstream kept, pinned or failed; a run_if or required check) is gathered by a statement of its own.

Values come back typed as stored: each is cast to its column's type again before it is hashed or computed with
(a JSON value leaves DuckDB as text), so keys and values are exactly those the joins gave. Calls into DuckDB are
what an edit costs most (an edit made 41, now 19: tests/run/test_edit_calls.py), so small results are fetched as
Python values where their Arrow types are known, which costs DuckDB a third of exporting Arrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from engine.graph.fate import sql_literal
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope, key_expression
from engine.store.pause import pause_state_of, paused_names_sql
from engine.store.schema import quote
from engine.types import Status

# The Arrow type DuckDB gives the values of each column type (a DuckDB type name), as reads find them.
_ARROW_TYPES: dict[str, pa.DataType] = {}
ROWS, PAUSED = -1, -2  # the statement's rows saying a row exists, and naming what is paused (not a column's cells)
# What the run reads of a step cell besides its value: (field of the step table, the name it is read under).
FIELDS = (("status", "s"), ("key", "k"), ("run_id", "r"), ("waiting_on", "w"), ("error_code", "e"))


def _value(column: str) -> str:
    """The statement's column for `column`'s value; ':' cannot occur in a column name, so none meets another."""
    return f"v:{column}"


class FewRows:
    """Every cell of the scope's rows in the columns a run may read (its steps and their inputs), as stored when read
    and as the run then writes them (`update`); and what is paused in the campaign (`pause`)."""

    def __init__(
        self, campaign: CampaignTables, steps: Sequence[str], found: list[dict[str, Any]], types: dict[str, pa.DataType]
    ) -> None:
        self.campaign = campaign
        self.steps = list(steps)
        self.types = types  # each column's values' Arrow type
        self.guesses: dict[str, dict[int, tuple[Any, Any]]] = {}  # speculate: per formula and row, (value, key)
        self.guessed_from: dict[str, dict[str, dict[int, Any]]] = {}  # ... and the input values they came from
        self.rows = sorted(cell["row_id"] for cell in found if cell["c"] == ROWS)
        self.pause = pause_state_of(cell["paused"] for cell in found if cell["c"] == PAUSED)
        columns = self._columns()
        self.values: dict[str, dict[int, Any]] = {name: {} for name in columns}
        self.cells: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in columns if name in self.steps}
        for cell in found:
            if cell["c"] < 0:
                continue
            name, row = columns[cell["c"]], cell["row_id"]
            self.values[name][row] = cell[_value(name)]
            if name in self.cells:  # a step cell: its FIELDS
                self.cells[name][row] = {field: cell[alias] for field, alias in FIELDS}

    def _columns(self) -> list[str]:
        return columns_read(self.campaign, self.steps)

    @classmethod
    def read(
        cls, con: duckdb.DuckDBPyConnection, campaign: CampaignTables, steps: Sequence[str], scope: Scope
    ) -> FewRows:
        """Read the scope's cells in one statement, and what is paused in the campaign."""
        where = scope.filter()
        parts = [
            f"SELECT row_id, {ROWS} AS c FROM {campaign.rows_table} WHERE {where}",
            f"SELECT {PAUSED} AS c, column_name AS paused FROM ({paused_names_sql(campaign.campaign_id)})",
        ]
        columns = columns_read(campaign, steps)
        for i, name in enumerate(columns):
            fields = "".join(f", {field} AS {alias}" for field, alias in FIELDS) if name in steps else ""
            parts.append(
                f"SELECT row_id, {i} AS c, value AS {quote(_value(name))}{fields} "
                f"FROM {campaign.tables[name]} WHERE {where}"
            )
        sql = " UNION ALL BY NAME ".join(parts)
        value_types = {name: campaign.spec.column(name).value_type for name in columns}
        if all(_ARROW_TYPES.get(t) is not None and _exact(_ARROW_TYPES[t]) for t in value_types.values()):
            # each column's Arrow type is known from an earlier read: Python values cost DuckDB less than Arrow
            found = con.execute(sql).fetchall()
            names = [d[0] for d in con.description or []]
            records = [dict(zip(names, row, strict=True)) for row in found]
            return cls(campaign, steps, records, {n: _ARROW_TYPES[t] for n, t in value_types.items()})
        table = con.sql(sql).to_arrow_table()
        types = {name: table.schema.field(_value(name)).type for name in columns}
        _ARROW_TYPES.update({value_types[name]: type_ for name, type_ in types.items()})
        return cls(campaign, steps, table.to_pylist(), types)

    def statuses(self) -> dict[int, list[str]]:
        """Each row's step statuses, in step order (`empty` where a row has no cell)."""
        empty = Status.EMPTY.value
        return {row: [self.cells[step].get(row, {}).get("status") or empty for step in self.steps] for row in self.rows}

    def update(self, column: str, out: pa.Table) -> None:
        """Take in the cells of `column` the run has just written (`out`: rows of the step table)."""
        written = out.select(["row_id", "value", *(field for field, _ in FIELDS)]).to_pylist()
        for cell in written:
            row = cell["row_id"]
            self.values[column][row] = cell["value"]
            self.cells[column][row] = {field: cell[field] for field, _ in FIELDS}

    def gather(
        self,
        con: duckdb.DuckDBPyConnection,
        column: str,
        rows: Sequence[int],
        *,
        version: str,
        key_runs: bool,
        further: Sequence[str],
        facts: Sequence[str],
    ) -> pa.Table:
        """What the executor's gather gives for `column` in `rows`, from these cells: each row's input values (with
        live statuses and blame of step inputs, `s_`/`b_`), the statuses of `further` steps upstream, the new key
        (hashing `version`, and with `key_runs` the step inputs' run ids), the stored cell (old_*), and `facts`
        (SQL over the inputs: a formula's value, run_if, required)."""
        spec = self.campaign.spec.column(column)
        step_deps = [d for d in spec.deps if d in self.steps]
        arrays: dict[str, pa.Array] = {"row_id": pa.array(list(rows), pa.int64())}
        inner, outer = ["row_id"], ["row_id"]
        for dep in spec.deps:
            arrays[_value(dep)] = pa.array([self.values[dep].get(r) for r in rows], self.types[dep])
            inner.append(f"CAST({quote(_value(dep))} AS {self.campaign.spec.column(dep).value_type}) AS {quote(dep)}")
            outer.append(quote(dep))
            if dep in step_deps:
                for field, prefix in (("status", "s_"), ("waiting_on", "b_")):
                    arrays[prefix + dep] = self._field(dep, field, rows, pa.string())
                    inner.append(quote(prefix + dep))
                    outer.append(quote(prefix + dep))
                if key_runs:
                    arrays["r_" + dep] = self._field(dep, "run_id", rows, pa.int64())
                    inner.append(quote("r_" + dep))
        for ancestor in further:
            arrays["s_" + ancestor] = self._field(ancestor, "status", rows, pa.string())
            inner.append(quote("s_" + ancestor))
            outer.append(quote("s_" + ancestor))
        own = self.cells[column]
        arrays["old_status"] = pa.array([own[r]["status"] if r in own else None for r in rows], pa.string())
        arrays["old_key"] = self._field(column, "key", rows, pa.uint64())
        arrays[_value(column)] = pa.array([self.values[column].get(r) for r in rows], self.types[column])
        arrays["old_code"] = self._field(column, "error_code", rows, pa.string())
        arrays["_present"] = pa.array([r in own for r in rows], pa.bool_())
        inner += [
            f"coalesce(old_status, {sql_literal(Status.EMPTY)}) AS old_status",
            "old_key",
            f"CAST({quote(_value(column))} AS {spec.value_type}) AS old_value",
            "coalesce(old_code, '') AS old_code",
            "_present",
        ]
        refs = [quote(d) for d in spec.deps] + ([quote("r_" + d) for d in step_deps] if key_runs else [])
        outer.append(f"{key_expression(version, refs)} AS key")
        outer += ["old_status", "old_key", "old_value", "old_code", "_present"]
        con.register("_few", pa.table(arrays))
        sql = f"SELECT {', '.join([*outer, *facts])} FROM (SELECT {', '.join(inner)} FROM _few)"
        # The result's types are known (the inputs' and the column's own, the key's, the checks' booleans).
        value = self.types[column]
        known = {
            "key": pa.uint64(),
            "old_value": value,
            "new_value": value,
            "_run_if": pa.bool_(),
            "_missing": pa.bool_(),
        }
        known |= {dep: self.types[dep] for dep in spec.deps}
        names = [n for n in arrays if not n.startswith(("v:", "r_"))]
        types = {n: arrays[n].type for n in names} | known
        if not all(_exact(t) for t in types.values()):
            return con.sql(sql).to_arrow_table()
        found = con.execute(sql).fetchall()
        columns = [d[0] for d in con.description or []]
        return pa.table({n: pa.array([row[i] for row in found], types[n]) for i, n in enumerate(columns)})

    def speculate(self, con: duckdb.DuckDBPyConnection, formulas: Sequence[tuple[str, str, str]]) -> None:
        """Work out in one statement, for every row, each of `formulas` ((column, its value's SQL cast to its type,
        the version its key hashes), in topological order) as if every one of their cells were recomputed from its
        inputs' new values: each cell's new value and key. `guessed` hands them out for a column while its inputs
        still hold the values they were worked out from; a cell upstream kept, pinned or failed changes that, and
        the column is then gathered by a statement of its own (`gather`)."""
        self.guesses, self.guessed_from = {}, {}
        names = {name for name, _, _ in formulas}
        base = [c for c in self._columns() if c not in names]
        if not formulas or not self.rows or not all(_exact(self.types[c]) for c in self._columns()):
            return
        arrays = {"row_id": pa.array(self.rows, pa.int64())}
        arrays |= {_value(c): pa.array([self.values[c].get(r) for r in self.rows], self.types[c]) for c in base}
        cast = (f"CAST({quote(_value(c))} AS {self.campaign.spec.column(c).value_type}) AS {quote(c)}" for c in base)
        sql = f"SELECT row_id{''.join(', ' + c for c in cast)} FROM _few"
        # one level of the statement per depth: a formula is worked out beside those its inputs do not wait for
        depth: dict[str, int] = {}
        for name, _, _ in formulas:
            depth[name] = 1 + max((depth[d] for d in self.campaign.spec.column(name).deps if d in depth), default=-1)
        for level in range(1 + max(depth.values())):
            computed = []
            for name, expression, version in formulas:
                if depth[name] == level:
                    key = key_expression(version, [quote(d) for d in self.campaign.spec.column(name).deps])
                    computed.append(f"TRY({expression}) AS {quote(name)}, {key} AS {quote('key:' + name)}")
            sql = f"SELECT *, {', '.join(computed)} FROM ({sql})"
        wanted = "".join(f", {quote(name)}, {quote('key:' + name)}" for name, _, _ in formulas)
        con.register("_few", pa.table(arrays))
        found = con.execute(f"SELECT row_id{wanted} FROM ({sql})").fetchall()
        for i, (name, _, _) in enumerate(formulas):
            self.guesses[name] = {row[0]: (row[1 + 2 * i], row[2 + 2 * i]) for row in found}
        for name, _, _ in formulas:
            self.guessed_from[name] = {
                dep: {r: self.guesses[dep][r][0] if dep in names else self.values[dep].get(r) for r in self.rows}
                for dep in self.campaign.spec.column(name).deps
            }

    def guessed(self, column: str, rows: Sequence[int], *, further: Sequence[str], with_value: bool) -> pa.Table | None:
        """What `gather` gives for `column` in `rows` (without run_if or required checks, a formula's value with
        `with_value`), from `speculate`'s work when it still holds: every input of the column holds the value the
        column's new value and key were worked out from. None when it does not (or nothing was worked out)."""
        guesses = self.guesses.get(column)
        if guesses is None:
            return None
        spec = self.campaign.spec.column(column)
        for dep, used in self.guessed_from[column].items():
            current = self.values[dep]
            if any(current.get(r) != used.get(r) for r in rows):
                return None
        arrays: dict[str, pa.Array] = {"row_id": pa.array(list(rows), pa.int64())}
        for dep in spec.deps:
            arrays[dep] = pa.array([self.values[dep].get(r) for r in rows], self.types[dep])
            if dep in self.steps:
                arrays["s_" + dep] = self._field(dep, "status", rows, pa.string())
                arrays["b_" + dep] = self._field(dep, "waiting_on", rows, pa.string())
        for ancestor in further:
            arrays["s_" + ancestor] = self._field(ancestor, "status", rows, pa.string())
        own = self.cells[column]
        arrays["key"] = pa.array([guesses[r][1] for r in rows], pa.uint64())
        arrays["old_status"] = pa.array(
            [own[r]["status"] if r in own else Status.EMPTY.value for r in rows], pa.string()
        )
        arrays["old_key"] = self._field(column, "key", rows, pa.uint64())
        arrays["old_value"] = pa.array([self.values[column].get(r) for r in rows], self.types[column])
        arrays["old_code"] = pa.array([(own[r]["error_code"] if r in own else None) or "" for r in rows], pa.string())
        arrays["_present"] = pa.array([r in own for r in rows], pa.bool_())
        if with_value:
            arrays["new_value"] = pa.array([guesses[r][0] for r in rows], self.types[column])
        return pa.table(arrays)

    def _field(self, column: str, field: str, rows: Sequence[int], type_: pa.DataType) -> pa.Array:
        cells = self.cells[column]
        return pa.array([cells[r][field] if r in cells else None for r in rows], type_)


def _exact(type_: pa.DataType) -> bool:
    """Whether values of `type_` come back from DuckDB as Python values that Arrow takes back exactly."""
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _exact(type_.value_type)
    if pa.types.is_struct(type_):
        return all(_exact(type_.field(i).type) for i in range(type_.num_fields))
    if pa.types.is_timestamp(type_):
        return type_.unit == "us" and type_.tz is None
    return (
        pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_date32(type_)
        or pa.types.is_null(type_)
    )


def columns_read(campaign: CampaignTables, steps: Sequence[str]) -> list[str]:
    """The columns whose cells a run over `steps` may read: the steps and the inputs they read, in spec order."""
    wanted = set(steps) | {d for step in steps for d in campaign.spec.column(step).deps}
    return [name for name in campaign.spec.names if name in wanted]
