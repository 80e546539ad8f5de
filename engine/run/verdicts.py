"""What happens to each planned cell of one column, decided over Arrow arrays: the gate on upstream statuses, the
verdict (a fate.Verdict: run, keep, wait, block, skip, missing, disabled, ...) with the upstream column it blames,
and the outcome row written to the column's table. The status sets and rules are engine/graph/fate.py's.

A refusal changes nothing (DESIGN, Invariants 1): a paused or disabled step keeps every cell that holds an
outcome, and a cell waiting on a paid result of this run keeps its stored state until that result is in (then the
cells it feeds are judged: a refused call leaves them as they were).

The executor gathers the raw facts per cell in one SQL statement (input values, upstream statuses, the new key, the
old cell, run_if and required checks, a formula's value); the decisions are made here. Planning a SQL statement
costs DuckDB about as much as its expressions, so deciding in SQL cost most of a small edit's time, while these
vectorized array operations take the same few microseconds for one row and stay linear for a million.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from engine.graph import Action, CellPlan
from engine.graph.fate import (
    BLOCKING,
    FRESH_WHEN_KEY_MATCHES,
    GOES_STALE,
    HOLDING,
    KEYED,
    SETTLED,
    Verdict,
)
from engine.types import HINTS, PAUSED_HINT, RETRYABLE_CODES, ErrorCode, Status


def strings(values: Sequence[str]) -> pa.StringArray:
    """Python strings as an Arrow string array, assembled from its buffers: pyarrow's own conversion of Python
    values (pa.array, pa.scalar) imports pandas, 0.2 s that importing the engine and starting a command must not pay."""
    encoded = [value.encode() for value in values]
    offsets = array("i", [0])
    for item in encoded:
        offsets.append(offsets[-1] + len(item))
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


KEEP = Verdict.KEEP.value
# Each error code with a hint, and the hint, in the same order.
HINTED_CODES = strings([code.value for code in HINTS])
HINT_TEXTS = strings(list(HINTS.values()))
RETRYABLE = strings(sorted(c.value for c in RETRYABLE_CODES))
GATED = strings([Verdict.BLOCK.value, Verdict.WAIT.value])  # the verdicts that name a dep to blame
# The decided column naming the dep a WAIT or BLOCK blames; ':' cannot occur in a column name, so no input meets it.
BLAME = "verdict:blame"


@cache
def arrow(members: frozenset[Status | Verdict]) -> pa.Array:
    """A set of statuses (or verdicts) as a sorted Arrow string array (for pc.is_in), built once per set."""
    return strings(sorted(m.value for m in members))


def _fill(array: pa.ChunkedArray | pa.Array, value: str) -> pa.Array:
    return pc.fill_null(array, pa.scalar(value, pa.string()))


def constant(value: object, length: int, type_: pa.DataType) -> pa.Array:
    """An array of `length` copies of `value` (nulls for None)."""
    if value is None:
        return pa.nulls(length, type_)
    encoded = value.encode() if isinstance(value, str) and type_ == pa.string() else None
    if encoded is not None and len(encoded) * length < 2**31:
        # built from its buffers: pa.repeat takes 0.2 s per million strings, this 5 ms
        int32 = pa.int32()
        ends = pc.cumulative_sum(pa.repeat(pa.scalar(len(encoded), int32), length))
        offsets = pa.concat_arrays([pa.array([0], int32), ends])
        return pa.StringArray.from_buffers(length, offsets.buffers()[1], pa.py_buffer(encoded * length))
    return pa.repeat(pa.scalar(value, type_), length)


def decide(table: pa.Table, step_deps: Sequence[str], readable: Iterable[Status] | None, checks: Checks) -> pa.Table:
    """The gathered facts of one column's planned cells with each cell's `verdict` (a Verdict's value) and BLAME
    (the upstream column a WAIT or BLOCK names, else null) appended: the one decision per column."""
    gates, blames = gate(table, step_deps, readable)
    refused = checks.paused or not checks.enabled
    early = checks.has_run_if and not refused
    if early:
        # Decided early: where run_if reads only cells that may be read and is false, the cell is skipped whatever
        # else it waits on (an export for priority A rows does not wait on the opener of a C row).
        known, _ = gate(table, checks.run_if_deps, readable)
        skips = pc.fill_null(pc.and_(pc.is_null(known), pc.invert(table.column("_run_if"))), False)
        early = pc.any(pc.and_(skips, pc.is_valid(gates))).as_py()
        if early:
            gates = pc.if_else(skips, pa.scalar(None, pa.string()), gates)
    decided = verdicts(table, gates, checks)
    if refused or early:  # a refusal or an early skip may have overruled a gate: only WAIT and BLOCK blame
        blames = pc.if_else(pc.is_in(decided, value_set=GATED), blames, pa.scalar(None, pa.string()))
    return table.append_column("verdict", decided).append_column(BLAME, blames)


def gate(
    table: pa.Table, step_deps: Sequence[str], readable: Iterable[Status] | None = None
) -> tuple[pa.Array, pa.Array]:
    """Per row: the verdict of the gate, None when every upstream step cell may be read, else BLOCK (it failed) or
    WAIT (no readable value yet); and the dep it blames, the first such dep in order (fate.gate over live
    statuses)."""
    allowed = arrow(SETTLED if readable is None else frozenset(readable))
    blocking = arrow(BLOCKING)
    result: pa.Array = pa.nulls(table.num_rows, pa.string())
    blame: pa.Array = pa.nulls(table.num_rows, pa.string())
    for dep in reversed(step_deps):  # the first dep in order has the last word
        status = _fill(table.column("s_" + dep), Status.EMPTY.value)
        blocks = pc.is_in(status, value_set=blocking)
        waits = pc.invert(pc.is_in(status, value_set=allowed))
        gated = pc.or_(blocks, waits)
        if not pc.any(gated).as_py():  # the usual bulk case: every cell may read this dep
            continue
        result = pc.if_else(blocks, Verdict.BLOCK.value, pc.if_else(waits, Verdict.WAIT.value, result))
        # the cell at the root: a waiting or blocked dep passes on what it waits on or is blocked by (b_<dep>)
        via = "b_" + dep
        culprit = pc.coalesce(table.column(via), pa.scalar(dep)) if via in table.column_names else dep
        blame = pc.if_else(gated, culprit, blame)
    return result, blame


@dataclass(frozen=True)
class Checks:
    """What decides whether a gathered cell runs: Run Again, the step's switch, and whether run_if and required
    were given (their per-row results are the gathered columns `_run_if` and `_missing`)."""

    forced: bool
    enabled: bool
    has_run_if: bool
    has_required: bool
    paused: bool = False  # the step or its campaign is paused (an operating switch, not the spec's `enabled`)
    run_if_deps: tuple[str, ...] = ()  # the upstream steps run_if reads: once they may be read, run_if is decided


def verdicts(table: pa.Table, gates: pa.Array, checks: Checks) -> pa.Array:
    """Per row (values of Verdict): the gate if any; KEEP when the cell already holds the result for this key
    (fate.keeps_key: rule 9 keeps a failure unless it failed for a passing reason; Run Again keeps nothing); PAUSED
    or DISABLED (a cell that holds an outcome is kept then, whatever its gate: a refusal changes nothing), SKIP
    (run_if false), MISSING (a required field is empty); else RUN."""
    n = table.num_rows
    verdict: pa.Array = constant(Verdict.RUN.value, n, pa.string())
    if checks.has_required:
        verdict = pc.if_else(pc.fill_null(table.column("_missing"), False), Verdict.MISSING.value, verdict)
    if checks.has_run_if:
        verdict = pc.if_else(pc.fill_null(table.column("_run_if"), False), verdict, Verdict.SKIP.value)
    refused = checks.paused or not checks.enabled
    if refused:
        verdict = constant((Verdict.PAUSED if checks.paused else Verdict.DISABLED).value, n, pa.string())
    if not checks.forced:
        status = table.column("old_status")
        same_key = pc.fill_null(pc.equal(table.column("old_key"), table.column("key")), False)
        fresh = pc.is_in(status, value_set=arrow(FRESH_WHEN_KEY_MATCHES))
        settled_failure = pc.and_(
            pc.is_in(status, value_set=arrow(BLOCKING)),
            pc.invert(pc.is_in(table.column("old_code"), value_set=RETRYABLE)),
        )
        verdict = pc.if_else(pc.and_(same_key, pc.or_(fresh, settled_failure)), KEEP, verdict)
    decided = pc.coalesce(gates, verdict)
    if refused:
        # A refusal changes no value. But a fresh outcome whose inputs changed is fresh no longer: it keeps its
        # value and key, and says stale (rule 2), so that resuming the step computes it.
        outdated = pc.and_(
            pc.is_in(_fill(table.column("old_status"), Status.EMPTY.value), value_set=arrow(FRESH_WHEN_KEY_MATCHES)),
            pc.invert(pc.fill_null(pc.equal(table.column("old_key"), table.column("key")), False)),
        )
        decided = pc.if_else(holds(table), pc.if_else(outdated, Verdict.STALE.value, KEEP), decided)
    return decided


def holds(table: pa.Table) -> pa.Array:
    """Per gathered row: whether the cell holds an outcome (a value, or a settled, failed or paused state)."""
    status = _fill(table.column("old_status"), Status.EMPTY.value)
    return pc.or_(pc.is_in(status, value_set=arrow(HOLDING)), pc.is_valid(table.column("old_value")))


def held(table: pa.Table, pending: set[str]) -> pa.Array:
    """Per gathered row: whether the cell waits on a result still being computed in this run (a column of
    `pending`) while holding an outcome. Such a cell is not written now: it keeps its state until that result
    is in, so a refused or stopped call leaves it as it was."""
    if not pending:
        return constant(False, table.num_rows, pa.bool_())
    return pc.and_(waits_on(table, pending), holds(table))


def waits_on(table: pa.Table, pending: set[str]) -> pa.Array:
    """Per decided row: whether its verdict is WAIT on a column of `pending`."""
    on = pa.array(sorted(pending), type=pa.string())
    waits = pc.and_(pc.equal(table.column("verdict"), Verdict.WAIT.value), pc.is_in(table.column(BLAME), value_set=on))
    return pc.fill_null(waits, False)


@dataclass(frozen=True)
class Source:
    """Where a RUN takes its values: `computed` (a formula's or a Python-side kind's gathered `new_value`, with
    the batch's status and error when `batch`), `claim` (a paid cell, marked running until the runner writes its
    result) and `memo` (paid cells the workspace already has answers for: `memo_value`, `memo_status`)."""

    batch: bool = False
    claim: bool = False
    memo: bool = False


def outcomes(
    table: pa.Table, plan: CellPlan, source: Source, *, run_id: int, now: datetime, claimed: set[str]
) -> pa.Table:
    """The cells to write for the planned rows of `table` (the gathered facts with their verdicts), in the step
    table's column order; rows whose verdict is keep are left out (and, for STALE, cells with nothing to be
    stale about and cells waiting on a paid result computed in this run)."""
    verdict = table.column("verdict")
    if plan.action is Action.RUN:
        columns, written = _ran(table, source), pc.not_equal(verdict, KEEP)
        if claimed:
            written = pc.and_(written, pc.invert(held(table, claimed)))
    elif plan.action is Action.SCREEN:
        columns, written = _screened(table)
    else:
        columns = _marked(table, plan)
        if plan.action in (Action.QUEUE, Action.WAIT, Action.BLOCK):
            # a cell its run_if already skipped (verdicts) is skipped now rather than queued, waiting or blocked
            written = pc.not_equal(verdict, KEEP)
        elif plan.action is Action.STALE:
            # a manual cell whose input is being computed now is judged when that result is in
            written = pc.and_(
                pc.and_(pc.not_equal(verdict, KEEP), pc.is_in(table.column("old_status"), value_set=arrow(GOES_STALE))),
                pc.invert(waits_on(table, claimed)),
            )
    columns["present"] = table.column("_present")
    return _step_table(table.column("row_id"), columns, written, run_id=run_id, now=now)


def _ran(table: pa.Table, source: Source) -> dict[str, pa.Array]:
    """The decided columns of a RUN: cells whose verdict is run take their value from `source`; the others wait,
    are skipped, or fail (blocked upstream, disabled, missing a required field)."""
    verdict = table.column("verdict")
    old_value, old_key = table.column("old_value"), table.column("old_key")
    n = table.num_rows
    string = pa.string()
    no_text = pa.scalar(None, string)
    runs = pc.equal(verdict, Verdict.RUN.value)
    if source.claim:
        value, status, key = old_value, constant(Status.RUNNING.value, n, string), old_key
        if source.memo:
            answered = pc.is_valid(table.column("memo_status"))
            value = pc.if_else(answered, table.column("memo_value"), old_value)
            status = pc.coalesce(table.column("memo_status"), status)
            key = pc.if_else(answered, table.column("key"), old_key)
    else:
        value, key = table.column("new_value"), table.column("key")
        status = table.column("batch_status") if source.batch else constant(Status.DONE.value, n, string)
    batch_code = table.column("batch_code") if source.batch else pa.nulls(n, string)
    batch_message = table.column("batch_message") if source.batch else pa.nulls(n, string)
    cost = pc.fill_null(table.column("batch_cost"), 0.0) if source.batch else constant(0.0, n, pa.float64())
    cached = pc.is_valid(table.column("memo_status")) if source.memo else pa.nulls(n, pa.bool_())
    if pc.all(runs).as_py():  # a bulk run: every planned cell runs, so there is nothing to choose per row
        return {
            "value": value,
            "status": status,
            "key": key,
            "waiting_on": pa.nulls(n, string),
            "error_code": batch_code,
            "error_message": batch_message,
            "cost": cost,
            "cached": cached,
        }
    blame = table.column(BLAME)
    waits = pc.equal(verdict, Verdict.WAIT.value)
    blocks = pc.equal(verdict, Verdict.BLOCK.value)
    paused = pc.equal(verdict, Verdict.PAUSED.value)
    stale = pc.equal(verdict, Verdict.STALE.value)
    otherwise = pc.if_else(
        waits,
        Status.WAITING.value,
        pc.if_else(
            pc.equal(verdict, Verdict.SKIP.value),
            Status.SKIPPED.value,
            pc.if_else(paused, Status.PAUSED.value, pc.if_else(stale, Status.STALE.value, Status.ERROR.value)),
        ),
    )
    codes = pc.if_else(
        blocks,
        ErrorCode.UPSTREAM_ERROR.value,
        pc.if_else(
            pc.equal(verdict, Verdict.DISABLED.value),
            ErrorCode.ACTION_DISABLED.value,
            pc.if_else(pc.equal(verdict, Verdict.MISSING.value), ErrorCode.MISSING_REQUIRED_FIELD.value, no_text),
        ),
    )
    messages = pc.if_else(
        blocks,
        pc.binary_join_element_wise("upstream cell ", blame, " failed", ""),
        pc.if_else(
            pc.equal(verdict, Verdict.DISABLED.value),
            "the step is disabled",
            pc.if_else(
                pc.equal(verdict, Verdict.MISSING.value),
                "a required field is empty",
                pc.if_else(paused, "the step or its campaign is paused", no_text),
            ),
        ),
    )
    return {
        "value": pc.if_else(runs, value, pc.if_else(pc.or_(waits, stale), old_value, pa.nulls(n, old_value.type))),
        "status": pc.if_else(runs, status, otherwise),
        "key": pc.if_else(
            pc.or_(runs, pc.is_in(verdict, value_set=arrow(KEYED))),
            key,
            pc.if_else(stale, old_key, pa.nulls(n, pa.uint64())),
        ),
        "waiting_on": pc.if_else(pc.or_(waits, blocks), blame, no_text),
        "error_code": pc.if_else(runs, batch_code, codes),
        "error_message": pc.if_else(runs, batch_message, messages),
        "cost": pc.if_else(runs, cost, 0.0),
        "cached": cached,
    }


# The status a cell takes for each plan that marks it without computing.
MARKED = {
    Action.QUEUE: Status.QUEUED,
    Action.STALE: Status.STALE,
    Action.WAIT: Status.WAITING,
    Action.BLOCK: Status.ERROR,
}


def _marked(table: pa.Table, plan: CellPlan) -> dict[str, pa.Array]:
    """The decided columns of QUEUE, STALE, WAIT and BLOCK: a state (with what it waits on or what failed)
    over the old value and key, or no value for a blocked cell."""
    old_value, old_key = table.column("old_value"), table.column("old_key")
    n = table.num_rows
    blame = plan.blame or ""
    fixed = MARKED[plan.action].value
    block = plan.action is Action.BLOCK
    columns = {
        "value": pa.nulls(n, old_value.type) if block else old_value,
        "status": constant(fixed, n, pa.string()),
        "key": old_key if plan.action in (Action.QUEUE, Action.STALE) else pa.nulls(n, pa.uint64()),
        "waiting_on": constant(blame if plan.action in (Action.WAIT, Action.BLOCK) else None, n, pa.string()),
        "error_code": constant(ErrorCode.UPSTREAM_ERROR.value if block else None, n, pa.string()),
        "error_message": constant(f"upstream cell {blame} failed" if block else None, n, pa.string()),
        "cost": constant(0.0, n, pa.float64()),
        "cached": pa.nulls(n, pa.bool_()),
    }
    skip = pc.equal(table.column("verdict"), Verdict.SKIP.value)
    if plan.action is Action.STALE:
        # a cell holding a value keeps it, stale (run_if is judged again when it is asked for); one holding none
        # (a paid step's cell that run_if skipped, after a spec change) stays skipped rather than going stale
        skip = pc.and_(skip, pc.is_null(old_value))
    if not pc.any(skip).as_py():
        return columns
    # run_if is already false: skipped under its key, whatever the plan waited on (decide's early skip)
    return {
        name: pc.if_else(skip, _SKIPPED[name](table, n), array) if name in _SKIPPED else array
        for name, array in columns.items()
    }


# What a skipped cell holds, per decided column that differs from a marked one.
_SKIPPED = {
    "value": lambda table, n: pa.nulls(n, table.column("old_value").type),
    "status": lambda table, n: constant(Status.SKIPPED.value, n, pa.string()),
    "key": lambda table, n: table.column("key").cast(pa.uint64()),
    "waiting_on": lambda table, n: pa.nulls(n, pa.string()),
    "error_code": lambda table, n: pa.nulls(n, pa.string()),
    "error_message": lambda table, n: pa.nulls(n, pa.string()),
}


def _screened(table: pa.Table) -> tuple[dict[str, pa.Array], pa.Array]:
    """The decided columns of SCREEN (a manual step with run_if that was not asked for), and which rows are written:
    a cell without a value whose run_if is false is skipped under its key; a skipped one whose run_if may now hold
    is empty again (it never ran: Click to Run), and one holding a value goes stale (it keeps it); a cell that has
    not run is left for Click to Run."""
    verdict = table.column("verdict")
    n = table.num_rows
    held = pc.is_valid(table.column("old_value"))
    skip = pc.and_(pc.equal(verdict, Verdict.SKIP.value), pc.invert(held))
    stale = pc.is_in(_fill(table.column("old_status"), Status.EMPTY.value), value_set=arrow(GOES_STALE))
    nothing = pa.nulls(n, pa.string())
    columns = {
        "value": pc.if_else(skip, pa.nulls(n, table.column("old_value").type), table.column("old_value")),
        "status": pc.if_else(skip, Status.SKIPPED.value, pc.if_else(held, Status.STALE.value, Status.EMPTY.value)),
        "key": pc.if_else(
            skip, table.column("key"), pc.if_else(held, table.column("old_key"), pa.nulls(n, pa.uint64()))
        ),
        "waiting_on": nothing,
        "error_code": nothing,
        "error_message": nothing,
        "cost": constant(0.0, n, pa.float64()),
        "cached": pa.nulls(n, pa.bool_()),
    }
    return columns, pc.and_(pc.not_equal(verdict, KEEP), pc.or_(skip, stale))


def _step_table(
    row_ids: pa.ChunkedArray, columns: dict[str, pa.Array], written: pa.Array, *, run_id: int, now: datetime
) -> pa.Table:
    """The decided columns of the rows in `written`, with the derived ones, in the step tables' column order;
    then `present`: whether the step table holds the row's cell already (it is updated in place, not appended)."""
    decided = pa.table({"row_id": row_ids, **columns})
    if not pc.all(written).as_py():  # a bulk run usually writes every planned cell: no copy then
        decided = decided.filter(written)
    n = decided.num_rows
    status = decided.column("status")
    codes = decided.column("error_code")
    hints = pa.nulls(n, pa.string()) if codes.null_count == n else pc.take(HINT_TEXTS, pc.index_in(codes, HINTED_CODES))
    if n and pc.any(pc.equal(status, Status.PAUSED.value)).as_py():
        hints = pc.if_else(pc.equal(status, Status.PAUSED.value), PAUSED_HINT, hints)
    stamp = pa.scalar(now, pa.timestamp("us"))
    return pa.table(
        {
            "row_id": decided.column("row_id"),
            "value": decided.column("value"),
            "status": status,
            "key": decided.column("key").cast(pa.uint64()),
            "waiting_on": decided.column("waiting_on"),
            "error_code": decided.column("error_code"),
            "error_message": decided.column("error_message"),
            "error_hint": hints,
            "cost": decided.column("cost").cast(pa.float64()),
            "started_at": constant(now, n, pa.timestamp("us")),
            "finished_at": pc.if_else(
                pc.equal(status, Status.RUNNING.value), pa.scalar(None, pa.timestamp("us")), stamp
            ),
            "run_id": constant(run_id, n, pa.int64()),
            "tokens": pa.nulls(n, pa.int64()),
            "latency_ms": pa.nulls(n, pa.float64()),
            "attempts": pa.nulls(n, pa.int32()),
            "provider_cost": pa.nulls(n, pa.float64()),
            "cached": decided.column("cached"),
            "detail": pa.nulls(n, pa.string()),
            "present": decided.column("present"),
        }
    )
