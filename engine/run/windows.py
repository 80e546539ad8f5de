"""A run's scope taken in windows of rows, each planned and claimed in a transaction of its own.

Planning and claiming every paid cell of a 10M-record campaign in one transaction held the workspace for about
30 s (longer than other processes wait for it) and built frames of every row at once (5.4 GB). A run instead
takes its scope window by window in row-id order: each window is a row range (`Scope.range`, so DuckDB skips the
row groups outside it) of at most `rows` rows, planned, claimed, computed, written back and propagated before the
next one is planned; between two windows the workspace is free for other writers (engine/store/database.py hands
it over to a process waiting for it). A window's transaction that takes longer than `seconds` makes the next ones
smaller.

What happens between two windows is as if it came before the windows not yet planned (each is planned from what
is stored then: an edit, a spec change, a pause) and after those already claimed (an edit takes a claimed cell
from the run, engine/graph/planner.py). Rows added after the run started are not in it: their own run queues
them.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb

from engine.graph import Request
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.cells import Scope
from engine.store.database import Database, scalar
from engine.store.settings import load_settings

MIN_ROWS = 1_000  # the smallest window the time bound shrinks a window to (less when `rows` is smaller)


@dataclass
class Windows:
    """The windows of one run's scope still to plan: `request` over `scope`, at most `rows` rows a window, each
    window's transaction aimed at `seconds`. `after` is the last row id planned; `last` the highest row id the
    scope covers (fixed when the run starts)."""

    request: Request
    scope: Scope
    rows: int
    seconds: float
    last: int
    after: int | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.rows

    @classmethod
    def over(
        cls,
        con: duckdb.DuckDBPyConnection,
        campaign: CampaignTables,
        request: Request,
        scope: Scope,
        *,
        rows: int | None = None,
        seconds: float | None = None,
    ) -> Windows | None:
        """The windows of `scope`, or None when it fits in one window (planned as it is, like any request). Their
        size and time aim are the workspace's settings (claim_window_rows, claim_window_seconds) unless given."""
        if rows is None or seconds is None:
            settings = load_settings(con)
            rows = settings.claim_window_rows if rows is None else rows
            seconds = settings.claim_window_seconds if seconds is None else seconds
        if scope.row_ids is not None:
            if len(scope.row_ids) <= rows:
                return None
            return cls(request, scope, rows, seconds, last=scope.row_ids[-1])
        lowest, highest = con.execute(
            f"SELECT min(row_id), max(row_id) FROM {campaign.rows_table} WHERE {scope.filter()}"
        ).fetchone() or (None, None)
        if lowest is None or highest - lowest < rows:  # row ids are distinct: the range holds at most its width
            return None
        return cls(request, scope, rows, seconds, last=int(highest))

    def next(self, con: duckdb.DuckDBPyConnection, campaign: CampaignTables) -> Scope | None:
        """The next window (None when every row of the scope has been planned); it counts as planned."""
        if self.after is not None and self.after >= self.last:
            return None
        if self.scope.row_ids is not None:
            ids = self.scope.row_ids
            start = 0 if self.after is None else bisect.bisect_right(ids, self.after)
            chosen = ids[start : start + self.size]
            if not chosen:
                self.after = self.last
                return None
            self.after = chosen[-1]
            contiguous = chosen[-1] - chosen[0] == len(chosen) - 1
            return Scope.range(chosen[0], chosen[-1]) if contiguous else Scope.rows(chosen)
        floor = f"row_id > {self.after}" if self.after is not None else self.scope.filter()
        first = scalar(
            con, f"SELECT min(row_id) FROM {campaign.rows_table} WHERE {floor} AND row_id <= {self.last}"
        )  # the first row left: row ids need not be dense (deleted rows leave gaps)
        if first is None:
            self.after = self.last
            return None
        end = min(int(first) + self.size - 1, self.last)
        self.after = end
        return Scope.range(int(first), end)

    @contextmanager
    def window(
        self, db: Database, name: str, *, commit: bool = True
    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, CampaignTables, Scope | None]]:
        """The next window in a transaction of its own (committed when the block succeeds and `commit`, else
        rolled back: a dry run's): yields the open transaction, campaign `name` as stored now and the window
        (None when every row has been planned). The transaction's time, from its start (the workspace held, after
        any wait for another process) to its commit, sizes the windows after it (`took`)."""
        with db.transaction(commit=commit) as con:
            began = time.monotonic()  # the file is ours from here: waiting for another process's turn is not timed
            campaign = load_campaign(con, name)
            yield con, campaign, self.next(con, campaign)
        self.took(time.monotonic() - began)

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block that takes a window (its transaction, or its part of one): when the block succeeds, the
        windows after it are sized by how long it took (`took`)."""
        began = time.monotonic()
        yield
        self.took(time.monotonic() - began)

    @property
    def left(self) -> bool:
        """Whether rows of the scope are still to plan."""
        return self.after is None or self.after < self.last

    def took(self, seconds: float) -> None:
        """A window's transaction took `seconds`: the next windows shrink when that was too long, grow back (up to
        `rows`) when it was well within the aim."""
        floor = min(self.rows, MIN_ROWS)
        if seconds > self.seconds:
            self.size = max(floor, int(self.size * self.seconds / seconds))
        elif seconds < self.seconds / 2:
            self.size = min(self.rows, self.size * 2)
