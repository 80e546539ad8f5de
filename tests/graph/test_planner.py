"""Table-driven planner cases: a graph, the row's statuses, a request, and the expected plan."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.graph import Action, CellPlan, ColumnGraph, ColumnNode, Request, plan_row
from engine.types import Status

E, D, S, P, ERR, Q, W = (
    Status.EMPTY,
    Status.DONE,
    Status.STALE,
    Status.PINNED,
    Status.ERROR,
    Status.QUEUED,
    Status.WAITING,
)
RUN, QUEUE, STALE, WAIT, BLOCK = CellPlan(Action.RUN), CellPlan(Action.QUEUE), CellPlan(Action.STALE), None, None


def inp(name: str) -> ColumnNode:
    return ColumnNode(name, is_input=True)


def formula(name: str, *deps: str, run: str = "auto") -> ColumnNode:
    return ColumnNode(name, run=run, free=True, deps=deps)  # type: ignore[arg-type]


def paid(name: str, *deps: str, run: str = "auto") -> ColumnNode:
    return ColumnNode(name, run=run, free=False, deps=deps)  # type: ignore[arg-type]


def wait(on: str) -> CellPlan:
    return CellPlan(Action.WAIT, blame=on)


def block(on: str) -> CellPlan:
    return CellPlan(Action.BLOCK, blame=on)


def again() -> CellPlan:
    return CellPlan(Action.RUN, force=True)


CHAIN = [inp("a"), formula("b", "a"), formula("c", "b"), formula("d", "c")]
DIAMOND = [inp("a"), formula("l", "a"), formula("r", "a"), formula("j", "l", "r")]
MIXED = [inp("a"), formula("f", "a"), paid("ai", "f"), paid("opener", "ai", run="manual"), formula("len", "opener")]


@dataclass
class Case:
    name: str
    nodes: list[ColumnNode]
    states: dict[str, Status]
    request: Request
    expected: dict[str, CellPlan] = field(default_factory=dict)


CASES = [
    Case(
        "edit runs a formula chain",
        CHAIN,
        {"b": D, "c": D, "d": D},
        Request.edit(["a"]),
        {"b": RUN, "c": RUN, "d": RUN},
    ),
    Case(
        "edit runs each side of a diamond and the join once",
        DIAMOND,
        {"l": D, "r": D, "j": D},
        Request.edit(["a"]),
        {"l": RUN, "r": RUN, "j": RUN},
    ),
    Case(
        "edit in the middle touches only what is downstream",
        CHAIN,
        {"b": P, "c": D, "d": D},
        Request.edit(["b"]),
        {"c": RUN, "d": RUN},
    ),
    Case(
        "a pinned cell is never recomputed and shields its downstream",
        CHAIN,
        {"b": P, "c": D, "d": D},
        Request.edit(["a"]),
        {},
    ),
    Case(
        "paid auto steps are queued when the edit does not run paid work",
        MIXED,
        {"f": D, "ai": D, "opener": D, "len": D},
        Request.edit(["a"], run_paid=False),
        {"f": RUN, "ai": QUEUE, "opener": STALE},
    ),
    Case(
        "paid auto steps run when the edit runs paid work; manual ones go stale",
        MIXED,
        {"f": D, "ai": D, "opener": D, "len": D},
        Request.edit(["a"]),
        {"f": RUN, "ai": RUN, "opener": STALE},
    ),
    Case(
        "a manual cell never computed stays empty after an edit",
        MIXED,
        {"f": D, "ai": D, "opener": E},
        Request.edit(["a"]),
        {"f": RUN, "ai": RUN},
    ),
    Case(
        "an auto step waits on an empty manual ancestor",
        MIXED,
        {"f": D, "ai": D, "opener": E, "len": E},
        Request.run(["len"]),
        {"len": wait("opener")},
    ),
    Case(
        "clicking a manual cell pulls its empty auto ancestors first",
        MIXED,
        {"f": E, "ai": E, "opener": E},
        Request.run(["opener"]),
        {"f": RUN, "ai": RUN, "opener": RUN, "len": RUN},
    ),
    Case(
        "running a column pulls stale auto ancestors",
        CHAIN,
        {"b": S, "c": S, "d": E},
        Request.run(["d"]),
        {"b": RUN, "c": RUN, "d": RUN},
    ),
    Case(
        "an errored ancestor blocks instead of being retried",
        CHAIN,
        {"b": ERR, "c": E, "d": E},
        Request.run(["d"]),
        {"c": block("b"), "d": block("b")},
    ),
    Case("a fresh cell is not run again by a plain run", CHAIN, {"b": D, "c": D, "d": D}, Request.run(["d"]), {}),
    Case(
        "Run Again recomputes a fresh cell and propagates",
        CHAIN,
        {"b": D, "c": D, "d": D},
        Request.run_again(["b"]),
        {"b": again(), "c": RUN, "d": RUN},
    ),
    Case(
        "Run Again on a pinned cell unpins it",
        CHAIN,
        {"b": P, "c": D, "d": D},
        Request.run_again(["b"]),
        {"b": again(), "c": RUN, "d": RUN},
    ),
    Case(
        "an errored auto cell is not retried by a plain run (no loops)",
        CHAIN,
        {"b": ERR, "c": E, "d": E},
        Request.run(["b"]),
        {},
    ),
    Case(
        "run --stale skips empty cells",
        CHAIN,
        {"b": S, "c": E, "d": E},
        Request.run(["b", "c", "d"], statuses={S, Q}),
        {"b": RUN, "c": RUN, "d": RUN},
    ),
    Case(
        "a spec change recomputes free steps at once",
        CHAIN,
        {"b": D, "c": D, "d": D},
        Request.spec_change(["c"]),
        {"c": RUN, "d": RUN},
    ),
    Case(
        "a spec change leaves paid steps stale for confirmation",
        MIXED,
        {"f": D, "ai": D, "opener": D, "len": D},
        Request.spec_change(["ai"]),
        {"ai": STALE, "opener": STALE},
    ),
    Case(
        "a spec change on a manual step marks it stale",
        MIXED,
        {"f": D, "ai": D, "opener": D, "len": D},
        Request.spec_change(["opener"]),
        {"opener": STALE},
    ),
    Case(
        "new rows queue paid auto steps and compute free ones",
        MIXED,
        {},
        Request.run(["f", "ai", "len"], statuses={E}, run_paid=False),
        {"f": RUN, "ai": QUEUE, "len": wait("opener")},
    ),
    Case(
        "multi-edit of two inputs runs the shared downstream once",
        [inp("a"), inp("b"), formula("x", "a"), formula("y", "b"), formula("z", "x", "y")],
        {"x": D, "y": D, "z": D},
        Request.edit(["a", "b"]),
        {"x": RUN, "y": RUN, "z": RUN},
    ),
    Case(
        "a manual cell left waiting runs once its blocker has a value",
        MIXED,
        {"f": D, "ai": D, "opener": W, "len": W},
        Request.run_again(["ai"]),
        {"ai": again(), "opener": RUN, "len": RUN},
    ),
    Case(
        "a running cell asked for again is left to its runner, which propagates when it finishes",
        MIXED,
        {"f": D, "ai": Status.RUNNING, "opener": D, "len": D},
        Request.run(["ai"]),
        {},
    ),
    Case(
        "a running cell whose input is edited is planned anew: the answer in flight is for the old input",
        MIXED,
        {"f": D, "ai": Status.RUNNING, "opener": D, "len": D},
        Request.edit(["a"], run_paid=False),
        {"f": RUN, "ai": QUEUE, "opener": STALE},
    ),
    Case(
        "a running manual cell whose input is edited goes stale",
        MIXED,
        {"f": D, "ai": D, "opener": Status.RUNNING, "len": D},
        Request.edit(["ai"]),
        {"opener": STALE},
    ),
    Case(
        "a running cell whose spec changed is planned anew",
        MIXED,
        {"f": D, "ai": Status.RUNNING, "opener": D, "len": D},
        Request.spec_change(["ai"]),
        {"ai": STALE, "opener": STALE},
    ),
    Case(
        "a queued paid ancestor runs before the manual cell that reads it",
        MIXED,
        {"f": D, "ai": Q, "opener": D},
        Request.run_again(["opener"]),
        {"ai": RUN, "opener": again(), "len": RUN},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    graph = ColumnGraph.build(case.nodes)
    assert plan_row(graph, case.states, case.request) == case.expected
