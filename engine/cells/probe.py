"""`probe`: a paid-like step that counts its calls. It proves the planner, keys and queueing serve paid kinds
before real providers arrive, and lets tests and benchmarks assert exactly which cells ran.

Its value is `probe(v1|v2|...)` over its inputs. `fail_on` / `not_found_on` make a cell fail or find nothing
when any input equals that text, so error and "no data" paths can be exercised.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import ClassVar

import polars as pl

from engine.cells.base import Batch, StepOptions
from engine.cells.outcomes import from_rows
from engine.types import ErrorCode, Status


class ProbeOptions(StepOptions):
    fail_on: str | None = None
    not_found_on: str | None = None
    credits: float = 0.0


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


class Probe:
    name: ClassVar[str] = "probe"
    free: ClassVar[bool] = False
    options: ClassVar[type[StepOptions]] = ProbeOptions

    def references(self, options: ProbeOptions) -> set[str]:
        return set()  # a probe reads exactly its `inputs`

    def value_type(self, options: ProbeOptions, input_types: dict[str, str]) -> str | None:
        return "VARCHAR"

    def compute(self, options: ProbeOptions, batch: Batch) -> pl.DataFrame:
        outcomes: list[dict[str, object]] = []
        inputs = [c for c in batch.frame.columns if c != "row_id"]
        for row in batch.frame.iter_rows(named=True):
            LEDGER.record(batch.column, row["row_id"])
            values = [row[c] for c in inputs]
            texts = {"" if v is None else str(v) for v in values}
            if options.fail_on is not None and options.fail_on in texts:
                outcomes.append(
                    {
                        "row_id": row["row_id"],
                        "status": Status.ERROR.value,
                        "error_code": ErrorCode.PROVIDER_ERROR.value,
                        "error_message": f"the probe was told to fail on '{options.fail_on}'",
                    }
                )
            elif options.not_found_on is not None and options.not_found_on in texts:
                outcomes.append({"row_id": row["row_id"], "status": Status.NOT_FOUND.value})
            else:
                outcomes.append({"row_id": row["row_id"], "value": probe_value(values), "cost": options.credits})
        return from_rows(outcomes)
