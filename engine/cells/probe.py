"""`probe`: a paid-like step that counts its calls. It proves the planner, keys and queueing serve paid kinds
before real providers arrive, and lets tests and benchmarks assert exactly which cells ran.

Its value is `probe(v1|v2|...)` over its inputs. `fail_on` / `not_found_on` make a cell fail or find nothing
when any input equals that text, so error and "no data" paths can be exercised.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from typing import ClassVar

import polars as pl
from pydantic import Field

from engine.cells.base import PrepareEnv, StepKind, StepOptions
from engine.llm.types import ProviderFailure
from engine.runner.calls import Answer, PaidCall
from engine.types import ErrorCode, Status


class ProbeOptions(StepOptions):
    fail_on: str | None = None
    not_found_on: str | None = None
    credits: float = 0.0
    delay: float = Field(default=0.0, ge=0, description="seconds each call takes, to exercise Stop and progress")


class ProbeLedger:
    """Every probe call made in this process: (column, row_id), in call order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, int]] = []

    def record(self, column: str, row_id: int) -> None:
        with self._lock:
            self.calls.append((column, row_id))

    def per_column(self) -> Counter[str]:
        return Counter(column for column, _ in self.calls)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


LEDGER = ProbeLedger()


def probe_value(values: list[object]) -> str:
    return "probe(" + "|".join("" if v is None else str(v) for v in values) + ")"


class Probe(StepKind):
    """Differs in: paid (`prepare`), priced at its `credits`."""

    name: ClassVar[str] = "probe"
    free: ClassVar[bool] = False
    options: ClassVar[type[StepOptions]] = ProbeOptions

    def references(self, options: ProbeOptions) -> set[str]:
        return set()  # a probe reads exactly its `inputs`

    def value_type(self, options: ProbeOptions, input_types: dict[str, str]) -> str | None:
        return "VARCHAR"

    def price(self, options: ProbeOptions, tiers: dict[str, float]) -> float:
        return options.credits

    def prepare(self, options: ProbeOptions, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        inputs = [c for c in frame.columns if c not in ("row_id", "key")]
        for row in frame.iter_rows(named=True):
            values = [row[c] for c in inputs]

            async def attempt(row_id: int = row["row_id"], values: list[object] = values) -> Answer:
                LEDGER.record(env.column, row_id)
                if options.delay:
                    await asyncio.sleep(options.delay)
                texts = {"" if v is None else str(v) for v in values}
                if options.fail_on is not None and options.fail_on in texts:
                    raise ProviderFailure(
                        ErrorCode.PROVIDER_ERROR,
                        f"the probe was told to fail on '{options.fail_on}'",
                        retryable=False,
                    )
                if options.not_found_on is not None and options.not_found_on in texts:
                    return Answer(None, Status.NOT_FOUND)
                return Answer(probe_value(values))

            yield PaidCall(
                column=env.column,
                row_id=row["row_id"],
                key=row["key"],
                model="probe",
                credits=options.credits,
                est_tokens=0,
                cache_key=None,
                force=env.force,
                deadline=max(30.0, options.delay * 4),
                attempt=attempt,
            )
