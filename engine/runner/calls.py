"""The unit of paid work: one cell's call, as a paid step kind prepares it, and the result the runner reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.redaction import redact
from engine.types import ErrorCode, Status


@dataclass(frozen=True)
class Answer:
    """What one successful attempt produced: a JSON-able value (or "no data")."""

    value: Any
    status: Status = Status.DONE
    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider_cost: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class PaidCall:
    """One cell to compute through the runner. `attempt` makes one try and raises ProviderFailure on failure;
    `cache_key` (None: never cached) identifies the answer across rows and campaigns; `request_key` (None: never
    shared) identifies the request itself, so that identical requests in flight at once are sent once. A
    `portable` call may be made in another process (engine/runner/ray_backend.py): its attempt is a request to a
    provider and nothing else (no file, outbox or state of this process), and it carries no secret, only the
    names of the variables that hold them."""

    column: str
    row_id: int
    key: int  # the cell key stored with the result
    model: str  # the rate-limit bucket
    credits: float
    est_tokens: int
    cache_key: str | None
    force: bool
    deadline: float
    attempt: Callable[[], Awaitable[Answer]]
    detail: dict[str, Any] = field(default_factory=dict)
    request_key: str | None = None
    portable: bool = False


@dataclass
class CellResult:
    """How one claimed cell ended. Everything stored of a paid call is stored from here, so its message, value
    and provenance are redacted when it is made (no secret read for the call survives: engine/redaction.py)."""

    column: str
    row_id: int
    key: int | None
    status: Status
    value: Any = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    credits: float = 0.0
    tokens: int = 0
    latency_ms: float = 0.0
    attempts: int = 0
    provider_cost: float | None = None
    cached: bool = False
    saved: float = 0.0  # credits a cache hit saved
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.value = redact(self.value)
        self.error_message = redact(self.error_message)
        self.detail = redact(self.detail)
