"""The protocol every step kind implements, and the options every step shares.

`StepKind` declares everything the engine asks of a kind, each with the default most kinds want, so the engine
calls methods and reads attributes and never probes a kind. A kind states only what it differs in:

- how its values are made: `sql` (an expression evaluated for all planned rows in one statement: formula),
  `compute` (a batch in Python: python) or `prepare` (one paid call per claimed row, for the runner: ai, http,
  probe, export); `free` kinds are computed at once when their inputs change, the others are claimed;
- `price` and `guess_tokens`: what one call costs, for estimates, the memo's savings and the consent a new paid
  step waits for;
- `cacheable`: an answer is remembered by cell key (the memo) and reused for the same key in any campaign;
- `side_effect` with `payloads`: each claimed cell's decision to act (an export's send) is recorded in the outbox
  in the claiming transaction and settled in the one that writes its result (the engine does both around the
  kind: engine/store/outbox.py); `reads_only` and `keys_on_upstream_runs` gate and key such a step on current
  upstream values and on the runs that made them;
- `reads_record` and `context_names`: whether it reads the whole record (every input column) without naming
  the fields, and the global-context documents it reads (the ai kind's context injection).

Kinds never touch the store: what they need comes in through `Batch`, `PrepareEnv` and `SendEnv`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.types import Status

if TYPE_CHECKING:
    import polars as pl

    from engine.runner.backend import MapRows
    from engine.runner.calls import PaidCall


class StepOptions(BaseModel):
    """Options every step may declare (DESIGN.md, "Column kinds")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Options added after specs were stored: left out of the step's version while unset, so an upgrade keeps the
    # version (and every cell key) of a spec that does not use them.
    versioned_when_set: ClassVar[frozenset[str]] = frozenset()
    # Options that say where a step is computed, never what it gives: left out of its version, so setting them
    # keeps every cell fresh.
    unversioned: ClassVar[frozenset[str]] = frozenset()

    run: Literal["auto", "manual"] = "auto"
    run_if: str | None = Field(default=None, description="SQL boolean over the row; false gives `skipped`")
    required: tuple[str, ...] = Field(default=(), description="fields that must be non-empty")
    enabled: bool = True
    inputs: tuple[str, ...] | None = Field(default=None, description="explicit dependencies; overrides inference")


class OptionValueError(ValueError):
    """A step option's value that a spec cannot have, with the fix (engine/spec.py reports both)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Batch:
    """The inputs of one step over the rows it computes now: `frame` has `row_id` and one column per input.
    `map_rows` is where the run computes a row-wise function's values (the run's backend, engine/runner/backend.py:
    shards on a Ray cluster); None, or None from it: in this process, as one call over the batch."""

    column: str
    frame: pl.DataFrame
    run_id: int
    map_rows: MapRows | None = None


@dataclass(frozen=True)
class PrepareEnv:
    """What a paid step needs besides its rows to prepare calls."""

    column: str
    force: bool = False  # Run Again: bypass the cache and overwrite it
    context: dict[str, str] = field(default_factory=dict)  # global context documents by name
    tiers: dict[str, float] = field(default_factory=dict)  # credits per call for each tier
    json_columns: frozenset[str] = frozenset()  # inputs whose values are JSON text, decoded for templates
    allowed_hosts: frozenset[str] = frozenset()  # non-public hosts http/export steps may reach (engine/net)
    record: tuple[str, ...] = ()  # the record's fields: the campaign's input columns, in spec order
    columns: frozenset[str] = frozenset()  # the campaign's column names


@dataclass(frozen=True)
class SendEnv:
    """What a side effect needs besides its claimed rows to say what each would send."""

    campaign: str
    column: str
    json_columns: frozenset[str] = frozenset()  # inputs whose values are JSON text, decoded into the payload


DEFAULT_OUTPUT_TOKENS = 256  # tokens an answer is taken to use when its step does not cap them


class StepKind(ABC):
    """A column kind: what the engine calls on every kind, with the defaults a kind overrides where it differs."""

    name: ClassVar[str]
    free: ClassVar[bool]  # computed at once when inputs change; paid kinds are claimed and queued for the runner
    options: ClassVar[type[StepOptions]]
    cacheable: ClassVar[bool] = False  # answers are remembered by cell key (the memo) and reused for that key
    side_effect: ClassVar[bool] = False  # each claimed cell's decision to act goes to the outbox (`payloads`)
    # The upstream statuses the step may read, checked over its whole upstream (not only its inputs); None: the
    # ordinary dependency gate over its inputs.
    reads_only: ClassVar[frozenset[Status] | None] = None
    keys_on_upstream_runs: ClassVar[bool] = False  # the key covers which run made each upstream step's cell

    @abstractmethod
    def references(self, options: Any) -> set[str]:
        """The columns the step reads, inferred from its expression or template."""

    @abstractmethod
    def value_type(self, options: Any, input_types: dict[str, str]) -> str | None:
        """The DuckDB type of the step's values, or None to have it bound from `sql` against the input types."""

    def reads_record(self, options: Any, columns: frozenset[str]) -> bool:
        """Whether the step reads the whole record, every input column, without naming the fields; `columns` are
        the campaign's column names (a column keeps a name the kind would otherwise read as a placeholder)."""
        return False

    def context_names(self, options: Any, columns: frozenset[str]) -> set[str]:
        """The global-context documents the step reads ("*" for all), given the campaign's column names."""
        return set()

    def rowwise(self, options: Any) -> bool:
        """Whether each row's value depends on that row alone, so the step's batch may be cut into shards computed
        apart (`Batch.map_rows`); a step over the whole column (a rank) never is."""
        return False

    def sql(self, options: Any) -> str | None:
        """An SQL expression over the row's columns, evaluated for all planned rows in one statement; None when
        the step's values are computed in Python or by paid calls."""
        return None

    def compute(self, options: Any, batch: Batch) -> pl.DataFrame:
        """Outcomes with columns row_id, value, status, error_code, error_message; failures are rows, not raises.
        Called for a free kind without `sql`."""
        raise NotImplementedError(f"a {self.name} step is not computed in Python")

    def prepare(self, options: Any, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        """One call per row of `frame` (row_id, key, and the step's inputs), for the runner to make. Called for
        paid kinds."""
        raise NotImplementedError(f"a {self.name} step makes no paid calls")

    def price(self, options: Any, tiers: dict[str, float]) -> float:
        """Credits one call costs, given the credits per call of each tier."""
        return 0.0

    def guess_tokens(self, options: Any) -> int:
        """Tokens one call is taken to use before its inputs are known (a paid step downstream of a claim): none
        for kinds that call no model (the ai kind says its own)."""
        return 0

    def payloads(self, options: Any, rows: pl.DataFrame, env: SendEnv) -> pl.DataFrame:
        """For a side effect: what each claimed row (row_id, key, and the step's inputs) would send, as row_id,
        key and payload (JSON text). The engine records the decisions in the outbox and hands `prepare` the rows
        with them (engine/store/outbox.py, `decide_sends`)."""
        raise NotImplementedError(f"a {self.name} step has no side effect")


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
