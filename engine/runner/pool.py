"""The async runner: a fixed pool of workers pulling paid calls, each call behind the global concurrency limit,
its model's rate limits, the budget, the result cache and a wall-clock deadline, retried by our own policy.

One request, one bill: a call whose request is already in flight in this process (same run or another) does not
take a worker; it follows that flight (engine/runner/flights.py) and is reported as a cache hit costing nothing
when the answer lands. A cacheable request another process is making is waited for through the cache's lease.
Run Again bypasses the cache, yet its identical requests are still sent once within the run (in flight or
answered already), and so are the identical requests of a step that is never cached.

Results go to `on_result` the moment they exist (the writer batches them to DuckDB); answers go to the cache
first, so a crash never loses what was paid for. Every attempt's tokens and provider cost count, failed ones
included. Stop cancels the calls in flight and starts nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from engine.cache import ResultCache
from engine.llm.types import ProviderFailure
from engine.runner.budget import Budget
from engine.runner.calls import Answer, CellResult, PaidCall
from engine.runner.flights import FLIGHTS, shareable
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.types import ErrorCode, Status

log = logging.getLogger(__name__)
STOP_POLL_SECONDS = 0.1
LEASE_POLL_SECONDS = 0.1
RECENT_ANSWERS = 10_000  # answers of cached requests kept in memory for the run's repeats


class Limits(Protocol):
    """What the attempts wait on before each try: the per-model rate limits (here, or a cluster's shared ones)."""

    async def acquire(self, model: str, tokens: int) -> None: ...


@dataclass
class Spent:
    """What a call's attempts have cost so far."""

    attempts: int = 0
    tokens: int = 0
    provider_cost: float | None = None

    def add(self, tokens: int, provider_cost: float | None) -> None:
        self.tokens += tokens
        if provider_cost is not None:
            self.provider_cost = (self.provider_cost or 0.0) + provider_cost


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
        self._followers: set[asyncio.Task[None]] = set()
        # Outcomes of this run's requests by flight key: the same request later in the run takes them instead of
        # being sent again. All of those the cache cannot give back (Run Again, never cached); the latest others
        # too, since a look in memory costs microseconds and one in the cache's SQLite file about a millisecond.
        self._answered: dict[str, CellResult] = {}
        self._recent: OrderedDict[str, CellResult] = OrderedDict()

    async def run(self, calls: Iterable[PaidCall]) -> None:
        """Run every call (or until Stop). Calls not started because of Stop are simply not reported."""
        source = iter(calls)
        workers = [asyncio.create_task(self._worker(source)) for _ in range(self.concurrency)]
        watcher = asyncio.create_task(self._watch_stop(workers))
        try:
            await asyncio.gather(*workers, return_exceptions=True)
            while self._followers:  # a follower whose leader could not share may follow another flight
                await asyncio.gather(*list(self._followers), return_exceptions=True)
        finally:
            watcher.cancel()

    async def _watch_stop(self, workers: list[asyncio.Task[None]]) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(STOP_POLL_SECONDS)
        for task in [*workers, *self._followers]:
            task.cancel()

    async def _worker(self, source: Iterator[PaidCall]) -> None:
        for call in source:
            if self.stop.is_set():
                return
            started = time.monotonic()
            spent = Spent()
            try:
                result = await self._fly(call, spent, started)
            except asyncio.CancelledError:
                self._report(_cancelled(call, spent), started)
                return
            if result is not None:
                self._report(result, started)
            # Calls that never wait (the offline model, cache hits, followers) would otherwise run back to back
            # without letting the writer, the stop watcher or the other workers in.
            await asyncio.sleep(0)

    def _report(self, result: CellResult, started: float) -> None:
        result.latency_ms = (time.monotonic() - started) * 1000
        self.on_result(result)

    def _flight_key(self, call: PaidCall) -> str | None:
        """Which flight a call may share: its request; under Run Again, only with this run's same requests."""
        if call.request_key is None:
            return None
        return f"{call.request_key}|again:{id(self)}" if call.force else call.request_key

    async def _fly(self, call: PaidCall, spent: Spent, started: float) -> CellResult | None:
        """Answer the call from this run's answers or the cache, or follow the identical request in flight (then
        None: a follower task reports), or make it."""
        key = self._flight_key(call)
        answered = None if key is None else self._answered.get(key) or self._recent.get(key)
        if answered is not None:
            return shared_outcome(call, answered)
        hit = self._cached(call)
        if hit is not None:
            return hit
        if key is None:
            return await self._one(call, spent)
        flight, leading = FLIGHTS.board(key)
        if not leading:
            follower = asyncio.create_task(self._follow(call, flight, started))
            self._followers.add(follower)
            follower.add_done_callback(self._followers.discard)
            return None
        result: CellResult | None = None
        try:
            result = await self._one(call, spent)
            if shareable(result):
                self._remember(key, call, result)
            return result
        finally:
            FLIGHTS.land(key, flight, result)

    def _remember(self, key: str, call: PaidCall, result: CellResult) -> None:
        if call.force or call.cache_key is None:
            self._answered[key] = result
            return
        self._recent[key] = result
        if len(self._recent) > RECENT_ANSWERS:
            self._recent.popitem(last=False)

    async def _follow(self, call: PaidCall, flight: Future[CellResult | None], started: float) -> None:
        """Wait for the leader of this request; take its outcome, or ask again when it cannot be shared."""
        spent = Spent()
        result: CellResult | None
        try:
            shared = await asyncio.wrap_future(flight)
            if shared is not None:
                result = shared_outcome(call, shared)
            elif self.stop.is_set():
                result = _cancelled(call, spent)
            else:
                result = await self._fly(call, spent, started)
        except asyncio.CancelledError:
            result = _cancelled(call, spent)
        if result is not None:
            self._report(result, started)

    def _cached(self, call: PaidCall) -> CellResult | None:
        if self.cache is None or call.cache_key is None or call.force:
            return None
        hit = self.cache.get(call.cache_key)
        return None if hit is None else _hit(call, hit)

    async def _one(self, call: PaidCall, spent: Spent) -> CellResult:
        leased = self.cache is not None and call.cache_key is not None and call.request_key is not None
        leased = leased and not call.force
        if leased:
            hit = await self._wait_for_lease(call)
            if hit is not None:
                return hit
        try:
            return await self._attempts(call, spent)
        finally:
            if leased:
                assert self.cache is not None and call.cache_key is not None
                self.cache.release(call.cache_key)

    async def _wait_for_lease(self, call: PaidCall) -> CellResult | None:
        """Take the lease on this request, or, while another process holds it, wait for its answer."""
        assert self.cache is not None and call.cache_key is not None
        while not self.cache.lease(call.cache_key):
            await asyncio.sleep(LEASE_POLL_SECONDS)
            hit = self._cached(call)
            if hit is not None:
                return hit
        return self._cached(call)  # it may have landed between the last look and the lease

    async def _attempts(self, call: PaidCall, spent: Spent) -> CellResult:
        if not self.budget.reserve(call.credits):
            message = f"this call costs {call.credits:g} credits, more than the run has left"
            return _failed(call, ErrorCode.INSUFFICIENT_CREDITS, message, spent)
        charged = 0.0
        try:
            outcome = await self._make(call, spent)
            if isinstance(outcome, ProviderFailure):
                return _failed(call, outcome.code, outcome.message, spent)
            charged = call.credits
            return self._success(call, outcome, spent)
        finally:
            self.budget.settle(call.credits, charged)

    async def _make(self, call: PaidCall, spent: Spent) -> Answer | ProviderFailure:
        """Make the call's attempts here, in this process (a backend may make them elsewhere: runner/backend.py)."""
        return await make_attempts(
            call.attempt, call.model, call.est_tokens, call.deadline, spent, self.limits, self.policy
        )

    def _success(self, call: PaidCall, answer: Answer, spent: Spent) -> CellResult:
        result = CellResult(
            call.column,
            call.row_id,
            call.key,
            answer.status,
            value=answer.value,
            credits=call.credits,
            tokens=spent.tokens,
            attempts=spent.attempts,
            provider_cost=spent.provider_cost,
            detail=call.detail,
        )
        if self.cache is not None and call.cache_key is not None:
            self.cache.put(
                call.cache_key,
                {
                    "value": result.value,  # as stored: redacted (engine/redaction.py)
                    "status": answer.status.value,
                    "tokens": answer.tokens,
                    "provider_cost": answer.provider_cost,
                    "at": time.time(),
                },
            )
        return result


async def make_attempts(
    attempt: Callable[[], Awaitable[Answer]],
    model: str,
    est_tokens: int,
    deadline: float,
    spent: Spent,
    limits: Limits,
    policy: RetryPolicy,
) -> Answer | ProviderFailure:
    """One call's attempts under its model's rate limits, each within `deadline`, retried by `policy`: the answer,
    or the failure it ended with. `spent` counts every attempt's tokens and cost, failed ones included."""
    invalid = 0
    while True:
        await limits.acquire(model, est_tokens)
        spent.attempts += 1
        try:
            async with asyncio.timeout(deadline):  # no extra task per call, unlike wait_for
                answer = await attempt()
        except TimeoutError:
            failure = ProviderFailure(ErrorCode.TIMEOUT, f"no complete answer within {deadline:g}s", retryable=True)
        except ProviderFailure as caught:
            failure = caught
        except Exception as caught:  # a bug or a surprise in a transport: the cell fails, the run goes on
            log.exception("unexpected failure in a %s call", model)
            failure = ProviderFailure(
                ErrorCode.PROVIDER_ERROR,
                f"unexpected {type(caught).__name__}: {caught}",
                retryable=False,
            )
        else:
            spent.add(answer.tokens, answer.provider_cost)
            return answer
        spent.add(failure.tokens, failure.provider_cost)
        if failure.code is ErrorCode.INVALID_OUTPUT:
            invalid += 1
        if not policy.should_retry(failure, spent.attempts - invalid, invalid):
            return failure
        await asyncio.sleep(policy.delay(failure, spent.attempts - invalid))


def _hit(call: PaidCall, hit: dict[str, object]) -> CellResult:
    """A cell answered from the cache: no call, no credits."""
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


def shared_outcome(call: PaidCall, leader: CellResult) -> CellResult:
    """A cell that asked what the leader of its flight asked: the same outcome, for nothing (a hit if answered)."""
    answered = leader.status is not Status.ERROR
    return CellResult(
        call.column,
        call.row_id,
        call.key,
        leader.status,
        value=leader.value,
        error_code=leader.error_code,
        error_message=leader.error_message,
        cached=answered,
        saved=call.credits if answered else 0.0,
        detail=call.detail,
    )


def _failed(call: PaidCall, code: ErrorCode, message: str, spent: Spent) -> CellResult:
    return CellResult(
        call.column,
        call.row_id,
        call.key,
        Status.ERROR,
        error_code=code,
        error_message=message,
        attempts=spent.attempts,
        tokens=spent.tokens,
        provider_cost=spent.provider_cost,
        detail=call.detail,
    )


def _cancelled(call: PaidCall, spent: Spent) -> CellResult:
    return _failed(call, ErrorCode.CANCELLED, "the run was stopped while this call was in flight", spent)
