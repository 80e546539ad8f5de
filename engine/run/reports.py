"""What a run returns and reports while it goes: events per column and outcome, the paid cells it claimed, its
progress, and the options that drive it."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
import pyarrow as pa

from engine.graph.fate import EXECUTED, values
from engine.run.verdicts import constant
from engine.run.windows import Windows
from engine.types import Status


@dataclass(frozen=True)
class ExecutionEvent:
    """Something that happened to the cells of one column: `rows` lists them when there are few enough;
    `row_ids` holds them all (for counting each cell once by how it ended)."""

    column: str
    outcome: str  # a Status value, "keep" for cells whose key had not changed, or a runner outcome (refused...)
    count: int
    rows: tuple[int, ...] | None
    row_ids: pa.Array | None = field(default=None, compare=False, repr=False)


# How a run ended for the cells in its scope, from their outcomes: what `runsheet run` exits with.
RUN_ENDINGS = ("ok", "failed", "refused", "stopped")
FAILED_OUTCOMES = frozenset({Status.ERROR.value})
REFUSED_OUTCOMES = frozenset({"refused", Status.PAUSED.value})


@dataclass(frozen=True)
class Claim:
    """Paid cells this run marked `running`, to be computed by the runner outside the transaction: `frame` has
    row_id, key (the key to store with the result) and the step's inputs. `previous` holds, as stored before the
    claim, the cells that held an outcome: a call refused for credits (or never made, after Stop) puts them back
    as they were, so a refusal changes nothing."""

    column: str
    frame: pl.DataFrame
    force: bool
    previous: pa.Table | None = None


@dataclass
class RunReport:
    """What a run did, per column and outcome; `claims` are the paid cells it still has to compute."""

    run_id: int
    events: list[ExecutionEvent] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    status: str = "done"
    message: str | None = None  # why the run ended as it did, when not every cell ran (credits, a cap, Stop)
    # paid work: what it spent, and what the cache saved
    credits: float = 0.0
    tokens: int = 0
    cache_hits: int = 0
    credits_saved: float = 0.0
    memo_hits: dict[str, int] = field(default_factory=dict)  # per column: cells answered from the memo
    rest: Windows | None = None  # the windows of the run's scope not yet planned (engine/run/windows.py)

    @property
    def unfinished(self) -> bool:
        """Whether the run has work left for `complete_run`: claimed cells, or windows not yet planned."""
        return bool(self.claims) or self.rest is not None

    def absorb(self, part: RunReport) -> None:
        """Add what another transaction of this run did (a window, a propagation) to this report; its claims
        are the caller's to compute."""
        self.events.extend(part.events)
        self.cache_hits += part.cache_hits
        self.credits_saved += part.credits_saved
        for column, hits in part.memo_hits.items():
            self.memo_hits[column] = self.memo_hits.get(column, 0) + hits

    def counts(self) -> dict[str, Counter[str]]:
        """Per column, how many cells ended in each outcome: each cell counts once, by how it ended (a cell that
        waited for a paid upstream result and then ran is replayed to its last event), so a column's counts add
        up to the cells of it the run touched."""
        by_column: dict[str, list[ExecutionEvent]] = defaultdict(list)
        for event in self.events:
            by_column[event.column].append(event)
        return {column: _final_outcomes(events) for column, events in by_column.items()}

    def totals(self) -> Counter[str]:
        """Cells per outcome, summed over columns."""
        total: Counter[str] = Counter()
        for outcomes in self.counts().values():
            total.update(outcomes)
        return total

    def ending(self) -> str:
        """How the run ended for its scope (one of RUN_ENDINGS): `stopped` (Stop), `refused` (cells refused for
        credits, a cap or a pause), `failed` (cells ended in error), else `ok`."""
        if self.status == "stopped":
            return "stopped"
        outcomes = {o for o, n in self.totals().items() if n}
        if outcomes & REFUSED_OUTCOMES:
            return "refused"
        if outcomes & FAILED_OUTCOMES:
            return "failed"
        return "ok"

    def computed(self, column: str) -> int:
        """How many cells of `column` were actually computed (whatever their outcome)."""
        return sum(e.count for e in self.events if e.column == column and e.outcome in values(EXECUTED))


def _final_outcomes(events: list[ExecutionEvent]) -> Counter[str]:
    """One column's cells per outcome, each cell by its last event. One event needs no replay; several are
    replayed over their rows (events without rows are summed as they are)."""
    counts: Counter[str] = Counter()
    if len(events) == 1:
        counts[events[0].outcome] += events[0].count
        return counts
    replayed = [e for e in events if e.row_ids is not None or e.rows is not None]
    for event in events:
        if event.row_ids is None and event.rows is None:
            counts[event.outcome] += event.count
    if not replayed:
        return counts
    rows = pa.concat_arrays(
        [(e.row_ids if e.row_ids is not None else pa.array(e.rows, pa.int64())).cast(pa.int64()) for e in replayed]
    )
    order = pa.concat_arrays([constant(i, e.count, pa.int32()) for i, e in enumerate(replayed)])
    last = pl.DataFrame({"row_id": rows, "event": order}).group_by("row_id").agg(pl.col("event").max())
    for index, n in last.group_by("event").len().iter_rows():
        counts[replayed[index].outcome] += n
    return counts


@dataclass
class RunProgress:
    """A running run's paid phase, as a progress bar or a log line shows it: cells done of total, what they
    spent, how many the cache answered and how many ended in error."""

    run_id: int
    total: int
    done: int = 0
    credits: float = 0.0
    cache_hits: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass
class RunOptions:
    """How to drive paid work: a credit cap for this run, the concurrency (default: the workspace's), a progress
    callback, and an event that stops the run (Stop also arrives through `runs.stop_requested`)."""

    max_credits: float | None = None
    concurrency: int | None = None
    progress: Callable[[RunProgress], None] | None = None
    stop: threading.Event | None = None
    # Results reach DuckDB at least once a second; each batch is one transaction, whose fixed cost (opening the
    # file, committing) dominates small batches. The cache already holds every answer the moment it arrives.
    flush_every: int = 5_000
    flush_seconds: float = 1.0
    # Background intake (engine/intake.py): a cell the budget refuses that held nothing goes back to queued instead
    # of ending in insufficient_credits; when the run's cap is what ran out, it says the (message, hint) this
    # returns for the credits the run spent, and so does the run.
    hold_refused: Callable[[float], tuple[str, str]] | None = None
    # Where the calls are made (engine/runner/backend.py): "local" or "ray"; None: the ray_min_cells setting says.
    backend: Literal["local", "ray"] | None = None
    ray_address: str | None = None  # a Ray cluster to join; None: RAY_ADDRESS, else an embedded one for the run
