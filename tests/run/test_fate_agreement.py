"""The cell-fate rules (engine/graph/fate.py) rendered four ways agree: the planner (plan_row, Python sets), the
verdicts (engine/run/verdicts.py, Arrow), the SQL the executor and the fused pass run (on an in-memory DuckDB) and
the scalar rules themselves, on random status combinations: upstream statuses, the cell's own status, its old key
matching or not, its old error code, Run Again, a pause or a disabled step, which upstream statuses it may read.

`disagreements` lists every way the renderings differ for one case; the hypothesis test wants none, and
test_a_set_changed_in_one_rendering_is_caught shows that a status added to or taken from one rendering's set is
found."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.graph import Action, CellPlan, ColumnGraph, ColumnNode, Request, fate, plan_row, planner
from engine.graph.fate import (
    BLOCKING,
    EXECUTED,
    FRESH_WHEN_KEY_MATCHES,
    FUSABLE,
    FUSABLE_FORCED,
    GOES_STALE,
    HOLDING,
    PENDING,
    SENDABLE,
    SETTLED,
    Verdict,
)
from engine.run import verdicts
from engine.run.executor import Executor, restore_status
from engine.run.fused import FusedColumn, _done
from engine.store.schema import quote
from engine.types import RETRYABLE_CODES, ErrorCode, Status

CODES = ["", *(c.value for c in ErrorCode)]  # '' is how the executor gathers "no error code"
OLD_KEY = 7


@dataclass(frozen=True)
class Case:
    deps: tuple[Status, ...]  # the upstream step cells' statuses, in dependency order (u0, u1, ...)
    own: Status
    same_key: bool
    code: str
    forced: bool
    paused: bool
    enabled: bool
    has_value: bool
    sendable_only: bool  # the cell is a side effect's: it reads current upstream values only
    auto: bool


cases = st.builds(
    Case,
    deps=st.lists(st.sampled_from(list(Status)), min_size=1, max_size=3).map(tuple),
    own=st.sampled_from(list(Status)),
    same_key=st.booleans(),
    code=st.sampled_from(CODES),
    forced=st.booleans(),
    paused=st.booleans(),
    enabled=st.booleans(),
    has_value=st.booleans(),
    sendable_only=st.booleans(),
    auto=st.booleans(),
)

_con: duckdb.DuckDBPyConnection | None = None


def sql(expressions: dict[str, str], columns: dict[str, str | None]) -> dict[str, Any]:
    """The values of SQL expressions over one row of VARCHAR `columns`, in one statement (an in-memory DuckDB)."""
    global _con
    if _con is None:
        _con = duckdb.connect()
    row = ", ".join(f"?::VARCHAR AS {quote(n)}" for n in columns)
    selected = ", ".join(f"{e} AS {quote(n)}" for n, e in expressions.items())
    found = _con.execute(f"SELECT {selected} FROM (SELECT {row})", list(columns.values())).fetchall()[0]
    return dict(zip(expressions, found, strict=True))


def gathered(case: Case) -> pa.Table:
    """One row of the facts the executor gathers for a cell (engine/run/executor.py, _gather_inputs)."""
    columns: dict[str, pa.Array] = {"row_id": pa.array([1], pa.int64())}
    for i, status in enumerate(case.deps):
        columns[f"s_u{i}"] = pa.array([status.value], pa.string())
    columns |= {
        "key": pa.array([OLD_KEY if case.same_key else OLD_KEY + 1], pa.uint64()),
        "old_status": pa.array([case.own.value], pa.string()),
        "old_key": pa.array([OLD_KEY], pa.uint64()),
        "old_value": pa.array(["v" if case.has_value else None], pa.string()),
        "old_code": pa.array([case.code], pa.string()),
        "_present": pa.array([True]),
    }
    return pa.table(columns)


def arrow_decision(case: Case) -> tuple[str, str | None]:
    """The verdict and blame engine/run/verdicts.py decides for the case's cell."""
    checks = verdicts.Checks(
        forced=case.forced, enabled=case.enabled, has_run_if=False, has_required=False, paused=case.paused
    )
    readable = SENDABLE if case.sendable_only else None
    table = verdicts.decide(gathered(case), [f"u{i}" for i in range(len(case.deps))], readable, checks)
    return table.column("verdict")[0].as_py(), table.column(verdicts.BLAME)[0].as_py()


def rule_decision(case: Case) -> tuple[str, str | None]:
    """The same decision from fate's scalar rules: the gate, then keeps_key; a refusal keeps a cell that holds an
    outcome (stale if it was fresh under another key)."""
    readable = SENDABLE if case.sendable_only else SETTLED
    gated = next(
        ((v, f"u{i}") for i, s in enumerate(case.deps) if (v := fate.gate(s, readable)) is not None), (None, None)
    )
    refused = case.paused or not case.enabled
    verdict = Verdict.PAUSED if case.paused else Verdict.DISABLED if refused else Verdict.RUN
    if fate.keeps_key(case.own, case.same_key, case.code, forced=case.forced):
        verdict = Verdict.KEEP
    decided, blame = (gated[0], gated[1]) if gated[0] is not None else (verdict, None)
    if refused and (case.own in HOLDING or case.has_value):
        fresh_elsewhere = case.own in FRESH_WHEN_KEY_MATCHES and not case.same_key
        decided, blame = (Verdict.STALE if fresh_elsewhere else Verdict.KEEP), None
    return decided.value, blame


def sql_gate(case: Case) -> str:
    """The gate rendered in SQL from fate's sets (BLOCKING first, then what the cell may read): NULL, or
    'block:<dep>' or 'wait:<dep>' for the first dep that gates."""
    readable = SENDABLE if case.sendable_only else SETTLED
    whens = []
    for i in range(len(case.deps)):
        status = f"coalesce(s_u{i}, 'empty')"
        whens.append(f"WHEN {fate.sql_in(status, BLOCKING)} THEN 'block:u{i}'")
        whens.append(f"WHEN NOT ({fate.sql_in(status, readable)}) THEN 'wait:u{i}'")
    return f"CASE {' '.join(whens)} END"


def sql_facts(case: Case) -> dict[str, Any]:
    """Every SQL rendering of the rules over the case's cell, run on DuckDB in one statement: the gate, the fused
    pass's `_done` over several sets of possible statuses, the retry test, holding an outcome, the status a claim
    is restored to, and EXECUTED."""
    value = "v" if case.has_value else None
    columns = {f"s_u{i}": s.value for i, s in enumerate(case.deps)} | {
        "status": case.own.value,
        "status:c": case.own.value,
        "old_status": case.own.value,
        "error_code": case.code,
        "value": value,
        "old_value": value,
    }
    expressions = {"gate": sql_gate(case)}
    for i, possible in enumerate(POSSIBLE):
        if case.own in possible:
            column = FusedColumn("c", "1", (), "v", False, False, True, frozenset(s.value for s in possible))
            expressions[f"done{i}"] = _done(column)
    expressions |= {
        "retried": fate.sql_retried(),
        "holds": f"old_value IS NOT NULL OR {fate.sql_in('old_status', HOLDING)}",
        "restored": restore_status(case.auto),
        "executed": fate.sql_in("status", EXECUTED),
    }
    return sql(expressions, columns)


# Sets of statuses a fused column's cells may be in: `_done` must not depend on which.
POSSIBLE = [FUSABLE, FUSABLE_FORCED, frozenset(Status)]


def planner_gate(case: Case) -> CellPlan | None:
    """What plan_row plans for the cell c reading manual steps u0.. (no lazy pull) when asked to run it."""
    nodes = [ColumnNode("in", is_input=True)]
    nodes += [ColumnNode(f"u{i}", run="manual", deps=("in",)) for i in range(len(case.deps))]
    nodes.append(ColumnNode("c", deps=tuple(f"u{i}" for i in range(len(case.deps)))))
    graph = ColumnGraph.build(nodes)
    states = {f"u{i}": s for i, s in enumerate(case.deps)} | {"c": case.own}
    request = Request.run_again(["c"]) if case.forced else Request.run(["c"], statuses=frozenset(Status))
    return plan_row(graph, states, request).get("c")


def planner_stale(own: Status) -> bool:
    """Whether plan_row marks a manual cell in `own` stale when its input is edited."""
    graph = ColumnGraph.build([ColumnNode("in", is_input=True), ColumnNode("m", run="manual", deps=("in",))])
    return plan_row(graph, {"m": own}, Request.edit(["in"])).get("m") == CellPlan(Action.STALE)


def arrow_stale(own: Status) -> bool:
    """Whether verdicts.outcomes writes a STALE plan's cell in `own` whose inputs changed (key no longer matches)."""
    case = Case((Status.DONE,), own, False, "", False, False, True, True, False, False)
    table = verdicts.decide(gathered(case), ["u0"], None, verdicts.Checks(False, True, False, False))
    out = verdicts.outcomes(
        table, CellPlan(Action.STALE), verdicts.Source(), run_id=1, now=datetime(2026, 1, 1), claimed=set()
    )
    return out.num_rows == 1


def executor_unchanged(own: Status) -> bool:
    """Executor._unchanged's early cutoff for a run's cell in `own`, nothing upstream edited or rewritten."""
    state = SimpleNamespace(
        _respecified=set(),
        _edited=None,
        _written=set(),
        campaign=SimpleNamespace(spec=SimpleNamespace(column=lambda _: SimpleNamespace(deps=("in",)))),
    )
    return Executor._unchanged(state, "c", CellPlan(Action.RUN), [own.value])  # type: ignore[arg-type]


def disagreements(case: Case) -> list[str]:
    """Every way the renderings of the rules disagree on `case` (empty when they agree)."""
    found = []
    arrow, rule = arrow_decision(case), rule_decision(case)
    if arrow != rule:
        found.append(f"verdicts.decide {arrow} != fate's rules {rule}")
    facts = sql_facts(case)
    refused = case.paused or not case.enabled
    if not refused:  # no refusal overrules the gate
        gate_sql = tuple(facts["gate"].split(":")) if facts["gate"] is not None else (None, None)
        gate_arrow = arrow if arrow[0] in (Verdict.WAIT.value, Verdict.BLOCK.value) else (None, None)
        if gate_sql != gate_arrow:
            found.append(f"SQL gate {gate_sql} != Arrow gate {gate_arrow}")
        plan = planner_gate(case)
        # a run is computing it (that answer will do), or it was edited by hand and not asked to be unpinned
        skipped = case.own is Status.RUNNING or (case.own in fate.HAND_SET and not case.forced)
        if not case.sendable_only and plan is None and not skipped:
            found.append("plan_row left out a cell it was asked to run")
        if not case.sendable_only and plan is not None:
            gate_plan = (plan.action.value, plan.blame) if plan.action in (Action.WAIT, Action.BLOCK) else (None, None)
            if gate_plan != gate_arrow:
                found.append(f"plan_row gate {gate_plan} != Arrow gate {gate_arrow}")
        if gate_arrow == (None, None):
            keeps = arrow[0] == Verdict.KEEP.value
            if not case.forced and case.same_key and executor_unchanged(case.own) and not keeps:
                found.append("Executor._unchanged keeps a cell verdicts would recompute")
            if not case.forced and case.own in FUSABLE and keeps != (case.same_key and facts["done0"]):
                found.append(f"fused._done {facts['done0']} != Arrow keep {keeps}")
            retried = bool(facts["retried"])
            if retried != fate.retried(case.own, case.code):
                found.append("SQL retried != fate.retried")
            if case.own is Status.ERROR and case.same_key and not case.forced and keeps == retried:
                found.append(f"an error kept ({keeps}) though retried ({retried}), or neither")
    for i, possible in enumerate(POSSIBLE):
        if case.own in possible and bool(facts[f"done{i}"]) != (case.own in FRESH_WHEN_KEY_MATCHES):
            found.append(f"fused._done over {sorted(possible)} differs from FRESH_WHEN_KEY_MATCHES")
    holds_arrow = verdicts.holds(gathered(case))[0].as_py()
    if not holds_arrow == bool(facts["holds"]) == (case.own in HOLDING or case.has_value):
        found.append(f"holds: Arrow {holds_arrow}, SQL {facts['holds']}")
    restored = facts["restored"]
    if restored != fate.restored(case.auto, case.has_value).value or Status(restored) not in PENDING:
        found.append(f"restore_status gives {restored}")
    if bool(facts["executed"]) != (case.own in EXECUTED):
        found.append("SQL EXECUTED differs")
    if case.own is not Status.WAITING and planner_stale(case.own) != arrow_stale(case.own):
        found.append(f"stale: plan_row {planner_stale(case.own)}, verdicts.outcomes {arrow_stale(case.own)}")
    return found


# Every own and upstream status, under a few switches: (same_key, code, forced, paused, enabled, has_value, sendable).
SWITCHES = [
    (False, "", False, False, True, False, False),
    (True, "", False, False, True, True, False),
    (True, "timeout", False, False, True, False, False),
    (False, "", True, False, True, True, True),
    (True, "", False, True, True, True, False),
    (False, "", False, False, False, False, False),
]
# (own == dep first: those cases alone witness every change test_a_set_changed_in_one_rendering_is_caught makes)
ONE_DEP_CASES = [
    Case((dep,), own, same_key, code, forced, paused, enabled, has_value, sendable, auto)
    for own, dep in sorted(itertools.product(Status, Status), key=lambda pair: pair[0] != pair[1])
    for (same_key, code, forced, paused, enabled, has_value, sendable), auto in zip(
        SWITCHES, itertools.cycle((True, False)), strict=False
    )
]


def test_every_status_alone_agrees() -> None:
    """Each own status with each single upstream status, exhaustively, under the switches above."""
    for case in ONE_DEP_CASES:
        assert disagreements(case) == [], case


@settings(max_examples=200, deadline=None)
@given(cases)
def test_the_renderings_of_the_rules_agree(case: Case) -> None:
    assert disagreements(case) == []


def test_the_sets_say_what_the_design_says() -> None:
    """Spot values, so that a set changed everywhere at once is still noticed."""
    assert fate.gate(Status.ERROR) is Verdict.BLOCK
    assert fate.gate(Status.STALE) is None and fate.gate(Status.STALE, SENDABLE) is Verdict.WAIT
    assert fate.gate(Status.PINNED, SENDABLE) is Verdict.WAIT and fate.gate(Status.CONFIRMED, SENDABLE) is None
    assert fate.gate(Status.PAUSED) is Verdict.WAIT and fate.gate(Status.EMPTY) is Verdict.WAIT
    assert not BLOCKING & SETTLED and not BLOCKING & SENDABLE
    assert planner.DEFAULT_RUN_STATUSES == PENDING == planner.PULLED
    assert fate.keeps_key(Status.ERROR, True, ErrorCode.PROVIDER_ERROR.value)
    assert not any(fate.keeps_key(Status.ERROR, True, c.value) for c in RETRYABLE_CODES)
    assert fate.sql_retried() == (
        "status = 'error' AND error_code IN ('cancelled', 'insufficient_credits', 'rate_limited', 'timeout')"
    )
    assert restore_status(True) == "CASE WHEN value IS NULL THEN 'queued' ELSE 'stale' END"
    assert restore_status(False) == "CASE WHEN value IS NULL THEN 'empty' ELSE 'stale' END"
    assert GOES_STALE == {Status.DONE, Status.SKIPPED, Status.NOT_FOUND, Status.ERROR, Status.RUNNING}


@pytest.mark.parametrize(
    ("module", "name", "change"),
    [
        (planner, "SETTLED", lambda s: s - {Status.STALE}),  # the planner's gate reads fewer statuses
        (verdicts, "SETTLED", lambda s: s | {Status.PAUSED}),  # verdicts' gate reads one more
        (planner, "GOES_STALE", lambda s: s - {Status.RUNNING}),  # the planner marks fewer cells stale
        (verdicts, "GOES_STALE", lambda s: s | {Status.QUEUED}),  # verdicts writes more stale cells
        (verdicts, "FRESH_WHEN_KEY_MATCHES", lambda s: s | {Status.STALE}),  # verdicts keeps more cells
        (verdicts, "HOLDING", lambda s: s - {Status.PAUSED}),  # verdicts holds fewer cells
        (verdicts, "BLOCKING", lambda s: s | {Status.PAUSED}),  # verdicts blocks on one more status
    ],
)
def test_a_set_changed_in_one_rendering_is_caught(
    monkeypatch: pytest.MonkeyPatch, module: object, name: str, change: Any
) -> None:
    monkeypatch.setattr(module, name, frozenset(change(getattr(module, name))))
    assert any(disagreements(case) for case in ONE_DEP_CASES)
