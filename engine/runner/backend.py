"""Where a run's paid calls are made: the backend seam of the run path (engine/run/paid.py builds its pool here).

`local` is the call pool of engine/runner/pool.py in the run's own process, the default and the fastest on one
machine. `ray` (engine/runner/ray_backend.py, the optional `ray` extra) keeps that same pool in the run's process
(cache, budget, single flight, Stop, every result handed to the run's writer) and makes each call's attempts on
worker actors of a Ray cluster: for several machines, the litellm transport, or sustained rates above one process.

A backend lives as long as its run: `close` ends what it started (an embedded cluster, its actors).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from engine.cache import ResultCache
from engine.errors import RunsheetError
from engine.runner.budget import Budget
from engine.runner.calls import CellResult
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool

BackendName = Literal["local", "ray"]
BACKENDS: tuple[BackendName, ...] = ("local", "ray")


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


class Backend(Protocol):
    """Builds the pool that makes a run's calls, and ends what it started when the run ends."""

    name: BackendName

    def pool(self, spec: PoolSpec, cells: int) -> CallPool:
        """The pool for a phase of the run with `cells` paid cells claimed so far."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """Calls made in the run's own process, by the call pool as it always was."""

    name: BackendName = "local"

    def pool(self, spec: PoolSpec, cells: int) -> CallPool:
        return spec.local_pool()

    def close(self) -> None:
        return None


def choose_backend(
    asked: BackendName | None, ray_min_cells: int | None, address: str | None, workspace_dir: Path
) -> Backend:
    """The backend of one run: `asked` (`runsheet run --backend`), else the workspace's `ray_min_cells` setting
    (runs of at least that many paid cells go to Ray; None: always local)."""
    if asked not in (None, *BACKENDS):
        raise RunsheetError(f"unknown backend {asked!r}", hint="use --backend local or --backend ray")
    if asked == "local" or (asked is None and ray_min_cells is None):
        return LocalBackend()
    from engine.runner.ray_backend import RayBackend

    return RayBackend(workspace_dir, address=address, min_cells=0 if asked == "ray" else ray_min_cells or 0)
