"""Where a run's paid calls are made: the backend seam of the run path (engine/run/paid.py builds its pool here).

`local` is the call pool of engine/runner/pool.py in the run's own process, the default and the fastest on one
machine. `ray` (engine/runner/ray_backend.py, the optional `ray` extra) keeps that same pool in the run's process
(cache, budget, single flight, Stop, every result handed to the run's writer) and makes each call's attempts on
worker actors of a Ray cluster: for several machines, the litellm transport, or sustained rates above one process.

A backend also says where a row-wise python step's values are computed (`map_rows`, which the executor hands the
step through `Batch`): `local` in the run's process, as one call over the batch; `ray` in row shards on the
cluster when the batch is big enough to pay for them. Either way only the run's process writes the cells.

A backend lives as long as its run: `close` ends what it started (an embedded cluster, its actors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from engine.cache import ResultCache
from engine.errors import RunsheetError
from engine.runner.budget import Budget
from engine.runner.calls import CellResult
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool

if TYPE_CHECKING:
    import polars as pl

BackendName = Literal["local", "ray"]
BACKENDS: tuple[BackendName, ...] = ("local", "ray")
# A row-wise python step's batch of fewer rows is computed in the run's process even on Ray (the
# `ray_rowwise_min_rows` setting): below it, shipping the shards costs more than a light function saves.
DEFAULT_ROWWISE_MIN_ROWS = 2_000


@dataclass(frozen=True)
class PoolSpec:
    """Everything a pool is built from, whichever backend makes its calls."""

    concurrency: int
    budget: Budget
    on_result: Callable[[CellResult], None]
    stop: threading.Event
    cache: ResultCache | None
    rate_limits: dict[str, tuple[float | None, float | None]]
    policy: RetryPolicy

    def local_pool(self) -> CallPool:
        return CallPool(
            concurrency=self.concurrency,
            budget=self.budget,
            on_result=self.on_result,
            stop=self.stop,
            cache=self.cache,
            limits=RateLimits(self.rate_limits),
            policy=self.policy,
        )


# A row-wise function over some rows of a batch: their values in row order, or None when it failed on them (the run
# then calls it over the whole batch in its own process, so its cells fail exactly as they do locally).
RowFunction = Callable[["pl.DataFrame"], "pl.Series | None"]
# `Backend.map_rows`, as the executor hands it to a step (engine/cells/base.py, `Batch`).
MapRows = Callable[[RowFunction, "pl.DataFrame"], "pl.Series | None"]


class Backend(Protocol):
    """Builds the pool that makes a run's calls, computes row-wise python steps where it computes, and ends what
    it started when the run ends."""

    name: BackendName

    def pool(self, spec: PoolSpec, cells: int) -> CallPool:
        """The pool for a phase of the run with `cells` paid cells claimed so far."""
        ...

    def connect(self) -> None:
        """Join or start the cluster now (a run that will shard row-wise steps: before its first transaction holds
        the workspace, not inside it)."""
        ...

    def map_rows(self, function: RowFunction, frame: pl.DataFrame) -> pl.Series | None:
        """`function`'s values over the rows of `frame` (a row-wise step's inputs), computed in row shards outside
        the run's process and put back in row order; None when the run's process is to compute them as one call
        (this backend computes there, the batch is too small for shards to pay, or a shard gave no values)."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """Calls made in the run's own process, by the call pool as it always was."""

    name: BackendName = "local"

    def pool(self, spec: PoolSpec, cells: int) -> CallPool:
        return spec.local_pool()

    def connect(self) -> None:
        return None

    def map_rows(self, function: RowFunction, frame: pl.DataFrame) -> pl.Series | None:
        return None  # computed in the run's process, as one call over the batch

    def close(self) -> None:
        return None


def join_shards(parts: list[pl.Series | None]) -> pl.Series | None:
    """The values of a batch's shards (in row order) as one call over the batch gives them; None when a shard gave
    none, or when the shards' values have different types (one call would have had one type, or failed)."""
    import polars as pl

    if not parts or any(part is None for part in parts):
        return None
    found = [part for part in parts if part is not None]
    types = {part.dtype for part in found if part.dtype != pl.Null}  # a shard of nulls only takes the others' type
    if len(types) > 1:
        return None
    dtype = types.pop() if types else pl.Null
    return pl.concat([part.cast(dtype).rename("") for part in found])


def choose_backend(
    asked: BackendName | None,
    ray_min_cells: int | None,
    address: str | None,
    workspace_dir: Path,
    rowwise_min_rows: int | None = None,
) -> Backend:
    """The backend of one run: `asked` (`runsheet run --backend`), else the workspace's `ray_min_cells` setting
    (runs of at least that many paid cells go to Ray; None: always local). On Ray, a row-wise python step's batch
    of at least `rowwise_min_rows` rows (the `ray_rowwise_min_rows` setting; None: DEFAULT_ROWWISE_MIN_ROWS) is
    computed in shards."""
    if asked not in (None, *BACKENDS):
        raise RunsheetError(f"unknown backend {asked!r}", hint="use --backend local or --backend ray")
    if asked == "local" or (asked is None and ray_min_cells is None):
        return LocalBackend()
    from engine.runner.ray_backend import RayBackend

    return RayBackend(
        workspace_dir,
        address=address,
        min_cells=0 if asked == "ray" else ray_min_cells or 0,
        rowwise_min_rows=DEFAULT_ROWWISE_MIN_ROWS if rowwise_min_rows is None else rowwise_min_rows,
    )
