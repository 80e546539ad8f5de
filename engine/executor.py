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
import pyarrow as pa
import pyarrow.compute as pc

from engine.cells import Batch, kind_named
from engine.cells.base import StepOptions
from engine.graph import Action, CellPlan, Request, plan_row
from engine.graph.references import ALL_CONTEXT
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope, gate_expression, key_expression, merge_outcomes
from engine.store.context import context_versions
from engine.store.settings import load_settings
from engine.store.pause import PauseState, pause_state
from engine.store.database import frame, scalar
from engine.store.schema import literal, quote
from engine.types import FRESH_WHEN_KEY_MATCHES, HINTS, RETRYABLE_CODES, ErrorCode, Status

log = logging.getLogger(__name__)

ROW_LIST_LIMIT = 10_000  # events list the rows they touched up to this many
KEEP = "keep"
NOTHING_WRITTEN = pa.table({"row_id": pa.array([], pa.int64()), "status": pa.array([], pa.string()), "cost": pa.array([], pa.float64())})


@dataclass(frozen=True)
class ExecutionEvent:
    """Something that happened to the cells of one column: `rows` lists them when there are few enough."""

    column: str
    outcome: str  # a Status value, or "keep" for cells whose key had not changed
    count: int
    rows: tuple[int, ...] | None


@dataclass(frozen=True)
class Claim:
    """Paid cells this run marked `running`, to be computed by the runner outside the transaction: `frame` has
    row_id, key (the key to store with the result) and the step's inputs."""

    column: str
    frame: pl.DataFrame
    force: bool


@dataclass
class RunReport:
    """What a run did, per column and outcome; `claims` are the paid cells it still has to compute."""

    run_id: int
    events: list[ExecutionEvent] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    status: str = "done"
    # paid work: what it spent, and what the cache saved
    credits: float = 0.0
    tokens: int = 0
    cache_hits: int = 0
    credits_saved: float = 0.0
    memo_hits: dict[str, int] = field(default_factory=dict)  # per column: cells answered from the memo

    def counts(self) -> dict[str, Counter[str]]:
        """Per column, how many cells ended in each outcome. A cell that waited for a paid upstream result and
        then ran counts once, by how it ended (events are replayed in order; unlisted rows are summed)."""
        final: dict[str, dict[int, str]] = defaultdict(dict)
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for event in self.events:
            if event.rows is None:
                table[event.column][event.outcome] += event.count
            else:
                final[event.column].update(dict.fromkeys(event.rows, event.outcome))
        for column, outcomes in final.items():
            table[column].update(outcomes.values())
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

    def __init__(
        self, con: duckdb.DuckDBPyConnection, campaign: CampaignTables, run_id: int, *, actor: str, trigger: str
    ) -> None:
        self.con = con
        self.campaign = campaign
        self.graph = campaign.spec.graph
        self.run_id = run_id
        self.who = (actor, trigger)
        self.report = RunReport(run_id)
        self._context: dict[str, str] | None = None
        self._pause: PauseState | None = None
        self._in = pa.table({})  # the column being executed: its planned rows (registered as _in)
        self._summaries: list[list[object]] = []  # activity rows summed per column and outcome, written at the end

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
        steps = self.graph.steps()
        if not steps:
            return self.report
        scope.prepare(self.con)
        if request.kind == "run" and not request.force:
            self._requeue_retryable(request, scope)
        groups = self._signatures(steps, scope)
        actions: dict[str, dict[CellPlan, list[str]]] = defaultdict(lambda: defaultdict(list))
        for signature in groups:
            states = {c: Status(s) for c, s in zip(steps, signature.split(","), strict=True)}
            for column, plan in plan_row(self.graph, states, request).items():
                actions[column][plan].append(signature)
        for column in steps:
            for plan, signatures in actions.get(column, {}).items():
                self._apply(column, plan, signatures, scope)
        self._write_summaries()
        return self.report

    def _write_summaries(self) -> None:
        """One statement for the summed activity rows of every column (an edit touches several)."""
        if self._summaries:
            self.con.executemany(
                "INSERT INTO activity (run_id, campaign_id, column_name, cells, action, outcome, \"at\", duration_ms, "
                "cost, actor, trigger) VALUES (?, ?, ?, ?, 'run', ?, now(), ?, 0.0, ?, ?)",
                [[self.run_id, self.campaign.campaign_id, *row, *self.who] for row in self._summaries],
            )

    def _requeue_retryable(self, request: Request, scope: Scope) -> None:
        """Cells of the requested columns (and their auto ancestors) that failed for a passing reason (timeout,
        rate limit, Stop, credits) are queued again, so a later run finishes them (rule 9 keeps the others)."""
        targets = set(request.columns)
        columns = targets | {c for c in self.graph.upstream(targets) if self.graph.nodes[c].auto}
        codes = ", ".join(literal(c.value) for c in sorted(RETRYABLE_CODES))
        for column in self.graph.steps():
            if column in columns and not self.graph.nodes[column].free:
                self.con.execute(
                    f"""UPDATE {self.campaign.tables[column]} SET status = {restore_status(self.graph.nodes[column].auto)},
                    error_code = NULL, error_message = NULL, error_hint = NULL
                    WHERE status = 'error' AND error_code IN ({codes}) AND {scope.filter()}"""
                )

    def _materialize(self, name: str, select: str) -> pa.Table:
        """Run `select` and expose its result to later statements as `name`. An Arrow table registered on the
        connection costs far less than a temp table's DDL, which matters on the edit path."""
        table = self.con.sql(select).to_arrow_table()
        self.con.register(name, table)
        return table

    def _signatures(self, steps: list[str], scope: Scope) -> list[str]:
        """Each row's status signature (its steps' statuses, in order), registered as _sig; returns the distinct ones."""
        joins, parts = [], []
        for i, column in enumerate(steps):
            table = self.campaign.tables[column]
            joins.append(
                f"LEFT JOIN (SELECT row_id, status FROM {table} WHERE {scope.filter()}) s{i} ON s{i}.row_id = r.row_id"
            )
            parts.append(f"coalesce(s{i}.status, 'empty')")
        signatures = self._materialize(
            "_sig",
            f"SELECT r.row_id, concat_ws(',', {', '.join(parts)}) AS sig "
            f"FROM (SELECT row_id FROM {self.campaign.rows_table} WHERE {scope.filter()}) r {' '.join(joins)}",
        )
        return pc.unique(signatures.column("sig")).to_pylist()  # type: ignore[no-any-return]

    def _apply(self, column: str, plan: CellPlan, signatures: list[str], scope: Scope) -> None:
        rows = f"SELECT row_id FROM _sig WHERE sig IN ({', '.join(literal(s) for s in signatures)})"
        self._gather_inputs(column, rows, scope, plan.force)
        spec = self.campaign.spec.column(column)
        started = time.perf_counter()
        if plan.action not in (Action.WAIT, Action.BLOCK) and _all_kept(self._in):
            # early cutoff: every planned cell already holds the result for its inputs, so nothing is written
            self._record(column, NOTHING_WRITTEN, time.perf_counter() - started)
            return
        expression: str | None = None  # the SQL of a vectorized kind's value; None when Python computes it
        kind = kind_named(spec.kind)
        claim = plan.action is Action.RUN and not kind.free
        memo = claim and getattr(kind, "cacheable", False) and not plan.force
        if plan.action is Action.RUN:
            if hasattr(kind, "sql"):
                expression = f"({kind.sql(spec.options)})::{spec.value_type}"
            elif claim:
                if memo:
                    self._look_up_memo(column)
                self._claim(column, plan.force, memo)
            else:
                self._compute_batch(column)
        claimed = {c.column for c in self.report.claims}
        out = self._materialize(
            "_out",
            _outcome_sql(plan, spec.value_type, expression, self.run_id, claim=claim, claimed=claimed, memo=memo),
        )
        if expression is not None:
            out = self._find_formula_errors(out, spec.deps, expression)
        if out.num_rows:
            merge_outcomes(self.con, self.campaign.tables[column], "_out", scope)
        self._record(column, out, time.perf_counter() - started)

    def _gather_inputs(self, column: str, rows_sql: str, scope: Scope, forced: bool) -> None:
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
        key = key_expression(self._version(column), [f"d{i}.{quote(dep)}" for i, dep in enumerate(spec.deps)])
        fresh = ", ".join(literal(s.value) for s in sorted(FRESH_WHEN_KEY_MATCHES))
        passing = ", ".join(literal(c.value) for c in sorted(RETRYABLE_CODES))
        required = " OR ".join(f"{quote(f)} IS NULL OR trim({quote(f)}::VARCHAR) = ''" for f in options.required)
        run_if = f"NOT coalesce(({options.run_if})::BOOLEAN, FALSE)" if options.run_if else "FALSE"
        # Run Again ignores the key; a failure for a passing reason is not kept either (rule 9 keeps the others)
        keep = "FALSE" if forced else (
            f"old_key = key AND (old_status IN ({fresh}) OR (old_status = 'error' AND old_code NOT IN ({passing})))"
        )
        self._in = self._materialize(
            "_in",
            f"""SELECT *, CASE
                WHEN gate IS NOT NULL THEN gate
                WHEN {keep} THEN '{KEEP}'
                WHEN NOT {str(options.enabled and not self._paused(column)).upper()} THEN 'disabled'
                WHEN {run_if} THEN 'skip'
                WHEN {required or 'FALSE'} THEN 'missing'
                ELSE 'run' END AS verdict
            FROM (SELECT r.row_id, {''.join(s + ', ' for s in selects)} {key} AS key,
                         {gate_expression(step_deps, getattr(kind_named(spec.kind), 'reads_only', None))} AS gate, coalesce(cur.status, 'empty') AS old_status,
                         cur.key AS old_key, cur.value AS old_value, coalesce(cur.error_code, '') AS old_code
                  FROM ({rows_sql}) r {' '.join(joins)}
                  LEFT JOIN (SELECT row_id, status, key, value, error_code FROM {self.campaign.tables[column]}
                             WHERE {scope.filter()}) cur ON cur.row_id = r.row_id)"""
        )

    def _look_up_memo(self, column: str) -> None:
        """Add to _in the answers the workspace already has for these exact keys (same step version, context and
        inputs, in any campaign): those cells are done at once, in this statement's batch, for no credits."""
        self._in = self._materialize(
            "_in",
            "SELECT i.*, m.value AS memo_value, m.status AS memo_status FROM _in i "
            "LEFT JOIN memo m ON i.verdict = 'run' AND m.key = i.key",
        )
        hits = int(scalar(self.con, "SELECT count(*) FROM _in WHERE memo_status IS NOT NULL"))
        if hits:
            spec = self.campaign.spec.column(column)
            price = kind_named(spec.kind).price(spec.options, load_settings(self.con).tiers)  # type: ignore[attr-defined]
            self.report.cache_hits += hits
            self.report.credits_saved += hits * price
            self.report.memo_hits[column] = self.report.memo_hits.get(column, 0) + hits

    def _claim(self, column: str, force: bool, memo: bool = False) -> None:
        """Hand the rows whose verdict is 'run' to the paid runner; their cells are marked running (in _outcome_sql)."""
        spec = self.campaign.spec.column(column)
        names = ", ".join(["row_id", "key", *(quote(d) for d in spec.deps)])
        unanswered = " AND memo_status IS NULL" if memo else ""
        rows = frame(self.con, f"SELECT {names} FROM _in WHERE verdict = 'run'{unanswered} ORDER BY row_id")
        if rows.height:
            on_claim = getattr(kind_named(spec.kind), "on_claim", None)
            if on_claim is not None:  # a side effect (export) records its decision to send in this transaction
                rows = on_claim(self.con, self.campaign, column, rows, force, self.run_id)
            self.report.claims.append(Claim(column, rows, force))

    def _compute_batch(self, column: str) -> None:
        """Run a Python-side kind over the rows whose verdict is 'run'; its outcomes land in _outcomes."""
        spec = self.campaign.spec.column(column)
        kind = kind_named(spec.kind)
        inputs = frame(
            self.con,
            f"SELECT row_id, {', '.join(quote(d) for d in spec.deps)} FROM _in WHERE verdict = 'run' ORDER BY row_id",
        )
        outcomes = kind.compute(spec.options, Batch(column, inputs, self.run_id))  # type: ignore[attr-defined]
        self.con.register("_outcomes", outcomes.to_arrow())

    def _find_formula_errors(self, out: pa.Table, deps: tuple[str, ...], expression: str) -> pa.Table:
        """TRY() keeps one bad row from failing the statement (which would abort the whole transaction); the rows
        where it gave NULL are checked for real errors, outside the transaction."""
        outcomes = pl.from_arrow(out)
        assert isinstance(outcomes, pl.DataFrame)
        nulls = outcomes.filter((pl.col("status") == "done") & pl.col("value").is_null())["row_id"]
        if nulls.len() == 0:
            return out
        names = ", ".join(["row_id", *(quote(d) for d in deps)])
        candidates = frame(self.con, f"SELECT {names} FROM _in WHERE row_id IN (SELECT unnest(?::BIGINT[]))", [nulls.to_list()])
        failures = failing_rows(candidates, expression)
        if not failures:
            return out
        code = ErrorCode.FORMULA_ERROR
        failed = pl.col("row_id").is_in(list(failures))
        outcomes = outcomes.with_columns(
            status=pl.when(failed).then(pl.lit("error")).otherwise(pl.col("status")),
            key=pl.when(failed).then(None).otherwise(pl.col("key")),
            error_code=pl.when(failed).then(pl.lit(code.value)).otherwise(pl.col("error_code")),
            error_message=pl.when(failed)
            .then(pl.col("row_id").replace_strict(failures, default=None, return_dtype=pl.String))
            .otherwise(pl.col("error_message")),
            error_hint=pl.when(failed).then(pl.lit(HINTS[code])).otherwise(pl.col("error_hint")),
        )
        table = outcomes.to_arrow().cast(out.schema)
        self.con.register("_out", table)
        return table

    def _record(self, column: str, out: pa.Table, seconds: float) -> None:
        """Add this column's outcomes to the report and the activity log (per cell for paid kinds)."""
        outcomes = pl.from_arrow(out.select(["row_id", "status", "cost"]))
        assert isinstance(outcomes, pl.DataFrame)
        planned = self._in.select(["row_id", "verdict"])
        kept = planned.filter(pc.equal(planned.column("verdict"), KEEP)).column("row_id")
        groups = [
            (status, part["row_id"])
            for (status,), part in outcomes.group_by("status", maintain_order=True)
            if status != Status.RUNNING.value  # claimed cells are reported when the runner has their results
        ]
        if len(kept):
            groups.append((KEEP, pl.Series(kept)))
        for outcome, rows in groups:
            listed = tuple(sorted(rows.to_list())) if rows.len() <= ROW_LIST_LIMIT else None
            self.report.events.append(ExecutionEvent(column, str(outcome), rows.len(), listed))
        if not groups:
            return
        free = kind_named(self.campaign.spec.column(column).kind).free
        executed = ("done", "error", "skipped", "not_found")
        # Paid cells that were settled here (skipped, missing a field, blocked) get one activity row each, like
        # the ones the runner computes; everything else is summed up per outcome.
        summed = [(o, rows) for o, rows in groups if free or o not in executed]
        self._summaries += [[column, rows.len(), o, seconds * 1000] for o, rows in summed]
        if not free and len(summed) < len(groups):
            self.con.execute(
                f"""INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, "at", cost,
                actor, trigger, error_code, cached) SELECT {self.run_id}, {self.campaign.campaign_id}, {literal(column)}, row_id,
                1, 'run', status, now(), cost, {literal(self.who[0])}, {literal(self.who[1])}, error_code, cached FROM _out
                WHERE status IN ({', '.join(literal(o) for o in executed)})"""
            )


def _all_kept(planned: pa.Table) -> bool:
    """Whether every planned row's verdict is to keep its cell as it is."""
    verdicts = planned.column("verdict")
    return bool(pc.all(pc.equal(verdicts, KEEP)).as_py()) if len(verdicts) else True


def restore_status(auto: bool) -> str:
    """SQL for the status a claimed cell goes back to when its call never ran (Stop, a crashed runner)."""
    return f"CASE WHEN value IS NULL THEN '{'queued' if auto else 'empty'}' ELSE 'stale' END"


def _outcome_sql(
    plan: CellPlan,
    value_type: str,
    expression: str | None,
    run_id: int,
    *,
    claim: bool = False,
    claimed: set[str] | None = None,
    memo: bool = False,
) -> str:
    """The SELECT over _in that gives each planned cell its new value, status, key and error (keep rows excluded).
    A RUN takes its values from `expression`, from the `_outcomes` a Python-side kind produced, or, for a paid
    kind (`claim`), marks the cell running with its old value and key until the runner writes the result."""
    settled_before = "old_status IN ('done', 'skipped', 'not_found', 'error')"
    if plan.action is Action.RUN:
        from_batch = expression is None and not claim
        value = "old_value" if claim else "o.value" if from_batch else f"TRY({expression})"
        status = "'running'" if claim else "o.status" if from_batch else "'done'"
        run_key = "old_key" if claim else "i.key"
        if memo:  # cells answered from the memo are done now; the others are claimed
            value = f"CASE WHEN memo_status IS NULL THEN old_value ELSE TRY_CAST(memo_value AS {value_type}) END"
            status = "coalesce(memo_status, 'running')"
            run_key = "CASE WHEN memo_status IS NULL THEN old_key ELSE i.key END"
        cases = {
            "value": f"CASE WHEN verdict = 'run' THEN {value} WHEN starts_with(verdict, 'wait:') THEN old_value END",
            "status": f"""CASE WHEN verdict = 'run' THEN {status} WHEN starts_with(verdict, 'wait:') THEN 'waiting'
                WHEN verdict = 'skip' THEN 'skipped' ELSE 'error' END""",
            "key": f"CASE WHEN verdict = 'run' THEN {run_key} WHEN verdict IN ('skip', 'missing') THEN i.key END",
            "waiting_on": "CASE WHEN starts_with(verdict, 'wait:') THEN substr(verdict, 6) END",
            "error_code": f"""CASE WHEN verdict = 'run' THEN {'o.error_code' if from_batch else 'NULL'}
                WHEN starts_with(verdict, 'block:') THEN 'upstream_error' WHEN verdict = 'disabled' THEN 'action_disabled'
                WHEN verdict = 'missing' THEN 'missing_required_field' END""",
            "error_message": f"""CASE WHEN verdict = 'run' THEN {'o.error_message' if from_batch else 'NULL'}
                WHEN starts_with(verdict, 'block:') THEN 'upstream cell ' || substr(verdict, 7) || ' failed'
                WHEN verdict = 'disabled' THEN 'the step is disabled'
                WHEN verdict = 'missing' THEN 'a required field is empty' END""",
            "cost": "CASE WHEN verdict = 'run' THEN o.cost ELSE 0.0 END" if from_batch else "0.0",
        }
        where = f"verdict <> '{KEEP}'"
        source = "_in i LEFT JOIN _outcomes o USING (row_id)" if from_batch else "_in i"
    else:
        status = {Action.QUEUE: "queued", Action.STALE: "stale", Action.WAIT: "waiting", Action.BLOCK: "error"}[
            plan.action
        ]
        blame = literal(plan.blame or "")
        pending_waits = ", ".join(literal("wait:" + c) for c in sorted(claimed or ())) or "''"
        cases = {
            "value": "NULL" if plan.action is Action.BLOCK else "old_value",
            "status": literal(status),
            "key": "old_key" if plan.action in (Action.QUEUE, Action.STALE) else "NULL",
            "waiting_on": blame if plan.action is Action.WAIT else "NULL",
            "error_code": "'upstream_error'" if plan.action is Action.BLOCK else "NULL",
            "error_message": f"'upstream cell ' || {blame} || ' failed'" if plan.action is Action.BLOCK else "NULL",
            "cost": "0.0",
        }
        where = {
            Action.QUEUE: f"verdict <> '{KEEP}'",
            # a manual cell whose input is being computed now is judged when that result is in
            Action.STALE: f"verdict <> '{KEEP}' AND {settled_before} AND verdict NOT IN ({pending_waits})",
            Action.WAIT: "TRUE",
            Action.BLOCK: "TRUE",
        }[plan.action]
        source = "_in i"
    # The decisions are spelled out once, in the inner SELECT; the outer one derives the hint and finish time from
    # them. Planning a statement costs about as much as its expressions, which is most of a small edit's time.
    hints = " ".join(f"WHEN {literal(code.value)} THEN {literal(hint)}" for code, hint in HINTS.items())
    return f"""SELECT row_id, value, status, key, waiting_on, error_code, error_message,
        (CASE error_code {hints} END)::VARCHAR AS error_hint, cost, now()::TIMESTAMP AS started_at,
        (CASE WHEN status = 'running' THEN NULL ELSE now() END)::TIMESTAMP AS finished_at, {run_id}::BIGINT AS run_id,
        NULL::BIGINT AS tokens, NULL::DOUBLE AS latency_ms, NULL::INTEGER AS attempts, NULL::DOUBLE AS provider_cost,
        cached, NULL::JSON AS detail
        FROM (SELECT row_id, ({cases['value']})::{value_type} AS value, ({cases['status']})::VARCHAR AS status,
            ({cases['key']})::UBIGINT AS key, ({cases['waiting_on']})::VARCHAR AS waiting_on,
            ({cases['error_code']})::VARCHAR AS error_code, ({cases['error_message']})::VARCHAR AS error_message,
            ({cases['cost']})::DOUBLE AS cost, ({'memo_status IS NOT NULL' if memo else 'NULL'})::BOOLEAN AS cached
            FROM {source} WHERE {where})"""


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
