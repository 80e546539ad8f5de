"""Test hooks: what tests and benchmarks look at inside the engine, kept out of the public API (`engine`).

PROBE_LEDGER records every call of the `probe` step kind made in this process, so a test asserts exactly which
cells ran (engine/cells/probe.py). `count_calls` counts the calls into DuckDB that transactions make (statements
and Arrow registrations), so a test pins how many an edit costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from engine.cells.probe import LEDGER as PROBE_LEDGER
from engine.store.database import CONNECTION_WRAPPERS

__all__ = ["PROBE_LEDGER", "CallCount", "count_calls"]

# The connection methods that run a statement or register a table: each a call into DuckDB.
COUNTED = frozenset({"execute", "executemany", "sql", "query", "register", "unregister", "from_arrow"})


class CallCount:
    """The calls into DuckDB counted so far: (method, first line of the statement or the name registered)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def statements(self) -> list[str]:
        return [text for method, text in self.calls if method != "register"]


class _Counting:
    def __init__(self, con: duckdb.DuckDBPyConnection, count: CallCount) -> None:
        self._con = con
        self._count = count

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._con, name)
        if name not in COUNTED:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            first = args[0] if args and isinstance(args[0], str) else ""
            self._count.calls.append((name, " ".join(first.split())[:200]))
            return found(*args, **kwargs)

        return counted


@contextmanager
def count_calls() -> Iterator[CallCount]:
    """Count the calls into DuckDB of every transaction begun in this block (in this process)."""
    count = CallCount()

    def wrap(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        return _Counting(con, count)  # type: ignore[return-value]

    CONNECTION_WRAPPERS.append(wrap)
    try:
        yield count
    finally:
        CONNECTION_WRAPPERS.remove(wrap)
