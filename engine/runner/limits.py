"""Per-model rate limits: requests and tokens per minute, as token buckets the runner awaits before each call."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`rate` units per minute, bursting up to one second's worth (at least one unit)."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, amount: float = 1.0) -> None:
        amount = min(amount, self.capacity)  # one huge request must still get through, alone
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
                self.updated = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)


class RateLimits:
    """The buckets of every model a run calls, made on first use from `limits` ({model: (rpm, tpm)})."""

    def __init__(self, limits: dict[str, tuple[float | None, float | None]]) -> None:
        self.limits = limits
        self.requests: dict[str, TokenBucket | None] = {}
        self.tokens: dict[str, TokenBucket | None] = {}

    async def acquire(self, model: str, tokens: int) -> None:
        if model not in self.requests:
            rpm, tpm = self.limits.get(model, (None, None))
            self.requests[model] = TokenBucket(rpm) if rpm else None
            self.tokens[model] = TokenBucket(tpm) if tpm else None
        request_bucket, token_bucket = self.requests[model], self.tokens[model]
        if request_bucket is not None:
            await request_bucket.take()
        if token_bucket is not None:
            await token_bucket.take(tokens)
