"""Runs one library action on one record, ad hoc: the action is read as if it were a column of the record's
campaign (so its dependencies, injected context and value type are worked out by the spec's own code), its call
goes through the same pool as a run's (cache, budget, rate limits, deadline, retries, single flight), and its
outcome is stored as an action result, never in a cell: the campaign's cells are not touched.

Bookkeeping is a run's: a `runs` row (trigger and actor, counts, credits), one activity row carrying the
action's id, and a credit row for what the call cost. A refusal for credits stores an `error` result with
`insufficient_credits` and spends nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.cache import ResultCache
from engine.cells import kind_named
from engine.cells.base import PrepareEnv, StepOptions
from engine.errors import NotFoundError, SpecError
from engine.graph.fate import CURRENT, sql_in
from engine.run.lifecycle import add_progress, clear_stop, close_run, finish_run, open_run, stop_file
from engine.run.paid import close_transports, load_budget, run_coroutine
from engine.run.reports import ExecutionEvent, RunReport
from engine.run.selection import check_rows
from engine.runner.calls import CellResult, PaidCall
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool
from engine.spec import CampaignSpec, ColumnSpec, parse_spec
from engine.store.actions import StoredAction, finish_result, insert_document, insert_result
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.context import read_context
from engine.store.database import Database
from engine.store.schema import quote
from engine.store.settings import load_settings
from engine.types import HINTS, ErrorCode, Status

STOP_POLL_SECONDS = 0.1
PARSED_KEPT = 64  # campaign specs with an action added, kept parsed (a run parses the same one twice)
_parsed: dict[str, CampaignSpec] = {}
_parsed_lock = threading.Lock()


@dataclass(frozen=True)
class Started:
    """An ad hoc run just opened: its run and its (running) result."""

    run_id: int
    result_id: int


def as_column(tables: CampaignTables, action: StoredAction) -> ColumnSpec:
    """The action read as a column of `tables`' campaign: the spec's validation, dependencies (the record's
    fields it reads or has injected), context documents and value type. A SpecError names what the campaign
    lacks."""
    source = dict(tables.spec.source)
    taken = {c.lower() for c in tables.spec.names}
    name = action.name if action.name.lower() not in taken else _free_name(action.name, taken)
    column = {"name": name, "kind": action.kind, **action.options, "run": "manual"}
    source["columns"] = [*source["columns"], column]
    try:
        spec = parsed(source)
    except SpecError as err:
        raise SpecError(
            f"action '{action.name}' cannot run on a record of campaign '{tables.spec.name}': {err.message}",
            hint=err.hint or "give the campaign the fields the action reads",
        ) from err
    return spec.column(name)


def parsed(source: dict[str, Any]) -> CampaignSpec:
    """`parse_spec(source)`, kept by the source's text: opening and completing an action's run parse the same
    campaign-plus-action spec (tens of ms on a shared machine); a spec that fails is parsed again each time."""
    key = json.dumps(source, sort_keys=True, default=str)
    with _parsed_lock:
        found = _parsed.get(key)
    if found is None:
        found = parse_spec(source, check_code=False)
        with _parsed_lock:
            if len(_parsed) >= PARSED_KEPT:
                _parsed.clear()
            _parsed[key] = found
    return found


def _free_name(name: str, taken: set[str]) -> str:
    for n in range(2, 1000):
        candidate = f"{name}_{n}"[:63]
        if candidate.lower() not in taken:
            return candidate
    raise SpecError(f"no free column name for action '{name}'", hint="rename the action")


@dataclass(frozen=True)
class Record:
    """What an action reads of one record: the values of its inputs, whether its `run_if` holds, and the steps
    it reads that hold no current value there (each with its status)."""

    values: dict[str, Any]
    runs: bool
    blocked: dict[str, str]


def read_record(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, names: list[str], run_if: str | None = None
) -> Record:
    """The current values of `names` (fields or steps; a step's value only when it is current) in one record, in
    one query."""
    selects, joins, steps = ["r.row_id"], [], []
    for i, name in enumerate(names):
        alias = f"t{i}"
        joins.append(f"LEFT JOIN {tables.tables[name]} {alias} ON {alias}.row_id = r.row_id")
        current = f"{alias}.value"
        if not tables.column(name).is_input:
            current = f"CASE WHEN {sql_in(alias + '.status', CURRENT)} THEN {alias}.value END"
            steps.append(f"coalesce({alias}.status, 'empty')")
        selects.append(f"{current} AS {quote(name)}")
    statuses = f"[{', '.join(steps)}]::VARCHAR[]" if steps else "[]::VARCHAR[]"
    selects.append(f"{statuses} AS _statuses")
    record = f"SELECT {', '.join(selects)} FROM {tables.rows_table} r {' '.join(joins)} WHERE r.row_id = ?"
    chosen = f"coalesce(({run_if})::BOOLEAN, false)" if run_if else "true"
    cursor = con.execute(f"SELECT {chosen} AS _run_if, * EXCLUDE (row_id) FROM ({record})", [int(row_id)])
    found = cursor.fetchall()
    if not found:
        return Record({}, False, {})
    runs, *values, statuses = found[0]
    step_names = [n for n in names if not tables.column(n).is_input]
    answered = {status.value for status in CURRENT}
    blocked = {n: st for n, st in zip(step_names, statuses, strict=True) if st not in answered}
    return Record(dict(zip(names, values, strict=True)), bool(runs), blocked)


def open_action_run(
    db: Database, campaign: str, row_id: int, action: StoredAction, *, who: tuple[str, str], force: bool
) -> Started:
    """Open the run and its `running` result, in one transaction (the panel shows running at once)."""
    with db.transaction() as con:
        tables = load_campaign(con, campaign)
        check_rows(con, tables, [row_id])
        as_column(tables, action)  # refuse an action the campaign cannot feed before anything is recorded
        details = {"kind": "action", "action": action.name, "action_id": action.action_id, "row": row_id}
        details["force"] = force
        run_id, _ = open_run(con, tables.campaign_id, details, actor=who[0], trigger=who[1])
        add_progress(con, run_id, total=1)
        result_id = insert_result(con, action.action_id, tables.campaign_id, row_id, run_id, who)
    return Started(run_id, result_id)


def complete_action_run(
    db: Database,
    cache_dir: Path,
    campaign: str,
    row_id: int,
    action: StoredAction,
    started: Started,
    *,
    who: tuple[str, str],
    force: bool,
    stop: threading.Event | None = None,
) -> CellResult:
    """Make the action's call for the record (outside any transaction) and store how it ended."""
    try:
        with db.transaction() as con:
            tables = load_campaign(con, campaign)
            column = as_column(tables, action)
            assert isinstance(column.options, StepOptions)
            record = read_record(con, tables, row_id, list(column.deps), column.options.run_if)
            gate = gate_record(column, row_id, record)
            settings = load_settings(con)
            budget = load_budget(con, campaign, tables.campaign_id)
            context = {n: d.text for n, d in read_context(con).items()}
            json_columns = frozenset(c.name for c in tables.spec.columns if c.value_type == "JSON")
            fields = (tables.spec.record_fields, frozenset(tables.spec.names))
        stop = stop or threading.Event()
        watcher = _watch_stop(db.path.parent, started.run_id, stop)
        try:
            result = gate or _call(
                column, row_id, record.values, cache_dir, settings, budget, context, json_columns, fields, force, stop
            )
        finally:
            watcher.set()
    except BaseException:
        with db.transaction() as con:  # the run and its result are closed, whatever stopped the call
            _finish(con, _loaded(con, campaign), action, row_id, started, None, who)
        raise
    with db.transaction() as con:
        _finish(con, load_campaign(con, campaign), action, row_id, started, result, who)
    clear_stop(db.path.parent, started.run_id)
    return result


def _watch_stop(workspace: Path, run_id: int, stop: threading.Event) -> threading.Event:
    """Set `stop` when someone stops the run (`runsheet stop`, the UI, the API touch its stop file); returns the
    event that ends the watch."""
    done = threading.Event()
    path = stop_file(workspace, run_id)

    def watch() -> None:
        while not done.wait(STOP_POLL_SECONDS):
            if path.exists():
                stop.set()
                return

    threading.Thread(target=watch, name=f"runsheet-action-stop-{run_id}", daemon=True).start()
    return done


def _loaded(con: duckdb.DuckDBPyConnection, campaign: str) -> CampaignTables | None:
    """The campaign, or None when it went away while the call was made."""
    try:
        return load_campaign(con, campaign)
    except NotFoundError:
        return None


def gate_record(column: ColumnSpec, row_id: int, record: Record) -> CellResult | None:
    """The outcome without a call: a step it reads holds no current value on the record (`waiting`, naming it:
    run it first), a required field empty (`missing_required_field`), or `run_if` false (`skipped`)."""
    assert isinstance(column.options, StepOptions)
    if record.blocked:
        named = ", ".join(f"{n} ({status})" for n, status in record.blocked.items())
        return CellResult(
            column.name,
            row_id,
            None,
            Status.WAITING,
            error_message=f"waiting on {named}: run it on this record first, then run the action again",
        )
    missing = [f for f in column.options.required if record.values.get(f) in (None, "")]
    if missing:
        return CellResult(
            column.name,
            row_id,
            None,
            Status.ERROR,
            error_code=ErrorCode.MISSING_REQUIRED_FIELD,
            error_message=f"empty: {', '.join(missing)}",
        )
    return None if record.runs else CellResult(column.name, row_id, None, Status.SKIPPED)


def _call(
    column: ColumnSpec,
    row_id: int,
    values: dict[str, Any],
    cache_dir: Path,
    settings: Any,
    budget: Any,
    context: dict[str, str],
    json_columns: frozenset[str],
    fields: tuple[tuple[str, ...], frozenset[str]],
    force: bool,
    stop: threading.Event,
) -> CellResult:
    frame = pl.DataFrame(
        {"row_id": [row_id], "key": [0], **{n: [v] for n, v in values.items()}},
        schema_overrides={"key": pl.UInt64},
        strict=False,
    )
    record, names = fields  # the record's fields (injected into a prompt that names none) and every column's name
    env = PrepareEnv(
        column.name, force, context, settings.tiers, json_columns, frozenset(settings.allowed_hosts), record, names
    )
    calls = list(kind_named(column.kind).prepare(column.options, frame, env))
    results: list[CellResult] = []
    limits = RateLimits({m: (v.get("rpm"), v.get("tpm")) for m, v in settings.rate_limits.items()})
    cache = ResultCache(cache_dir)
    try:
        pool = CallPool(
            concurrency=1,
            budget=budget,
            on_result=results.append,
            stop=stop,
            cache=cache,
            limits=limits,
            policy=RetryPolicy(max_attempts=settings.max_attempts),
        )
        run_coroutine(_run(pool, calls))
    finally:
        cache.close()
    if results:
        return results[0]
    return CellResult(column.name, row_id, None, Status.ERROR, error_code=ErrorCode.CANCELLED, error_message="stopped")


async def _run(pool: CallPool, calls: list[PaidCall]) -> None:
    try:
        await pool.run(calls)
    finally:
        await close_transports()


def _finish(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables | None,
    action: StoredAction,
    row_id: int,
    started: Started,
    result: CellResult | None,
    who: tuple[str, str],
) -> None:
    """Store the outcome (None: the call raised, an engine failure), its activity row, credit row and the run."""
    if result is None:
        result = CellResult(
            action.name, row_id, None, Status.ERROR, error_code=ErrorCode.PROVIDER_ERROR, error_message="interrupted"
        )
    text = _text(result.value)
    code = result.error_code.value if result.error_code else None
    outcome = "refused" if result.error_code is ErrorCode.INSUFFICIENT_CREDITS else result.status.value
    finish_result(
        con,
        started.result_id,
        {
            "status": result.status.value,
            "value": text,
            "error_code": code,
            "error_message": result.error_message,
            "error_hint": HINTS.get(result.error_code) if result.error_code else None,
            "credits": result.credits,
            "tokens": result.tokens,
            "provider_cost": result.provider_cost,
            "cached": result.cached,
            "latency_ms": result.latency_ms,
            "detail": result.detail,
        },
    )
    campaign_id = None if tables is None else tables.campaign_id
    con.execute(
        "INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, logged_at, "
        "duration_ms, cost, actor, trigger, tokens, provider_cost, cached, error_code, action_id) "
        "VALUES (?, ?, ?, ?, 1, 'action', ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            started.run_id,
            campaign_id,
            action.name,
            row_id,
            outcome,
            result.latency_ms,
            result.credits,
            *who,
            result.tokens,
            result.provider_cost,
            result.cached,
            code,
            action.action_id,
        ],
    )
    if result.credits:
        con.execute(
            "INSERT INTO credit_ledger VALUES (now(), ?, ?, ?, 'action')",
            [-result.credits, started.run_id, campaign_id],
        )
    add_progress(
        con,
        started.run_id,
        done=1,
        credits=result.credits,
        tokens=result.tokens,
        provider_cost=result.provider_cost or 0.0,
        cache_hits=int(result.cached),
        beat=True,
    )
    if action.produces == "document" and result.status is Status.DONE and text and tables is not None:
        title = f"{action.name}, record {row_id} of {tables.spec.name}"
        insert_document(
            con, action.action_id, tables.campaign_id, row_id, started.result_id, started.run_id, title, text, who[0]
        )
    report = RunReport(started.run_id, events=[ExecutionEvent(action.name, outcome, 1, (row_id,))])
    if outcome == "refused":
        report.message = f"action '{action.name}' was not run: {result.error_message or 'credits ran out'}"
    if tables is not None:
        finish_run(con, tables, report, "stopped" if result.error_code is ErrorCode.CANCELLED else "done")
    else:
        close_run(con, started.run_id, "failed", "the campaign was removed while the action ran")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)
