"""Cell-fate rules, defined once: the status sets (settled, hand-set, current, pending, keeps its key, goes stale,
holds an outcome, ...), the rules over them (a cell keeps its key, the dependency gate, the status a claimed cell is
restored to, the verdict vocabulary) and their renderings as SQL text.

The planner decides over these sets in Python, engine/run/verdicts.py over Arrow arrays, and the executor and the
fused pass in SQL; each takes its sets and expressions from here, so the three agree (tests/run/test_fate_agreement.py
runs them all on random status combinations). Pure: no I/O and no data library (verdicts renders the sets as Arrow
arrays itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from functools import cache

from engine.types import RETRYABLE_CODES, ErrorCode, Status

# Statuses whose cell holds a value that downstream steps may read.
SETTLED = frozenset({Status.DONE, Status.STALE, Status.SKIPPED, Status.NOT_FOUND, Status.PINNED, Status.CONFIRMED})
# Statuses of a cell edited by hand: recompute never overwrites it; Run Again on the cell unpins it.
HAND_SET = frozenset({Status.PINNED, Status.CONFIRMED})
# Statuses of a step cell whose value is current: what Save to Record may copy into the record.
CURRENT = frozenset({Status.DONE, Status.PINNED, Status.CONFIRMED})
# Statuses of a cell that still needs computing: what a run computes by default, and the statuses of an auto
# ancestor that a lazy pull computes first.
PENDING = frozenset({Status.EMPTY, Status.STALE, Status.QUEUED, Status.WAITING, Status.PAUSED})
# Statuses that a recompute may keep when the cell's key has not changed (an error is kept by rule 9 unless it
# failed for a passing reason: see keeps_key).
FRESH_WHEN_KEY_MATCHES = frozenset({Status.DONE, Status.SKIPPED, Status.NOT_FOUND})
# Upstream statuses that block a reader with upstream_error; any other status a reader may not read makes it wait.
BLOCKING = frozenset({Status.ERROR})
# A manual cell goes stale only from these statuses (an empty or queued one has nothing to be stale about; a
# running one had its inputs edited meanwhile).
GOES_STALE = frozenset({Status.DONE, Status.SKIPPED, Status.NOT_FOUND, Status.ERROR, Status.RUNNING})
# Statuses of a manual cell with run_if (not asked for) that its run_if decides again when its inputs change (a
# skipped one, or one stale without a value); one holding a value is never skipped so: it goes stale, keeping it.
# (A cell that has not run, empty, is decided on every request that plans its row.)
SCREENED = frozenset({Status.SKIPPED, Status.STALE})
# Statuses of a cell that holds an outcome: a refusal (pause, disabled step) or a wait on this run's paid result
# leaves such a cell as it is. Any cell holding a value counts too.
HOLDING = SETTLED | {Status.ERROR, Status.PAUSED}
# Outcomes of a cell that was computed (or settled without computing): a paid step logs one activity row per cell.
EXECUTED = frozenset({Status.DONE, Status.ERROR, Status.SKIPPED, Status.NOT_FOUND})
# Outcomes of a call that answered (found or not): what the memo remembers and what counts an export delivered.
ANSWERED = frozenset({Status.DONE, Status.NOT_FOUND})
# Upstream statuses a side effect (export) may read: current values only (not stale, not pinned-and-unconfirmed).
SENDABLE = frozenset({Status.DONE, Status.NOT_FOUND, Status.SKIPPED, Status.CONFIRMED})
# Statuses a fused formula column's cells may be in (engine/run/fused.py): only those a run recomputes or keeps by
# its key alone (an error is kept by rule 9 and a skip needs run_if: the general path); with Run Again, any settled
# or hand-set one too.
FUSABLE = frozenset({Status.DONE, Status.STALE, Status.QUEUED, Status.EMPTY})
FUSABLE_FORCED = FUSABLE | {Status.ERROR} | HAND_SET


class Verdict(str, Enum):
    """What becomes of one planned cell (engine/run/verdicts.py); WAIT and BLOCK name the upstream column to
    blame beside it."""

    RUN = "run"
    KEEP = "keep"  # it already holds the result for its key: nothing is written
    STALE = "stale"  # a refused cell whose inputs changed: its value and key stay, marked stale
    SKIP = "skip"  # run_if is false
    MISSING = "missing"  # a required field is empty
    PAUSED = "paused"  # the step or its campaign is paused
    DISABLED = "disabled"  # the step is switched off
    WAIT = "wait"  # an upstream cell has no readable value yet
    BLOCK = "block"  # an upstream cell ended in error


# Verdicts other than run whose cell records the key it was judged under.
KEYED = frozenset({Verdict.SKIP, Verdict.MISSING})


def gate(dep_status: Status, readable: Iterable[Status] = SETTLED) -> Verdict | None:
    """Whether a cell may read an upstream cell in `dep_status`: None if it may, else WAIT or BLOCK."""
    if dep_status in BLOCKING:
        return Verdict.BLOCK
    return None if dep_status in readable else Verdict.WAIT


def keeps_key(status: Status, same_key: bool, error_code: str | None = None, *, forced: bool = False) -> bool:
    """Whether a cell already holds the result for its key, so a recompute keeps it: a fresh status under the same
    key, or a failure under the same key whose reason was not a passing one (rule 9). Run Again keeps nothing."""
    if forced or not same_key:
        return False
    if status in FRESH_WHEN_KEY_MATCHES:
        return True
    return status in BLOCKING and error_code not in {c.value for c in RETRYABLE_CODES}


def retried(status: Status, error_code: str | None) -> bool:
    """Whether a run queues a cell again before planning: it failed for a passing reason (rule 9 keeps the rest)."""
    return status is Status.ERROR and error_code in {c.value for c in RETRYABLE_CODES}


def restored(auto: bool, has_value: bool) -> Status:
    """The status a claimed cell goes back to when its call never ran (Stop, a crashed runner)."""
    if has_value:
        return Status.STALE
    return Status.QUEUED if auto else Status.EMPTY


# Renderings.


def sql_literal(status: Status | str) -> str:
    """A status as an SQL string literal (statuses are plain identifiers: nothing to escape)."""
    return f"'{Status(status).value}'"


def sql_in(expression: str, statuses: Iterable[Status | str], possible: Iterable[Status | str] | None = None) -> str:
    """SQL for whether `expression` (a status) is one of `statuses`, NULL when it is NULL. Given the statuses
    `expression` may be in (`possible`, where empty stands for NULL too), the test is as small as they allow: TRUE
    or FALSE, `= 'x'` for one status."""
    wanted = {Status(s) for s in statuses}
    if possible is not None:
        known = {Status(s) for s in possible}
        wanted &= known
        if not wanted:
            return "FALSE"
        if known <= wanted:
            return "TRUE"
    if not wanted:
        return "FALSE"
    if len(wanted) == 1:
        return f"{expression} = {sql_literal(next(iter(wanted)))}"
    return f"{expression} IN ({', '.join(sql_literal(s) for s in sorted(wanted))})"


def sql_codes(codes: Iterable[ErrorCode] = RETRYABLE_CODES) -> str:
    """The error codes as an SQL list of literals (for `error_code IN (...)`)."""
    return ", ".join(f"'{c.value}'" for c in sorted(codes))


def sql_retried(
    status: str = "status", error_code: str = "error_code", codes: Iterable[ErrorCode] = RETRYABLE_CODES
) -> str:
    """SQL for `retried` over a cell's status and error code columns; with `codes`, for a cell that failed with
    one of them (a retry of failed cells, `runsheet run --errors`, asks for any code)."""
    return f"{sql_in(status, BLOCKING)} AND {error_code} IN ({sql_codes(codes)})"


def sql_restored(auto: bool, value: str = "value") -> str:
    """SQL for the status a claimed cell goes back to (`restored`), over its value column."""
    empty, held = sql_literal(restored(auto, False)), sql_literal(restored(auto, True))
    return f"CASE WHEN {value} IS NULL THEN {empty} ELSE {held} END"


@cache
def values(members: frozenset[Status | Verdict]) -> frozenset[str]:
    """A set of statuses (or verdicts) as their plain string values (Enum members hash by name, not by value)."""
    return frozenset(m.value for m in members)
