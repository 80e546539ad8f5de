"""The async runner: a fixed pool of workers pulling paid calls, each call behind the global concurrency limit,
its model's rate limits, the budget, the result cache and a wall-clock deadline, retried by our own policy.

Results go to `on_result` the moment they exist (the writer batches them to DuckDB); answers go to the cache
first, so a crash never loses what was paid for. Stop cancels the calls in flight and starts nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from engine.cache import ResultCache
from engine.llm.types import ProviderFailure
from engine.runner.budget import Budget
from engine.runner.calls import Answer, CellResult, PaidCall
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.types import ErrorCode, Status

log = logging.getLogger(__name__)
STOP_POLL_SECONDS = 0.1


class CallPool:
    """Runs paid calls with at most `concurrency` in flight."""

    def __init__(
        self,
        *,
        concurrency: int,
        budget: Budget,
        on_result: Callable[[CellResult], None],
        stop: threading.Event,
        cache: ResultCache | None = None,
        limits: RateLimits | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.budget = budget
        self.on_result = on_result
        self.stop = stop
        self.cache = cache
        self.limits = limits or RateLimits({})
        self.policy = policy or RetryPolicy()

    async def run(self, calls: Iterable[PaidCall]) -> None:
        """Run every call (or until Stop). Calls not started because of Stop are simply not reported."""
        source = iter(calls)
        workers = [asyncio.create_task(self._worker(source)) for _ in range(self.concurrency)]
        watcher = asyncio.create_task(self._watch_stop(workers))
        try:
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            watcher.cancel()

    async def _watch_stop(self, workers: list[asyncio.Task[None]]) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)
        for worker in workers:
            worker.cancel()

    async def _worker(self, source: Iterator[PaidCall]) -> None:
        for call in source:
            if self.stop.is_set():
                return
            started = time.monotonic()
            state = {"attempts": 0}
            try:
                result = await self._one(call, state)
            except asyncio.CancelledError:
                message = "the run was stopped while this call was in flight"
                result = _failed(call, ErrorCode.CANCELLED, message, attempts=state["attempts"])
                result.latency_ms = (time.monotonic() - started) * 1000
                self.on_result(result)
                return
            result.latency_ms = (time.monotonic() - started) * 1000
            self.on_result(result)
            # Calls that never wait (the offline model, cache hits) would otherwise run back to back without
            # letting the writer, the stop watcher or the other workers in.
            await asyncio.sleep(0)

    async def _one(self, call: PaidCall, state: dict[str, int]) -> CellResult:
        if self.cache is not None and call.cache_key is not None and not call.force:
            hit = self.cache.get(call.cache_key)
            if hit is not None:
                return CellResult(
                    call.column,
                    call.row_id,
                    call.key,
                    Status(hit.get("status", "done")),
                    value=hit.get("value"),
                    tokens=0,
                    cached=True,
                    saved=call.credits,
                    detail=call.detail,
                )
        if not self.budget.reserve(call.credits):
            message = f"this call costs {call.credits:g} credits, more than the run has left"
            return _failed(call, ErrorCode.INSUFFICIENT_CREDITS, message, attempts=0)
        charged = 0.0
        try:
            invalid = 0
            while True:
                await self.limits.acquire(call.model, call.est_tokens)
                state["attempts"] += 1
                try:
                    async with asyncio.timeout(call.deadline):  # no extra task per call, unlike wait_for
                        answer = await call.attempt()
                except TimeoutError:
                    failure = ProviderFailure(
                        ErrorCode.TIMEOUT, f"no complete answer within {call.deadline:g}s", retryable=True
                    )
                except ProviderFailure as caught:
                    failure = caught
                except Exception as caught:  # a bug or a surprise in a transport: the cell fails, the run goes on
                    log.exception("unexpected failure in a %s call", call.model)
                    failure = ProviderFailure(
                        ErrorCode.PROVIDER_ERROR,
                        f"unexpected {type(caught).__name__}: {caught}",
                        retryable=False,
                    )
                else:
                    charged = call.credits
                    return self._success(call, answer, state["attempts"])
                if failure.code is ErrorCode.INVALID_OUTPUT:
                    invalid += 1
                if not self.policy.should_retry(failure, state["attempts"] - invalid, invalid):
                    return _failed(call, failure.code, failure.message, attempts=state["attempts"])
                await asyncio.sleep(self.policy.delay(failure, state["attempts"] - invalid))
        finally:
            self.budget.settle(call.credits, charged)

    def _success(self, call: PaidCall, answer: Answer, attempts: int) -> CellResult:
        if self.cache is not None and call.cache_key is not None:
            self.cache.put(
                call.cache_key,
                {
                    "value": answer.value,
                    "status": answer.status.value,
                    "tokens": answer.tokens,
                    "provider_cost": answer.provider_cost,
                    "at": time.time(),
                },
            )
        return CellResult(
            call.column,
            call.row_id,
            call.key,
            answer.status,
            value=answer.value,
            credits=call.credits,
            tokens=answer.tokens,
            attempts=attempts,
            provider_cost=answer.provider_cost,
            detail=call.detail,
        )


def _failed(call: PaidCall, code: ErrorCode, message: str, *, attempts: int) -> CellResult:
    return CellResult(
        call.column,
        call.row_id,
        call.key,
        Status.ERROR,
        error_code=code,
        error_message=message,
        attempts=attempts,
        detail=call.detail,
    )
