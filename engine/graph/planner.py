"""The planner: the one place that knows "auto" from "manual".

For one row's cell statuses and a request (an edit, a run, Run Again, a spec change, new rows) it says which
cells run now, which are queued for the paid runner, which become stale, and which wait or are blocked and on
which column. It is a pure function of the graph, the statuses and the request, so the executor can plan a
million rows by planning each distinct status signature once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from engine.graph.dag import ColumnGraph
from engine.graph.fate import GOES_STALE, HAND_SET, PENDING, SCREENED, SETTLED, Verdict, gate
from engine.types import ErrorCode, Status

RequestKind = Literal["edit", "run", "spec_change"]

# What a run computes unless told otherwise, and the statuses of an auto ancestor that a lazy pull computes first.
DEFAULT_RUN_STATUSES = PULLED = PENDING


class Action(str, Enum):
    RUN = "run"  # compute now
    QUEUE = "queue"  # a paid auto step that will run later (the request did not ask for paid work)
    STALE = "stale"  # a manual step whose inputs changed: keeps its old value, marked stale
    WAIT = "wait"  # cannot run: an upstream manual cell has no value yet (blame names it)
    BLOCK = "block"  # cannot run: an upstream cell ended in error (blame names it)
    # a manual step with run_if, not asked for: skipped at once where its run_if is already false (decided over the
    # row); elsewhere a cell that has not run stays as it is, and a skipped one whose inputs changed goes stale
    SCREEN = "screen"


@dataclass(frozen=True)
class CellPlan:
    action: Action
    blame: str | None = None  # the upstream column to blame for WAIT and BLOCK
    force: bool = False  # Run Again: recompute even if fresh, bypass the cache, unpin


@dataclass(frozen=True)
class Request:
    """What someone asked for. Build one with the class methods rather than by hand."""

    kind: RequestKind
    columns: frozenset[str]
    statuses: frozenset[Status] = DEFAULT_RUN_STATUSES
    force: bool = False
    run_paid: bool = True
    unpin: bool = False
    run_code: bool = True  # False for a read: cells of user code (python) keep their stored value and status
    # A retry of failed cells: the cells of `columns` in error with one of these codes are queued again before
    # planning (engine/run/executor.py), and only queued cells are computed.
    retry: frozenset[ErrorCode] = frozenset()

    @classmethod
    def edit(cls, columns: Iterable[str], *, run_paid: bool = True) -> Request:
        """Values of `columns` were edited (inputs typed in, or step cells pinned by hand)."""
        return cls("edit", frozenset(columns), run_paid=run_paid)

    @classmethod
    def run(
        cls,
        columns: Iterable[str],
        *,
        statuses: Iterable[Status] = DEFAULT_RUN_STATUSES,
        run_paid: bool = True,
    ) -> Request:
        """Compute the cells of `columns` whose status is in `statuses`, pulling auto ancestors first."""
        return cls("run", frozenset(columns), statuses=frozenset(statuses), run_paid=run_paid)

    @classmethod
    def pull(cls, columns: Iterable[str]) -> Request:
        """A read's lazy pull: the free cells of `columns` not yet fresh are computed, paid ones queued, and cells of
        user code (python) are left as stored (a stale one shows its old value, marked stale): reads never import
        user code (DESIGN.md, invariant 8)."""
        return cls("run", frozenset(columns), run_paid=False, run_code=False)

    @classmethod
    def run_again(cls, columns: Iterable[str], *, unpin: bool = True) -> Request:
        """Recompute the cells of `columns` whatever their status (bypassing caches), then propagate. Pinned cells
        are unpinned and recomputed only with `unpin` (Run Again on chosen cells, not a bulk rerun)."""
        return cls("run", frozenset(columns), statuses=frozenset(Status), force=True, unpin=unpin)

    @classmethod
    def retry_errors(cls, columns: Iterable[str], codes: Iterable[ErrorCode]) -> Request:
        """Compute again the cells of `columns` that ended in error with one of `codes` (whatever rule 9 says):
        they are queued again, then run as queued cells do (the result cache answers an identical request that
        succeeded elsewhere; otherwise the provider is called and billed), and downstream follows."""
        return cls("run", frozenset(columns), statuses=frozenset({Status.QUEUED}), retry=frozenset(codes))

    @classmethod
    def spec_change(cls, columns: Iterable[str], *, run_paid: bool = False) -> Request:
        """The specs of `columns` changed: their cells and everything downstream are out of date."""
        return cls("spec_change", frozenset(columns), run_paid=run_paid)


def plan_row(graph: ColumnGraph, states: Mapping[str, Status], request: Request) -> dict[str, CellPlan]:
    """Plan one row: the step cells that change. Cells not returned are left alone."""

    def status(column: str) -> Status:
        return states.get(column, Status.EMPTY)

    targets = set(_targets(graph, status, request))
    changed: set[str] = set(request.columns) if request.kind == "edit" else set()
    plan: dict[str, CellPlan] = {}

    def schedule(column: str, forced: bool) -> None:
        if graph.nodes[column].code and not request.run_code:
            return  # left as stored: downstream reads its stored value, or waits on it if it has none
        # Lazy pull: an auto ancestor without a fresh value is computed first.
        for dep in graph.sorted(graph.nodes[column].deps):
            node = graph.nodes[dep]
            if dep not in plan and node.auto and status(dep) in PULLED:
                schedule(dep, False)
        gated = _gate(graph, column, status, plan)
        if gated is not None:
            plan[column] = gated
            changed.add(column)  # what reads it is planned too: it waits, or is blocked, with it
            return
        if graph.nodes[column].free or request.run_paid:
            plan[column] = CellPlan(Action.RUN, force=forced)
        else:  # paid work waits: queued after an edit, stale (for the user to confirm) after a spec change
            plan[column] = CellPlan(Action.STALE if request.kind == "spec_change" else Action.QUEUE)
        changed.add(column)

    for column in graph.steps():
        if column in plan:
            continue
        node = graph.nodes[column]
        current = status(column)
        outdated = bool(changed.intersection(node.deps)) or (
            request.kind == "spec_change" and column in request.columns
        )
        if node.screens and column not in targets and (current is Status.EMPTY or (outdated and current in SCREENED)):
            plan[column] = CellPlan(Action.SCREEN)
            continue
        if not (outdated or column in targets):
            continue
        if current is Status.RUNNING and (request.kind == "run" or not outdated):
            continue  # a run is computing it for the inputs it still has: that answer will do
        # A running cell whose inputs (an edit) or spec changed is planned anew, which takes it from the run
        # computing it: that run's answer, for the old inputs, is not written over the edit (it stays cached).
        forced = request.force and column in targets
        if current in HAND_SET and not (forced and request.unpin):
            continue
        if column not in targets and not node.auto and current is not Status.WAITING:
            # A waiting manual cell was asked for already: it runs once what it waited on has a value.
            if current in GOES_STALE:
                plan[column] = CellPlan(Action.STALE)
            continue
        schedule(column, forced)
    return plan


def _targets(graph: ColumnGraph, status, request: Request) -> list[str]:  # type: ignore[no-untyped-def]
    if request.kind != "run":
        return []
    return [
        column
        for column in graph.steps()
        if column in request.columns and (request.force or status(column) in request.statuses)
    ]


def _gate(graph: ColumnGraph, column: str, status, plan: Mapping[str, CellPlan]) -> CellPlan | None:  # type: ignore[no-untyped-def]
    """Why `column` cannot run in this row yet, or None if every step it reads has (or will have) a value."""
    for dep in graph.sorted(graph.nodes[column].deps):
        if graph.nodes[dep].is_input:
            continue
        planned = plan.get(dep)
        if planned is not None:
            if planned.action in (Action.WAIT, Action.BLOCK):
                return CellPlan(planned.action, blame=planned.blame)
            if planned.action in (Action.RUN, Action.QUEUE):
                continue
        verdict = dependency_gate(dep, status(dep))
        if verdict is not None:
            return verdict
    return None


GATED = {Verdict.WAIT: Action.WAIT, Verdict.BLOCK: Action.BLOCK}


def dependency_gate(dep: str, dep_status: Status) -> CellPlan | None:
    """Whether a cell may read an upstream cell in `dep_status` (fate.gate): None if it may, else WAIT or BLOCK on
    `dep`."""
    verdict = gate(dep_status, SETTLED)
    return None if verdict is None else CellPlan(GATED[verdict], blame=dep)
