"""Carries out a request inside one transaction: plans every distinct status signature once, then executes
column by column in topological order, each column in one vectorized pass over its planned rows.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.cells import Batch, kind_named
from engine.cells.base import SendEnv, StepOptions
from engine.cells.formula import Formula, FormulaOptions, failing_rows
from engine.graph import Action, CellPlan, Request, plan_row, sql_references
from engine.graph.fate import (
    EXECUTED,
    FRESH_WHEN_KEY_MATCHES,
    FUSABLE,
    FUSABLE_FORCED,
    HOLDING,
    Verdict,
    sql_in,
    sql_literal,
    sql_restored,
    sql_retried,
    values,
)
from engine.graph.references import ALL_CONTEXT
from engine.run import verdicts
from engine.run.few_rows import FewRows
from engine.run.fused import FusedColumn, FusedPass
from engine.run.reports import Claim, ExecutionEvent, RunReport
from engine.run.uniform import uniform_plans
from engine.runner.backend import Backend
from engine.store.catalog import CampaignTables
from engine.store.cells import PARAMETER_TYPES, Scope, key_expression, merge_outcomes, update_cell
from engine.store.context import context_versions
from engine.store.database import frame, scalar
from engine.store.outbox import decide_sends
from engine.store.pause import PauseState, pause_state
from engine.store.schema import literal, quote
from engine.store.settings import load_settings
from engine.types import HINTS, ErrorCode, Status

log = logging.getLogger(__name__)

FEW_ROWS = 64  # scopes up to this many rows (an edit, a click) are planned from one read of their cells (few_rows.py)
ROW_LIST_LIMIT = 10_000  # events list the rows they touched up to this many
KEEP = verdicts.KEEP  # the verdict of a cell that already holds the result for its key
RUN = f"'{Verdict.RUN.value}'"  # the verdict of a cell to compute, as an SQL literal
# The rows a plan covers: listed (a few rows, engine/run/few_rows.py), or SQL selecting their row ids.
Rows = list[int] | str
NOTHING_WRITTEN = pa.table(
    {"row_id": pa.nulls(0, pa.int64()), "status": pa.nulls(0, pa.string()), "cost": pa.nulls(0, pa.float64())}
)


class Executor:
    """Executes requests for one campaign on one open transaction."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        campaign: CampaignTables,
        run_id: int,
        *,
        actor: str,
        trigger: str,
        now: datetime | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.con = con
        self.campaign = campaign
        self.graph = campaign.spec.graph
        self.run_id = run_id
        self.who = (actor, trigger)
        self.report = RunReport(run_id)
        self._context: dict[str, str] | None = None
        self._pause: PauseState | None = None
        self._started: datetime | None = now  # the transaction's now(), when the caller knows it (_now)
        self._edited: set[str] | None = None  # on an edit request, the columns edited by hand
        self._respecified: set[str] = set()  # on a spec change, the columns whose spec (so whose keys) changed
        self._written: set[str] = set()  # columns this run has written cells of
        # per column, the rows whose cells wait on a paid result of this run and were left as stored (verdicts.held)
        self._held: dict[str, pa.Array] = {}
        self._in = pa.table({})  # the column being executed: its planned rows (registered as _in)
        self._summaries: list[list[object]] = []  # activity rows summed per column and outcome, written at the end
        # per column read by other steps, the rows whose cells a marking plan skipped by run_if (planned again)
        self._skipped: dict[str, set[int]] = {}
        self._requeued: dict[str, pa.Table] = {}  # per column, the failed cells a retry of errors queued, as they were
        # a scope of a few rows: their cells, read once, and the rows of each status signature (engine/run/few_rows.py)
        self._few: FewRows | None = None
        self._few_signed: dict[str, list[int]] = {}
        self._exposed: dict[str, pa.Table] = {}  # Arrow tables registered on the connection, by name
        # where a row-wise python step's values are computed (the run's backend: shards on Ray); None: here
        self._map_rows = None if backend is None else backend.map_rows

    def _paused(self, column: str) -> bool:
        """Whether the step, or its campaign, is paused (engine/store/pause.py): its cells are disabled."""
        if self._pause is None:
            self._pause = pause_state(self.con, self.campaign.campaign_id)
        return self._pause.stops(column, self.graph.nodes[column].free)

    def _version(self, column: str) -> str:
        """The spec version that goes into a column's keys, with the versions of the context documents it reads
        (so editing a document makes exactly the steps that read it stale)."""
        spec = self.campaign.spec.column(column)
        if not spec.context:
            return spec.version
        if self._context is None:
            self._context = context_versions(self.con)
        names = sorted(self._context) if ALL_CONTEXT in spec.context else spec.context
        return spec.version + "|" + ",".join(f"{n}={self._context.get(n, '')}" for n in names)

    def execute(self, request: Request, scope: Scope) -> RunReport:
        if not self.graph.steps():
            return self.report
        self._plan_and_apply(request, scope)
        # Cells that a marking plan (wait, block, queue, screen) skipped by their run_if were planned as unreadable
        # for what reads them: that is planned again, as after an edit of them, in the rows concerned.
        while self._skipped:
            columns, rows = set(self._skipped), sorted(set().union(*self._skipped.values()))
            self._skipped = {}
            self._plan_and_apply(Request.edit(columns, run_paid=request.run_paid), Scope.rows(rows))
        self._write_summaries()
        return self.report

    def _plan_and_apply(self, request: Request, scope: Scope) -> None:
        steps = self.graph.steps()
        scope.prepare(self.con)
        self._few = None  # read again for each plan (engine/run/few_rows.py): a large scope has none
        if request.retry:
            self._requeue_errors(request, scope)
        if request.kind == "run" and not request.force:
            self._requeue_retryable(request, scope)
        self._edited = set(request.columns) if request.kind == "edit" else None
        self._respecified = set(request.columns) if request.kind == "spec_change" else set()
        uniform = self._uniform_plans(steps, scope, request)
        if uniform is not None:
            self._execute_uniform(steps, uniform, scope)
            return
        groups = self._signatures(steps, scope)
        actions: dict[str, dict[CellPlan, list[str]]] = defaultdict(lambda: defaultdict(list))
        for signature in groups:
            states = {c: Status(s) for c, s in zip(steps, signature.split(","), strict=True)}
            for column, plan in plan_row(self.graph, states, request).items():
                actions[column][plan].append(signature)
        for column in steps:
            for plan, signatures in actions.get(column, {}).items():
                statuses = [s.split(",")[steps.index(column)] for s in signatures]
                if self._unchanged(column, plan, statuses):
                    self._keep_all(column, self._signed_rows(signatures))
                else:
                    self._apply(column, plan, self._signed_rows(signatures), scope)

    def _uniform_plans(
        self, steps: list[str], scope: Scope, request: Request
    ) -> dict[str, tuple[CellPlan, set[str]]] | None:
        """Each column's plan when it is the same for every row of a large scope (engine/run/uniform.py), else None."""
        if scope.row_ids is not None and len(scope.row_ids) <= FEW_ROWS:
            return None
        return uniform_plans(self.con, self.campaign, steps, scope, request)

    def _execute_uniform(self, steps: list[str], plans: dict[str, tuple[CellPlan, set[str]]], scope: Scope) -> None:
        """Execute plans that are the same for every row in scope: no signatures, every row of the scope planned."""
        rows = f"SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}"
        fused = self._fused_pass(steps, plans, scope)
        for column in steps:
            if column not in plans or column in fused:
                continue
            plan, statuses = plans[column]
            if self._unchanged(column, plan, sorted(statuses)):
                self._keep_all(column, rows)
            else:
                self._apply(column, plan, rows, scope)

    def _fused_pass(self, steps: list[str], plans: dict[str, tuple[CellPlan, set[str]]], scope: Scope) -> set[str]:
        """Compute the formula columns that run in every row together (engine/run/fused.py); returns those it did."""
        fusable: list[FusedColumn] = []
        for column in steps:
            spec = self.campaign.spec.column(column)
            options = spec.options
            if column not in plans or spec.kind != "formula" or self._edited is not None:
                continue
            assert isinstance(options, FormulaOptions)
            plan, statuses = plans[column]
            simple = options.enabled and not options.run_if and not options.required and not self._paused(column)
            allowed = values(FUSABLE_FORCED if plan.force else FUSABLE)
            reads = all(
                self.campaign.spec.column(d).is_input or d not in plans or d in {f.name for f in fusable}
                for d in spec.deps
            )
            if plan.action is not Action.RUN or not simple or not statuses <= allowed or not reads:
                continue
            readers = [c for c in steps if column in self.campaign.spec.column(c).deps]
            stamp_all = plan.force and any(
                kind_named(self.campaign.spec.column(r).kind).keys_on_upstream_runs for r in readers
            )
            expression = f"({Formula().sql(options)})::{spec.value_type}"
            same_version = column not in self._respecified
            fusable.append(
                FusedColumn(
                    column,
                    expression,
                    spec.deps,
                    self._version(column),
                    plan.force,
                    stamp_all,
                    same_version,
                    frozenset(statuses),
                )
            )
        if not fusable:
            return set()
        started = time.perf_counter()
        result = FusedPass(self.con, self.campaign, fusable, self.run_id).run(scope)
        if result is None:
            return set()
        seconds = (time.perf_counter() - started) / len(fusable)
        for fused in fusable:  # a recomputed cell is done: one that raised sent the whole pass back
            groups = [(Status.DONE.value, result.ran[fused.name]), (KEEP, result.kept[fused.name])]
            self._record_groups(fused.name, [(o, rows) for o, rows in groups if len(rows)], seconds)
        self._written |= result.written
        return {c.name for c in fusable}

    def _signed_rows(self, signatures: list[str]) -> Rows:
        """The rows whose status signature is one of `signatures`: listed for a few rows, else SQL selecting them."""
        if self._few is not None:
            return sorted(row for s in signatures for row in self._few_signed.get(s, []))
        return f"SELECT row_id FROM _sig WHERE sig IN ({', '.join(literal(s) for s in signatures)})"

    def _expose(self, name: str, table: pa.Table) -> None:
        """Register `table` as `name` for the statements that read it, unless it is already (each registration is a
        call into DuckDB: an edit's path skips those no statement reads)."""
        if self._exposed.get(name) is not table:
            self.con.register(name, table)
            self._exposed[name] = table

    def _unchanged(self, column: str, plan: CellPlan, statuses: list[str]) -> bool:
        """Early cutoff without reading anything: a cell whose status says it holds the result for its key, whose
        spec did not change and none of whose inputs was edited or rewritten by this run, still has that key; so
        it is kept (every writer of inputs and specs plans their downstream, so the status can be trusted)."""
        if plan.action in (Action.WAIT, Action.BLOCK) or plan.force or column in self._respecified:
            return False
        if not set(statuses) <= values(FRESH_WHEN_KEY_MATCHES):
            return False
        return not (set(self.campaign.spec.column(column).deps) & ((self._edited or set()) | self._written))

    def _keep_all(self, column: str, rows: Rows) -> None:
        if isinstance(rows, list):
            row_ids: pa.Array | pa.ChunkedArray = pa.array(rows, pa.int64())
        else:
            row_ids = self.con.sql(rows).to_arrow_table().column("row_id")
        self._in = pa.table({"row_id": row_ids, "verdict": verdicts.constant(KEEP, len(row_ids), pa.string())})
        self._record(column, NOTHING_WRITTEN, 0.0)

    def _write_summaries(self) -> None:
        """One statement for the summed activity rows of every column (an edit touches several), their values
        passed as parameters (registering them as a table would cost one more call into DuckDB)."""
        if not self._summaries:
            return
        row = "(?, ?, ?, ?, 'run', ?, now(), ?, 0.0, ?, ?)"
        params: list[object] = []
        for column, cells, outcome, duration in self._summaries:
            params += [self.run_id, self.campaign.campaign_id, column, cells, outcome, duration, *self.who]
        self.con.execute(
            "INSERT INTO activity (run_id, campaign_id, column_name, cells, action, outcome, logged_at, duration_ms, "
            f"cost, actor, trigger) VALUES {', '.join([row] * len(self._summaries))}",
            params,
        )

    def _requeue_retryable(self, request: Request, scope: Scope) -> None:
        """Cells of the requested columns (and their auto ancestors) that failed for a passing reason (timeout,
        rate limit, Stop, credits) are queued again, so a later run finishes them (rule 9 keeps the others)."""
        targets = set(request.columns)
        columns = targets | {c for c in self.graph.upstream(targets) if self.graph.nodes[c].auto}
        for column in self.graph.steps():
            if column in columns and not self.graph.nodes[column].free:
                self.con.execute(
                    f"""UPDATE {self.campaign.tables[column]}
                    SET status = {restore_status(self.graph.nodes[column].auto)},
                    error_code = NULL, error_message = NULL, error_hint = NULL
                    WHERE {sql_retried()} AND {scope.filter()}"""
                )

    def _requeue_errors(self, request: Request, scope: Scope) -> None:
        """A retry of failed cells: the cells of the requested columns in error with one of `request.retry`'s
        codes are queued, whatever their mode, so the request (which runs queued cells) computes exactly them."""
        for column in self.graph.steps():
            if column in request.columns:
                table, where = self.campaign.tables[column], f"{sql_retried(codes=request.retry)} AND {scope.filter()}"
                # kept as they were, to be put back if their call is refused or never made (a refusal changes nothing)
                failed = self.con.sql(f"SELECT * FROM {table} WHERE {where}").to_arrow_table()
                if failed.num_rows:
                    self._requeued[column] = failed
                self.con.execute(
                    f"""UPDATE {table}
                    SET status = {sql_literal(Status.QUEUED)}, waiting_on = NULL, error_code = NULL,
                    error_message = NULL, error_hint = NULL
                    WHERE {where}"""
                )

    def _materialize(self, name: str, select: str) -> pa.Table:
        """Run `select` and expose its result to later statements as `name`. An Arrow table registered on the
        connection costs far less than a temp table's DDL, which matters on the edit path."""
        table = self.con.sql(select).to_arrow_table()
        self._expose(name, table)
        return table

    def _signatures(self, steps: list[str], scope: Scope) -> list[str]:
        """Each row's status signature (its steps' statuses, in order), registered as _sig; returns the distinct
        ones."""
        if scope.row_ids is not None and len(scope.row_ids) <= FEW_ROWS:
            return self._few_signatures(steps, scope)
        joins, parts = [], []
        for i, column in enumerate(steps):
            table = self.campaign.tables[column]
            joins.append(
                f"LEFT JOIN (SELECT row_id, status FROM {table} WHERE {scope.filter()}) s{i} ON s{i}.row_id = r.row_id"
            )
            parts.append(f"coalesce(s{i}.status, {sql_literal(Status.EMPTY)})")
        signatures = self._materialize(
            "_sig",
            f"SELECT r.row_id, concat_ws(',', {', '.join(parts)}) AS sig "
            f"FROM (SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}) r {' '.join(joins)}",
        )
        return pc.unique(signatures.column("sig")).to_pylist()  # type: ignore[no-any-return]

    def _few_signatures(self, steps: list[str], scope: Scope) -> list[str]:
        """_signatures for a few rows: every cell of those rows the run may read, in one union of small scans
        (engine/run/few_rows.py; a join of every step table costs DuckDB several times more to plan than to run),
        kept for the columns' gathers; the rows of each signature kept beside them."""
        self._few = FewRows.read(self.con, self.campaign, steps, scope)
        if self._pause is None:
            self._pause = self._few.pause
        if self._edited:  # an edit recomputes its downstream formulas: all of them worked out in one statement
            downstream = self.graph.downstream(self._edited)
            self._few.speculate(self.con, [f for f in self._formulas(steps) if f[0] in downstream])
        self._few_signed = defaultdict(list)
        for row_id, statuses in self._few.statuses().items():
            self._few_signed[",".join(statuses)].append(row_id)
        return sorted(self._few_signed)

    def _formulas(self, steps: list[str]) -> list[tuple[str, str, str]]:
        """The steps whose value is one SQL expression and that check nothing before running (no run_if, no
        required field): (column, the expression cast to its type, the version its keys hash), in step order."""
        found = []
        for column in steps:
            spec = self.campaign.spec.column(column)
            kind, options = kind_named(spec.kind), spec.options
            sql = kind.sql(options)
            assert isinstance(options, StepOptions)
            if sql is None or kind.keys_on_upstream_runs or options.run_if or options.required:
                continue
            found.append((column, f"({sql})::{spec.value_type}", self._version(column)))
        return found

    def _apply(self, column: str, plan: CellPlan, rows: Rows, scope: Scope) -> None:
        """Execute `plan` for the cells of `column` in `rows` (listed, or SQL selecting row ids)."""
        spec = self.campaign.spec.column(column)
        kind = kind_named(spec.kind)
        # the SQL of a vectorized kind's value, computed while gathering; None when Python or a provider computes it
        sql = kind.sql(spec.options)
        expression = f"({sql})::{spec.value_type}" if sql is not None else None
        self._gather_inputs(column, rows, scope, plan.force, expression if plan.action is Action.RUN else None)
        started = time.perf_counter()
        if plan.action not in (Action.WAIT, Action.BLOCK) and _all_kept(self._in):
            # early cutoff: every planned cell already holds the result for its inputs, so nothing is written
            self._record(column, NOTHING_WRITTEN, time.perf_counter() - started, kept=plan.action is Action.RUN)
            return
        claim = plan.action is Action.RUN and not kind.free
        memo = claim and kind.cacheable and not plan.force
        batch = plan.action is Action.RUN and expression is None and not claim
        if claim:
            if memo:
                self._look_up_memo(column)
            self._claim(column, plan.force, memo)
        elif batch:
            self._compute_batch(column)
        pending = {c.column for c in self.report.claims} | set(self._held)
        source = verdicts.Source(batch=batch, claim=claim, memo=memo)
        out = verdicts.outcomes(self._in, plan, source, run_id=self.run_id, now=self._now(), claimed=pending)
        if plan.action is Action.RUN and pending:
            held = pc.filter(self._in.column("row_id"), verdicts.held(self._in, pending))
            if len(held):
                self._held[column] = held
        if expression is not None and plan.action is Action.RUN:
            out = self._find_formula_errors(out, spec.deps, expression)
        if out.num_rows:
            present = pc.sum(out.column("present")).as_py() or 0
            if out.num_rows == present == 1 and spec.value_type in PARAMETER_TYPES:  # an edit's cell
                update_cell(self.con, self.campaign.tables[column], out.to_pylist()[0])
            else:
                self._expose("_out", out)
                merge_outcomes(
                    self.con,
                    self.campaign.tables[column],
                    "_out",
                    scope,
                    present=present,
                    rows=out.num_rows,
                    ordered=_ascending(out.column("row_id")),
                )
            self._written.add(column)
            if self._few is not None:
                self._few.update(column, out)
            if plan.action is not Action.RUN and self.graph.downstream([column]):
                skipped = pc.filter(out.column("row_id"), pc.equal(out.column("status"), Status.SKIPPED.value))
                if len(skipped):
                    self._skipped.setdefault(column, set()).update(skipped.to_pylist())
        self._record(column, out, time.perf_counter() - started, kept=plan.action is Action.RUN)

    def _now(self) -> datetime:
        """The transaction's timestamp, the one SQL's now() gives, for the cells this run writes."""
        if self._started is None:
            self._started = scalar(self.con, "SELECT now()::TIMESTAMP")
        return self._started

    def _gather_inputs(self, column: str, rows: Rows, scope: Scope, forced: bool, expression: str | None) -> None:
        """_in: the planned rows with their input values, live upstream statuses, current cell, new key, a
        formula's new value (`expression`), and each row's verdict (engine/run/verdicts.py)."""
        spec = self.campaign.spec.column(column)
        options = spec.options
        assert isinstance(options, StepOptions)
        step_deps = [d for d in spec.deps if not self.campaign.spec.column(d).is_input]
        reads_only = kind_named(spec.kind).reads_only
        further: list[str] = []
        if reads_only is not None:
            # A side effect reads its whole upstream: a formula over a hand edit not yet confirmed is done itself,
            # yet must not carry that edit out. So the statuses of every step upstream gate it, not only its deps.
            graph = self.campaign.spec.graph
            upstream = graph.sorted(graph.upstream([column]))
            further = [a for a in upstream if a not in spec.deps and not graph.nodes[a].is_input]
        key_runs = kind_named(spec.kind).keys_on_upstream_runs
        facts = [f"TRY({expression}) AS new_value"] if expression is not None else []
        if options.run_if:
            facts.append(f"coalesce(({options.run_if})::BOOLEAN, FALSE) AS _run_if")
        if options.required:
            empty = (f"{quote(f)} IS NULL OR trim({quote(f)}::VARCHAR) = ''" for f in options.required)
            facts.append(" OR ".join(empty) + " AS _missing")
        if isinstance(rows, list):
            assert self._few is not None
            simple = not key_runs and not options.run_if and not options.required
            guessed = self._few.guessed(column, rows, further=further, with_value=expression is not None)
            if simple and guessed is not None:
                gathered = guessed
            else:
                version = self._version(column)
                gathered = self._few.gather(
                    self.con, column, rows, version=version, key_runs=key_runs, further=further, facts=facts
                )
        else:
            gathered = self._gather_joined(column, rows, scope, further, key_runs, facts)
        step_deps += further
        for dep in step_deps:  # a cell left as stored while it waits on this run's paid result is not readable yet
            if dep in self._held:
                name = "s_" + dep
                waiting = pc.is_in(gathered.column("row_id"), value_set=self._held[dep])
                status = pc.if_else(waiting, Status.WAITING.value, gathered.column(name))
                gathered = gathered.set_column(gathered.schema.get_field_index(name), name, status)
        checks = verdicts.Checks(
            forced=forced,
            enabled=options.enabled,
            paused=self._paused(column),
            has_run_if=bool(options.run_if),
            has_required=bool(options.required),
            run_if_deps=tuple(d for d in step_deps if options.run_if and d in sql_references(options.run_if)),
        )
        self._in = verdicts.decide(gathered, step_deps, reads_only, checks)

    def _gather_joined(
        self, column: str, rows_sql: str, scope: Scope, further: list[str], key_runs: bool, facts: list[str]
    ) -> pa.Table:
        """_gather_inputs' facts for many rows: one join of the column's inputs' tables and its own."""
        spec = self.campaign.spec.column(column)
        selects, joins = [], []
        for i, dep in enumerate(spec.deps):
            table = self.campaign.tables[dep]
            is_step = not self.campaign.spec.column(dep).is_input
            status = (
                f", status AS {quote('s_' + dep)}, run_id AS {quote('r_' + dep)}, waiting_on AS {quote('b_' + dep)}"
                if is_step
                else ""
            )
            joins.append(
                f"LEFT JOIN (SELECT row_id, value AS {quote(dep)}{status} FROM {table} WHERE {scope.filter()}) d{i} "
                f"ON d{i}.row_id = r.row_id"
            )
            selects.append(f"d{i}.{quote(dep)}")
            if is_step:
                selects += [f"d{i}.{quote('s_' + dep)}", f"d{i}.{quote('b_' + dep)}"]
        for j, ancestor in enumerate(further):
            joins.append(
                f"LEFT JOIN (SELECT row_id, status AS {quote('s_' + ancestor)} "
                f"FROM {self.campaign.tables[ancestor]} WHERE {scope.filter()}) u{j} ON u{j}.row_id = r.row_id"
            )
            selects.append(f"u{j}.{quote('s_' + ancestor)}")
        refs = [f"d{i}.{quote(dep)}" for i, dep in enumerate(spec.deps)]
        if key_runs:
            step_deps = {d for d in spec.deps if not self.campaign.spec.column(d).is_input}
            refs += [f"d{i}.{quote('r_' + dep)}" for i, dep in enumerate(spec.deps) if dep in step_deps]
        key = key_expression(self._version(column), refs)
        gathered: pa.Table = self.con.sql(
            f"""SELECT *{"".join(", " + f for f in facts)}
            FROM (SELECT r.row_id, {"".join(s + ", " for s in selects)} {key} AS key,
                         coalesce(cur.status, {sql_literal(Status.EMPTY)}) AS old_status,
                         cur.key AS old_key, cur.value AS old_value,
                         coalesce(cur.error_code, '') AS old_code, cur.row_id IS NOT NULL AS _present
                  FROM ({rows_sql}) r {" ".join(joins)}
                  LEFT JOIN (SELECT row_id, status, key, value, error_code FROM {self.campaign.tables[column]}
                             WHERE {scope.filter()}) cur ON cur.row_id = r.row_id)"""
        ).to_arrow_table()
        return gathered

    def _look_up_memo(self, column: str) -> None:
        """Add to _in the answers the workspace already has for these exact keys (same step version, context and
        inputs, in any campaign): those cells are done at once, in this statement's batch, for no credits."""
        value_type = self.campaign.spec.column(column).value_type
        self._expose("_in", self._in)
        self._in = self._materialize(
            "_in",
            f"SELECT i.*, TRY_CAST(m.value AS {value_type}) AS memo_value, m.status AS memo_status FROM _in i "
            f"LEFT JOIN memo m ON i.verdict = {RUN} AND m.key = i.key",
        )
        hits = int(scalar(self.con, "SELECT count(*) FROM _in WHERE memo_status IS NOT NULL"))
        if hits:
            spec = self.campaign.spec.column(column)
            price = kind_named(spec.kind).price(spec.options, load_settings(self.con).tiers)
            self.report.cache_hits += hits
            self.report.credits_saved += hits * price
            self.report.memo_hits[column] = self.report.memo_hits.get(column, 0) + hits

    def _claim(self, column: str, force: bool, memo: bool = False) -> None:
        """Hand the rows whose verdict is 'run' to the paid runner; their cells are marked running (in _outcome_sql)."""
        spec = self.campaign.spec.column(column)
        names = ", ".join(["row_id", "key", *(quote(d) for d in spec.deps)])
        unanswered = " AND memo_status IS NULL" if memo else ""
        self._expose("_in", self._in)
        rows = frame(self.con, f"SELECT {names} FROM _in WHERE verdict = {RUN}{unanswered} ORDER BY row_id")
        if rows.height:
            kind = kind_named(spec.kind)
            if kind.side_effect:  # an export's decision to send is recorded in this transaction (store/outbox.py)
                json_columns = frozenset(c.name for c in self.campaign.spec.columns if c.value_type == "JSON")
                payloads = kind.payloads(spec.options, rows, SendEnv(self.campaign.spec.name, column, json_columns))
                rows = decide_sends(self.con, self.campaign, column, rows, payloads, self.run_id, force=force)
            self.report.claims.append(Claim(column, rows, force, self._previous_cells(column, unanswered)))

    def _previous_cells(self, column: str, unanswered: str) -> pa.Table | None:
        """The stored cells about to be claimed that hold an outcome (a cell never computed has nothing to keep)."""
        previous = self.con.sql(
            f"""SELECT * FROM {self.campaign.tables[column]} WHERE row_id IN (
                SELECT row_id FROM _in WHERE verdict = {RUN}{unanswered} AND _present
                  AND (old_value IS NOT NULL OR {sql_in("old_status", HOLDING)}))"""
        ).to_arrow_table()
        failed = self._requeued.get(column)
        if failed is not None:  # a retried cell was in error before this run queued it: that is what it held
            claimed = self.con.sql(f"SELECT row_id FROM _in WHERE verdict = {RUN}{unanswered}").to_arrow_table()
            failed = failed.filter(pc.is_in(failed.column("row_id"), value_set=claimed.column("row_id")))
            kept = previous.filter(pc.invert(pc.is_in(previous.column("row_id"), value_set=failed.column("row_id"))))
            previous = pa.concat_tables([kept, failed.select(previous.column_names).cast(previous.schema)])
        return previous if previous.num_rows else None

    def _compute_batch(self, column: str) -> None:
        """Run a Python-side kind over the rows whose verdict is 'run'; its outcomes land in _outcomes."""
        spec = self.campaign.spec.column(column)
        kind = kind_named(spec.kind)
        self._expose("_in", self._in)
        inputs = frame(
            self.con,
            f"SELECT row_id, {', '.join(quote(d) for d in spec.deps)} FROM _in WHERE verdict = {RUN} ORDER BY row_id",
        )
        outcomes = kind.compute(spec.options, Batch(column, inputs, self.run_id, self._map_rows))
        self.con.register("_outcomes", outcomes.to_arrow())
        self._in = self._materialize(
            "_in",
            f"""SELECT i.*, o.value::{spec.value_type} AS new_value, o.status AS batch_status,
                o.error_code AS batch_code, o.error_message AS batch_message, o.cost AS batch_cost
                FROM _in i LEFT JOIN _outcomes o USING (row_id)""",
        )

    def _find_formula_errors(self, out: pa.Table, deps: tuple[str, ...], expression: str) -> pa.Table:
        """TRY() keeps one bad row from failing the statement (which would abort the whole transaction); the rows
        where it gave NULL are checked for real errors, outside the transaction."""
        done_null = pc.and_(pc.equal(out.column("status"), Status.DONE.value), pc.is_null(out.column("value")))
        nulls = pc.filter(out.column("row_id"), done_null)
        if len(nulls) == 0:
            return out
        names = ", ".join(["row_id", *(quote(d) for d in deps)])
        self._expose("_in", self._in)
        candidates = frame(
            self.con, f"SELECT {names} FROM _in WHERE row_id IN (SELECT unnest(?::BIGINT[]))", [nulls.to_pylist()]
        )
        failures = failing_rows(candidates, expression)
        if not failures:
            return out
        code = ErrorCode.FORMULA_ERROR
        outcomes = pl.from_arrow(out)
        assert isinstance(outcomes, pl.DataFrame)
        failed = pl.col("row_id").is_in(list(failures))
        outcomes = outcomes.with_columns(
            status=pl.when(failed).then(pl.lit(Status.ERROR.value)).otherwise(pl.col("status")),
            key=pl.when(failed).then(None).otherwise(pl.col("key")),
            error_code=pl.when(failed).then(pl.lit(code.value)).otherwise(pl.col("error_code")),
            error_message=pl.when(failed)
            .then(pl.col("row_id").replace_strict(failures, default=None, return_dtype=pl.String))
            .otherwise(pl.col("error_message")),
            error_hint=pl.when(failed).then(pl.lit(HINTS[code])).otherwise(pl.col("error_hint")),
        )
        return outcomes.to_arrow().cast(out.schema)

    def _record(self, column: str, out: pa.Table, seconds: float, *, kept: bool = True) -> None:
        """Add this column's outcomes to the report and the activity log (per cell for paid kinds); with `kept`, the
        cells a run kept because they hold the result for their key (a plan that only marks cells, queue, wait or
        screen, leaves the others untouched: nothing to report)."""
        status, row_ids = out.column("status"), out.column("row_id")
        groups = [
            (outcome, pc.filter(row_ids, pc.equal(status, outcome)))
            for outcome in pc.unique(status).to_pylist()
            if outcome != Status.RUNNING.value  # claimed cells are reported when the runner has their results
        ]
        paused = self._paused(column)
        held = pc.filter(self._in.column("row_id"), pc.equal(self._in.column("verdict"), KEEP))
        if len(held) and (kept or paused):
            # a paused step's cells that hold an outcome were kept because of the pause: reported as paused
            groups.append((Status.PAUSED.value if paused else KEEP, held))
        if out.num_rows and not kind_named(self.campaign.spec.column(column).kind).free:
            self._expose("_out", out)  # a paid step's activity rows are inserted from it (_record_groups)
        self._record_groups(column, groups, seconds)

    def _record_groups(self, column: str, groups: list[tuple[str, pa.Array]], seconds: float) -> None:
        """Report each outcome of a column with the rows it happened to; sum them into the activity log."""
        for outcome, rows in groups:
            listed = tuple(sorted(rows.to_pylist())) if len(rows) <= ROW_LIST_LIMIT else None
            ids = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
            self.report.events.append(ExecutionEvent(column, str(outcome), len(rows), listed, ids))
        if not groups:
            return
        free = kind_named(self.campaign.spec.column(column).kind).free
        executed = values(EXECUTED)
        # Paid cells that were settled here (skipped, missing a field, blocked) get one activity row each, like
        # the ones the runner computes; everything else is summed up per outcome.
        summed = [(o, rows) for o, rows in groups if free or o not in executed]
        self._summaries += [[column, len(rows), o, seconds * 1000] for o, rows in summed]
        if not free and len(summed) < len(groups):
            self.con.execute(
                f"""INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, logged_at,
                cost, actor, trigger, error_code, cached)
                SELECT {self.run_id}, {self.campaign.campaign_id}, {literal(column)}, row_id, 1, 'run', status,
                now(), cost, {literal(self.who[0])}, {literal(self.who[1])}, error_code, cached FROM _out
                WHERE {sql_in("status", EXECUTED)}"""
            )


def _ascending(row_ids: pa.ChunkedArray) -> bool:
    """Whether row ids are in strictly ascending order."""
    ids = row_ids.combine_chunks() if isinstance(row_ids, pa.ChunkedArray) else row_ids
    return len(ids) < 2 or bool(pc.all(pc.greater(ids[1:], ids[:-1])).as_py())


def _all_kept(planned: pa.Table) -> bool:
    """Whether every planned row's verdict is to keep its cell as it is."""
    found = planned.column("verdict")
    return bool(pc.all(pc.equal(found, KEEP)).as_py()) if len(found) else True


def restore_status(auto: bool) -> str:
    """SQL for the status a claimed cell goes back to when its call never ran (Stop, a crashed runner)."""
    return sql_restored(auto)
