"""The protocol every step kind implements, and the options every step shares."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import polars as pl

    from engine.runner.calls import PaidCall


class StepOptions(BaseModel):
    """Options every step may declare (DESIGN.md, "Column kinds")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: Literal["auto", "manual"] = "auto"
    run_if: str | None = Field(default=None, description="SQL boolean over the row; false gives `skipped`")
    required: tuple[str, ...] = Field(default=(), description="fields that must be non-empty")
    enabled: bool = True
    inputs: tuple[str, ...] | None = Field(default=None, description="explicit dependencies; overrides inference")


@dataclass(frozen=True)
class Batch:
    """The inputs of one step over the rows it computes now: `frame` has `row_id` and one column per input."""

    column: str
    frame: pl.DataFrame
    run_id: int


@dataclass(frozen=True)
class PrepareEnv:
    """What a paid step needs besides its rows to prepare calls."""

    column: str
    force: bool = False  # Run Again: bypass the cache and overwrite it
    context: dict[str, str] = field(default_factory=dict)  # global context documents by name
    tiers: dict[str, float] = field(default_factory=dict)  # credits per call for each tier
    json_columns: frozenset[str] = frozenset()  # inputs whose values are JSON text, decoded for templates
    allowed_hosts: frozenset[str] = frozenset()  # non-public hosts http/export steps may reach (engine/net)


class StepKind(Protocol):
    """A column kind. Vectorized kinds give an SQL expression; the others compute a batch in Python."""

    name: ClassVar[str]
    free: ClassVar[bool]  # computed at once when inputs change; paid kinds are queued for the runner
    options: ClassVar[type[StepOptions]]

    def references(self, options: Any) -> set[str]:
        """The columns the step reads, inferred from its expression or template."""
        ...

    def value_type(self, options: Any, input_types: dict[str, str]) -> str | None:
        """The DuckDB type of the step's values, or None to have the executor bind it from SQL."""
        ...


class SqlStep(StepKind, Protocol):
    def sql(self, options: Any) -> str:
        """An SQL expression over the row's columns, evaluated for all planned rows in one statement."""
        ...


class BatchStep(StepKind, Protocol):
    def compute(self, options: Any, batch: Batch) -> pl.DataFrame:
        """Outcomes with columns row_id, value, status, error_code, error_message; failures are rows, not raises."""
        ...


class PaidStep(StepKind, Protocol):
    def prepare(self, options: Any, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        """One call per row of `frame` (row_id, key, and the step's inputs), for the runner to make."""
        ...

    def context_names(self, options: Any) -> set[str]:
        """The global-context documents the step reads ("*" for all)."""
        ...


def decode_json_input(value: Any, is_json: bool) -> Any:
    """An input value as a template sees it: JSON upstream values as objects, so `{{ research.pain_points }}`
    works; text that is not JSON stays as it is."""
    if is_json and isinstance(value, str):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
