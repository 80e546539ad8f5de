"""How the runner retries: exponential backoff with full jitter, never shorter than the provider's Retry-After,
a bounded number of attempts per failure class."""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.llm.types import ProviderFailure
from engine.types import ErrorCode


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` bounds transient failures (429, 5xx, timeouts, dropped connections); `invalid_attempts`
    bounds answers that fail the column's JSON schema."""

    max_attempts: int = 4
    invalid_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0

    def should_retry(self, failure: ProviderFailure, attempts: int, invalid: int) -> bool:
        if not failure.retryable:
            return False
        if failure.code is ErrorCode.INVALID_OUTPUT:
            return invalid < self.invalid_attempts
        return attempts < self.max_attempts

    def delay(self, failure: ProviderFailure, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt (`attempts` made so far)."""
        if failure.code is ErrorCode.INVALID_OUTPUT:
            return 0.0  # a new sample, not a struggling provider
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        wait = (rng or random).uniform(0, ceiling)
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        return wait
