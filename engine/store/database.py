"""Short-lived DuckDB connections to the workspace file, with retry on the lock another process holds.

DuckDB lets one process at a time open a file. Every operation runs one transaction on a connection of its
own, so the UI, a CLI batch job and a reader can take turns on one workspace. Never hold a transaction across
slow work (a provider call, a user's prompt).

Opening the file costs more than most edits (30 ms at a million records: the catalog, the write-ahead log),
so a process keeps it open for LINGER_SECONDS after its last transaction, and gives it up within POLL_SECONDS
when another process is waiting for it (see `_Holder`).

Inside one process, transactions on a file take turns too (the API's request threads, a background run's writer,
the UI's sessions): DuckDB would otherwise abort one of two transactions that update the same rows ("Conflict on
update"), and refuse to fold the log while another one writes. Between processes the file lock already makes
them take turns, so this costs little. Folding the log (CHECKPOINT) is housekeeping: it never fails a
transaction; when it cannot run now it is left for later (the next commit, or the idle fold).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from engine.errors import WorkspaceBusyError

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
DB_FILE = "runsheet.duckdb"  # the database file in a workspace folder
_CONNECT_LOCK = threading.Lock()

# Every open replays the write-ahead log, at about 0.25 ms per KB here, while a checkpoint folds it into the
# file at a cost that grows with the file (15 ms for a small workspace, 290 ms at a million records). With
# edits adding ~2.5 KB each, the sum of replays and checkpoints per edit is lowest when the log is folded at
# sqrt(8 x checkpoint ms x 2.5 KB): ~20 KB for a small workspace, ~80 KB at a million records.
WAL_MIN_BYTES = 16 * 1024
# A process waiting for the file retries at least twice within this pause that its holder makes for it.
TURN_SECONDS = 0.05
# How long a process keeps the file open after its last transaction (the grid's redraw after an edit, the next of
# a burst of requests) unless another process is waiting for it; and how often it looks for one meanwhile. Kept
# short: processes that share a workspace (the UI, its background runs, a CLI) otherwise hand it over far more.
LINGER_SECONDS = 0.25
POLL_SECONDS = 0.02


def wal_checkpoint_bytes(file_bytes: int) -> int:
    """The WAL size at which to checkpoint a workspace file of `file_bytes`."""
    checkpoint_ms = 10 + 1.5 * file_bytes / 2**20
    return max(WAL_MIN_BYTES, int(1024 * math.sqrt(20 * checkpoint_ms)))


def is_lock_error(err: Exception) -> bool:
    """Another process holds the file, or (same process) the read-only query sandbox has it attached."""
    text = str(err)
    if isinstance(err, duckdb.ResourceInUseException):
        return "file handle conflict" in text.lower()
    return isinstance(err, duckdb.IOException) and ("lock" in text.lower() or "Conflicting" in text)


class _Holder:
    """This process's hold on one workspace file: a connection that keeps DuckDB's instance of the file open
    between transactions, each of which runs on a cursor of it (a cursor costs microseconds, an open 30 ms)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.active = 0  # transactions running on it
        self.idle_since = 0.0  # when the last transaction ended (time.monotonic)
        self.watcher: threading.Thread | None = None  # gives the file up when idle (Database._watch)
        # One transaction at a time in this process (re-entrant: a refusal is logged in a transaction of its own
        # inside the caller's, engine/auth.py).
        self.turn = threading.RLock()

    def close(self) -> None:
        """Give the file up (the caller holds `lock`)."""
        if self.con is not None:
            with _CONNECT_LOCK:
                self.con.close()
            self.con = None


# Test hook (engine/testing.py's `count_calls`): wraps the connection each transaction runs on; empty in use.
CONNECTION_WRAPPERS: list[Callable[[duckdb.DuckDBPyConnection], duckdb.DuckDBPyConnection]] = []

_HOLDERS: dict[str, _Holder] = {}
_HOLDERS_LOCK = threading.Lock()


def _holder(path: Path) -> _Holder:
    with _HOLDERS_LOCK:
        if not _HOLDERS:
            atexit.register(release_all)
        return _HOLDERS.setdefault(str(path.resolve()), _Holder())


def release(path: Path) -> None:
    """Give up this process's hold on the file at `path` now, unless a transaction is running on it (the read-only
    query sandbox attaches the file from an instance of its own, which DuckDB refuses while this one is open)."""
    holder = _holder(path)
    with holder.lock:
        if holder.active == 0:
            holder.close()


def release_all() -> None:
    """Give up every file this process holds, and let the watchers end (at exit: a watcher still holding its
    connection then would leave it to the interpreter's teardown)."""
    for path in list(_HOLDERS):
        release(Path(path))
    for holder in list(_HOLDERS.values()):
        if holder.watcher is not None:
            holder.watcher.join(timeout=4 * POLL_SECONDS)


class Database:
    """Opens transactions on one DuckDB file, waiting (up to `busy_timeout` seconds) while another process has it."""

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout

    def release(self) -> None:
        """Give up this process's hold on the file now (see `release`)."""
        release(self.path)

    def _waiting_marker(self) -> Path:
        return self.path.parent / "control" / f"waiting-{os.getpid()}"

    def _someone_waiting(self) -> bool:
        """Whether another live process has left a marker saying it waits for the file."""
        for marker in self.path.parent.glob("control/waiting-*"):
            pid = int(marker.name.removeprefix("waiting-") or 0)
            if pid != os.getpid() and _alive(pid):
                return True
        return False

    def _open(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        # Take turns: when another live process is waiting for the file, pause once so it can open it (without
        # this, a process that writes in a loop reopens the file before a waiting one's next retry).
        if self._someone_waiting():
            time.sleep(TURN_SECONDS)
        try:
            return self._connect(read_only)
        finally:
            self._waiting_marker().unlink(missing_ok=True)

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                # Threads of one process (the API server, the UI, the runner's writer) share DuckDB's instance of
                # the file; creating or joining it from two threads at once has been seen to leave a connection
                # without its Arrow scan function, so connections are made one at a time.
                with _CONNECT_LOCK:
                    con = duckdb.connect(str(self.path), read_only=read_only)
                    # Closing would otherwise checkpoint the whole file every time (100+ ms on a million rows);
                    # DuckDB still checkpoints when the WAL passes its threshold.
                    if not read_only:
                        con.execute("PRAGMA disable_checkpoint_on_shutdown")
                return con
            except (duckdb.IOException, duckdb.ResourceInUseException) as err:
                if not is_lock_error(err):
                    raise
                if time.monotonic() >= deadline:
                    raise WorkspaceBusyError(
                        f"the workspace {self.path.parent} stayed locked by another process "
                        f"for {self.busy_timeout:.0f}s",
                        hint="wait for the other runsheet command to finish, or stop it",
                    ) from err
                marker = self._waiting_marker()
                if not marker.exists():
                    marker.parent.mkdir(exist_ok=True)
                    marker.touch()
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, TURN_SECONDS / 2)

    def _wal_bytes(self) -> int:
        try:
            return self.path.with_name(self.path.name + ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def _begin(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one transaction, on this process's hold of the file (opened if needed)."""
        holder = _holder(self.path)
        with holder.lock:
            if holder.con is None:
                holder.con = self._open()
                holder.watcher = threading.Thread(target=self._watch, args=(holder, holder.con), daemon=True)
                holder.watcher.start()
            holder.active += 1
            try:
                with _CONNECT_LOCK:
                    cursor = holder.con.cursor()
                for wrap in CONNECTION_WRAPPERS:
                    cursor = wrap(cursor)
                return cursor
            except BaseException:
                holder.active -= 1
                raise

    def _end(self) -> None:
        """After a transaction: give the file up at once if another process waits for it."""
        holder = _holder(self.path)
        with holder.lock:
            holder.active -= 1
            holder.idle_since = time.monotonic()
            if not holder.active and self._someone_waiting():
                holder.close()

    def _watch(self, holder: _Holder, con: duckdb.DuckDBPyConnection) -> None:
        """While this process holds the file (as `con`): give it up as soon as it is idle and another process waits
        for it, or once it has been idle for LINGER_SECONDS, then first folding the write-ahead log into the file so
        the next open does not replay it (up to 30 ms at a million records)."""
        while True:
            time.sleep(POLL_SECONDS)
            with holder.lock:
                if holder.con is not con:  # given up meanwhile (release)
                    return
                if holder.active:
                    continue
                waiting = self._someone_waiting()
                if not waiting and time.monotonic() - holder.idle_since < LINGER_SECONDS:
                    continue
                if not waiting and self._wal_bytes():
                    try:
                        con.execute("CHECKPOINT")
                    except duckdb.Error as err:  # another instance's transaction, say: the next open replays it
                        log.debug("idle checkpoint skipped: %s", err)
                holder.close()
                return

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection, one transaction: committed if the block succeeds (and `commit`), rolled back if it
        raises. `commit=False` is a dry run: work out what a request would do, then leave no trace. Waits for
        this process's other transactions on the file (WorkspaceBusyError after `busy_timeout` seconds)."""
        with self._turn():
            with self._one_transaction(commit) as con:
                yield con

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn on the file: its other transactions wait (WorkspaceBusyError after `busy_timeout`)."""
        turn = _holder(self.path).turn
        if not turn.acquire(timeout=self.busy_timeout):
            raise WorkspaceBusyError(
                f"the workspace {self.path.parent} stayed busy with another request of this process "
                f"for {self.busy_timeout:.0f}s",
                hint="retry in a moment; nothing was changed",
            )
        try:
            yield
        finally:
            turn.release()

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read that can write nothing: the file opened read-only for the block (waiting, as a transaction does,
        while another process has it open to write) and closed after it, so a short command pays no writer's open,
        watcher or log fold. When this process holds the file already, a transaction on that hold, rolled back."""
        with self._turn():
            if _holder(self.path).con is not None:
                with self._one_transaction(commit=False) as con:
                    yield con
                return
            con = self._open(read_only=True)
            try:
                wrapped = con
                for wrap in CONNECTION_WRAPPERS:
                    wrapped = wrap(wrapped)
                yield wrapped
            finally:
                with _CONNECT_LOCK:
                    con.close()

    @contextmanager
    def _one_transaction(self, commit: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._begin()
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if not commit:
                con.execute("ROLLBACK")
                return
            con.execute("COMMIT")
            self._fold_log(con)
        finally:
            con.close()
            self._end()

    def _fold_log(self, con: duckdb.DuckDBPyConnection) -> None:
        """After a commit: fold the write-ahead log into the file once it has grown past its threshold. The
        commit stands whatever happens here: while another transaction of this process is open (one a refusal
        is logged from, engine/auth.py) DuckDB refuses, and the fold waits for a later commit or the idle one."""
        if self._wal_bytes() <= wal_checkpoint_bytes(self.path.stat().st_size):
            return
        if _holder(self.path).active > 1:
            return
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as err:  # never FORCE: that would abort the other transactions
            log.debug("checkpoint after commit deferred: %s", err)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def dict_rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The rows of an executed query as dicts keyed by column name."""
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> Any:
    """The first value of the first row of a query (None for no rows); the result is fully consumed."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> pl.DataFrame:
    """A query's result as a polars DataFrame, through Arrow."""
    import polars as pl

    return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())  # type: ignore[return-value]
