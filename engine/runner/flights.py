"""Single flight: the requests being made in this process, by request key. The first caller makes the request;
every other caller of the same key (in the same run, or in another run of this process on its own event loop)
waits for that outcome instead of paying for the same request again.

Outcomes travel in `concurrent.futures.Future`s because runs of one process each have their own event loop,
often in their own thread (engine/run/paid.py); `asyncio.wrap_future` awaits one from any loop.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from engine.runner.calls import CellResult
from engine.types import ErrorCode, Status

# Outcomes that belong to the caller that made them, not to the request: a stopped run, a run out of credits.
CALLER_CODES = frozenset({ErrorCode.CANCELLED, ErrorCode.INSUFFICIENT_CREDITS})


def shareable(result: CellResult | None) -> bool:
    """Whether every caller of the request may take this outcome as its own."""
    if result is None:
        return False
    return result.status is not Status.ERROR or result.error_code not in CALLER_CODES


class Flights:
    """Requests in flight, each with the future its outcome lands in (None: nobody may share it, ask again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flying: dict[str, Future[CellResult | None]] = {}

    def board(self, key: str) -> tuple[Future[CellResult | None], bool]:
        """The flight for `key`, and whether this caller leads it (makes the request) or follows it."""
        with self._lock:
            flight = self._flying.get(key)
            if flight is not None:
                return flight, False
            flight = self._flying[key] = Future()
            return flight, True

    def land(self, key: str, flight: Future[CellResult | None], result: CellResult | None) -> None:
        """The leader's request ended: hand its outcome to the followers (None when it cannot be shared)."""
        with self._lock:
            if self._flying.get(key) is flight:
                del self._flying[key]
        flight.set_result(result if shareable(result) else None)


FLIGHTS = Flights()
