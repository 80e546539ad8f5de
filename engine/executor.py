"""Carries out a request inside one transaction: plans every distinct status signature once, then executes
column by column in topological order, each column in one vectorized pass over its planned rows.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import duckdb
import polars as pl

from engine.cells import Batch, kind_named
from engine.cells.base import StepOptions
from engine.graph import Action, CellPlan, Request, plan_row
from engine.store.catalog import CampaignTables
from engine.store.database import frame, scalar
from engine.store.cells import Scope, gate_expression, key_expression, merge_outcomes
from engine.store.schema import literal, quote
from engine.types import FRESH_WHEN_KEY_MATCHES, HINTS, ErrorCode, Status

log = logging.getLogger(__name__)

ROW_LIST_LIMIT = 10_000  # events list the rows they touched up to this many
KEEP = "keep"


@dataclass(frozen=True)
class ExecutionEvent:
    """Something that happened to the cells of one column: `rows` lists them when there are few enough."""

    column: str
    outcome: str  # a Status value, or "keep" for cells whose key had not changed
    count: int
    rows: tuple[int, ...] | None


@dataclass
class RunReport:
    """What a run did, per column and outcome."""

    run_id: int
    events: list[ExecutionEvent] = field(default_factory=list)

    def counts(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for event in self.events:
            table[event.column][event.outcome] += event.count
        return dict(table)

    def computed(self, column: str) -> int:
        """How many cells of `column` were actually computed (whatever their outcome)."""
        return sum(
            e.count
            for e in self.events
            if e.column == column and e.outcome in ("done", "error", "skipped", "not_found")
        )


class Executor:
    """Executes requests for one campaign on one open transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, campaign: CampaignTables, run_id: int) -> None:
        self.con = con
        self.campaign = campaign
        self.graph = campaign.spec.graph
        self.run_id = run_id
        self.report = RunReport(run_id)

    def execute(self, request: Request, scope: Scope) -> RunReport:
        steps = self.graph.steps()
        if not steps:
            return self.report
        scope.prepare(self.con)
        groups = self._signatures(steps, scope)
        actions: dict[str, dict[CellPlan, list[str]]] = defaultdict(lambda: defaultdict(list))
        for signature in groups:
            states = {c: Status(s) for c, s in zip(steps, signature.split(","), strict=True)}
            for column, plan in plan_row(self.graph, states, request).items():
                actions[column][plan].append(signature)
        for column in steps:
            for plan, signatures in actions.get(column, {}).items():
                self._apply(column, plan, signatures, scope)
        return self.report

    def _signatures(self, steps: list[str], scope: Scope) -> list[str]:
        joins, parts = [], []
        for i, column in enumerate(steps):
            table = self.campaign.tables[column]
            joins.append(
                f"LEFT JOIN (SELECT row_id, status FROM {table} WHERE {scope.filter()}) s{i} ON s{i}.row_id = r.row_id"
            )
            parts.append(f"coalesce(s{i}.status, 'empty')")
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _sig AS SELECT r.row_id, concat_ws(',', {', '.join(parts)}) AS sig "
            f"FROM (SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}) r {' '.join(joins)}"
        )
        return [row[0] for row in self.con.execute("SELECT DISTINCT sig FROM _sig").fetchall()]

    def _apply(self, column: str, plan: CellPlan, signatures: list[str], scope: Scope) -> None:
        rows = f"SELECT row_id FROM _sig WHERE sig IN ({', '.join(literal(s) for s in signatures)})"
        self._gather_inputs(column, rows, scope)
        if plan.action is Action.RUN:
            self._run(column, plan.force, scope)
        elif plan.action is Action.QUEUE:
            self._write(column, scope, verdict_is_not=KEEP, status=Status.QUEUED, keep_value=True, key="old_key")
        elif plan.action is Action.STALE:
            self._write(column, scope, verdict_is_not=KEEP, status=Status.STALE, keep_value=True, key="old_key")
        elif plan.action is Action.WAIT:
            self._write(column, scope, status=Status.WAITING, keep_value=True, waiting_on=plan.blame)
        elif plan.action is Action.BLOCK:
            self._write_error(column, scope, "TRUE", ErrorCode.UPSTREAM_ERROR, f"upstream cell {plan.blame} failed")

    def _gather_inputs(self, column: str, rows_sql: str, scope: Scope) -> None:
        """_in: the planned rows with their input values, live upstream statuses, current key and verdict."""
        spec = self.campaign.spec.column(column)
        options = spec.options
        assert isinstance(options, StepOptions)
        selects, joins = [], []
        for i, dep in enumerate(spec.deps):
            table = self.campaign.tables[dep]
            is_step = not self.campaign.spec.column(dep).is_input
            status = f", status AS {quote('s_' + dep)}" if is_step else ""
            joins.append(
                f"LEFT JOIN (SELECT row_id, value AS {quote(dep)}{status} FROM {table} WHERE {scope.filter()}) d{i} "
                f"ON d{i}.row_id = r.row_id"
            )
            selects.append(f"d{i}.{quote(dep)}")
            if is_step:
                selects.append(f"d{i}.{quote('s_' + dep)}")
        step_deps = [d for d in spec.deps if not self.campaign.spec.column(d).is_input]
        key = key_expression(spec.version, [f"d{i}.{quote(dep)}" for i, dep in enumerate(spec.deps)])
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _in AS
            SELECT r.row_id, {''.join(s + ', ' for s in selects)} {key} AS key, {gate_expression(step_deps)} AS gate,
                   coalesce(cur.status, 'empty') AS old_status, cur.key AS old_key, cur.value AS old_value
            FROM ({rows_sql}) r {' '.join(joins)}
            LEFT JOIN (SELECT row_id, status, key, value FROM {self.campaign.tables[column]}
                       WHERE {scope.filter()}) cur ON cur.row_id = r.row_id"""
        )
        fresh = ", ".join(literal(s.value) for s in sorted(FRESH_WHEN_KEY_MATCHES | {Status.ERROR}))
        required = " OR ".join(f"{quote(f)} IS NULL OR trim({quote(f)}::VARCHAR) = ''" for f in options.required)
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _in AS SELECT *, CASE
                WHEN gate IS NOT NULL THEN gate
                WHEN old_key = key AND old_status IN ({fresh}) THEN '{KEEP}'
                WHEN NOT {str(options.enabled).upper()} THEN 'disabled'
                WHEN {f'NOT coalesce(({options.run_if})::BOOLEAN, FALSE)' if options.run_if else 'FALSE'} THEN 'skip'
                WHEN {required or 'FALSE'} THEN 'missing'
                ELSE 'run' END AS verdict FROM _in"""
        )

    def _run(self, column: str, forced: bool, scope: Scope) -> None:
        if forced:  # Run Again recomputes even a cell whose key has not changed
            self.con.execute("UPDATE _in SET verdict = 'run' WHERE verdict = 'keep'")
        self._record(column, KEEP, "verdict = 'keep'")
        self._write_error(column, scope, "starts_with(verdict, 'block:')", ErrorCode.UPSTREAM_ERROR, "")
        self._write(column, scope, status=Status.WAITING, keep_value=True, where="starts_with(verdict, 'wait:')")
        self._write_error(column, scope, "verdict = 'disabled'", ErrorCode.ACTION_DISABLED, "the step is disabled")
        self._write_error(
            column, scope, "verdict = 'missing'", ErrorCode.MISSING_REQUIRED_FIELD, "a required field is empty",
            keep_key=True,
        )
        self._write(column, scope, status=Status.SKIPPED, where="verdict = 'skip'", key="key")
        spec = self.campaign.spec.column(column)
        kind = kind_named(spec.kind)
        started = time.perf_counter()
        if hasattr(kind, "sql"):
            self._compute_sql(column, kind.sql(spec.options), spec.value_type, spec.deps)
        else:
            inputs = frame(
                self.con,
                f"SELECT row_id, {', '.join(quote(d) for d in spec.deps)} FROM _in WHERE verdict = 'run' ORDER BY row_id",
            )
            if inputs.height == 0:
                return
            outcomes = kind.compute(spec.options, Batch(column, inputs, self.run_id))  # type: ignore[attr-defined]
            self.con.register("_outcomes", outcomes.to_arrow())
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _out AS SELECT o.row_id, o.value::{spec.value_type} AS value,
                o.status, CASE WHEN o.status = 'error' AND o.error_code = 'upstream_error' THEN NULL ELSE i.key END
                AS key, NULL AS waiting_on, o.error_code, o.error_message, o.error_hint, o.cost
                FROM _outcomes o JOIN _in i USING (row_id)"""
            )
            self.con.unregister("_outcomes")
        self._merge_out(column, scope, time.perf_counter() - started)

    def _compute_sql(self, column: str, expression: str, value_type: str, deps: tuple[str, ...]) -> None:
        """One statement for every planned row. TRY() keeps one bad row from failing the statement (a failed
        statement would abort the whole transaction); rows where it gave NULL are checked for real errors."""
        value = f"TRY(({expression})::{value_type})"
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _out AS SELECT row_id, {value} AS value, 'done' AS status, key,
            NULL::VARCHAR AS waiting_on, NULL::VARCHAR AS error_code, NULL::VARCHAR AS error_message,
            NULL::VARCHAR AS error_hint, 0.0::DOUBLE AS cost FROM _in WHERE verdict = 'run'"""
        )
        names = ", ".join(["row_id", *(quote(d) for d in deps)])
        candidates = frame(self.con, f"SELECT {names} FROM _in WHERE verdict = 'run' AND {value} IS NULL")
        if candidates.height == 0:
            return
        code = ErrorCode.FORMULA_ERROR
        for row_id, message in failing_rows(candidates, f"({expression})::{value_type}").items():
            self.con.execute(
                "UPDATE _out SET status = 'error', error_code = ?, error_message = ?, error_hint = ? WHERE row_id = ?",
                [code.value, message, HINTS[code], row_id],
            )

    def _merge_out(self, column: str, scope: Scope, seconds: float) -> None:
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _out AS SELECT row_id, value, status, key, waiting_on, error_code,
            error_message, error_hint, cost, now()::TIMESTAMP - to_microseconds({int(seconds * 1e6)}) AS started_at,
            now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id FROM _out"""
        )
        merge_outcomes(self.con, self.campaign.tables[column], "_out", scope)
        for (status,) in self.con.execute("SELECT DISTINCT status FROM _out ORDER BY 1").fetchall():
            self._record(column, status, f"status = {literal(status)}", source="_out")

    def _write(
        self,
        column: str,
        scope: Scope,
        *,
        status: Status,
        where: str = "TRUE",
        verdict_is_not: str | None = None,
        keep_value: bool = False,
        key: str = "NULL",
        waiting_on: str | None = None,
    ) -> None:
        """Set the status of the _in rows matching `where`; `key` is the SQL of the key to store (the new `key`,
        the `old_key` that still describes a kept value, or NULL so that the cell is computed again)."""
        if verdict_is_not:
            where = f"({where}) AND verdict <> {literal(verdict_is_not)}"
        if verdict_is_not == KEEP:
            self._record(column, KEEP, "verdict = 'keep'")
        value = "old_value" if keep_value else "NULL"
        blame = literal(waiting_on) if waiting_on else "CASE WHEN starts_with(verdict, 'wait:') THEN verdict[6:] END"
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _out AS SELECT row_id, {value} AS value, {literal(status.value)} AS status,
            {key} AS key, {blame if status is Status.WAITING else 'NULL'} AS waiting_on, NULL AS error_code,
            NULL AS error_message, NULL AS error_hint, 0.0 AS cost, NULL::TIMESTAMP AS started_at,
            now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id FROM _in WHERE {where}"""
        )
        if status is Status.STALE:  # only cells with a value can be stale; the rest stay as they are
            self.con.execute(
                "DELETE FROM _out WHERE row_id IN (SELECT row_id FROM _in WHERE old_status NOT IN "
                "('done', 'skipped', 'not_found', 'error'))"
            )
        merge_outcomes(self.con, self.campaign.tables[column], "_out", scope)
        self._record(column, status.value, "TRUE", source="_out")

    def _write_error(
        self, column: str, scope: Scope, where: str, code: ErrorCode, message: str, keep_key: bool = False
    ) -> None:
        detail = (
            "'upstream cell ' || substr(verdict, 7) || ' failed'"
            if code is ErrorCode.UPSTREAM_ERROR and "verdict" in where
            else literal(message)
        )
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _out AS SELECT row_id, NULL AS value, 'error' AS status,
            {'key' if keep_key else 'NULL'} AS key, NULL AS waiting_on, {literal(code.value)} AS error_code,
            {detail} AS error_message, {literal(HINTS[code])} AS error_hint, 0.0 AS cost,
            NULL::TIMESTAMP AS started_at, now()::TIMESTAMP AS finished_at, {self.run_id} AS run_id
            FROM _in WHERE {where}"""
        )
        merge_outcomes(self.con, self.campaign.tables[column], "_out", scope)
        self._record(column, Status.ERROR.value, "TRUE", source="_out")

    def _record(self, column: str, outcome: str, where: str, source: str = "_in") -> None:
        count = scalar(self.con, f"SELECT count(*) FROM {source} WHERE {where}")
        if not count:
            return
        rows = None
        if count <= ROW_LIST_LIMIT:
            rows = tuple(r[0] for r in self.con.execute(f"SELECT row_id FROM {source} WHERE {where} ORDER BY 1").fetchall())
        self.report.events.append(ExecutionEvent(column, outcome, int(count), rows))
        paid = not kind_named(self.campaign.spec.column(column).kind).free
        if paid and source == "_out" and outcome != KEEP:
            self.con.execute(
                f"""INSERT INTO activity SELECT {self.run_id}, {self.campaign.campaign_id}, {literal(column)}, row_id,
                1, 'run', status, now(), NULL, cost FROM {source} WHERE {where}"""
            )
        else:
            self.con.execute(
                "INSERT INTO activity VALUES (?, ?, ?, NULL, ?, 'run', ?, now(), NULL, 0.0)",
                [self.run_id, self.campaign.campaign_id, column, count, outcome],
            )



def failing_rows(candidates: pl.DataFrame, expression: str) -> dict[int, str]:
    """The rows of `candidates` (row_id and input columns) on which `expression` raises, with DuckDB's message.

    They are evaluated in a scratch in-memory database, so a failure cannot abort the workspace's transaction;
    the search bisects, so a few bad rows among many cost a few statements.
    """
    failures: dict[int, str] = {}
    with duckdb.connect(":memory:") as scratch:
        scratch.register("_candidates", candidates.to_arrow())
        pending = [candidates["row_id"].to_list()]
        while pending:
            chunk = pending.pop()
            try:
                scratch.execute(
                    f"SELECT count({expression}) FROM _candidates WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
                    [chunk],
                ).fetchall()
            except duckdb.Error as err:
                if len(chunk) == 1:
                    failures[chunk[0]] = str(err).strip().splitlines()[0]
                else:
                    middle = len(chunk) // 2
                    pending += [chunk[:middle], chunk[middle:]]
    return failures
