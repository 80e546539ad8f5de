"""The SQL sandbox: users' SQL runs here, never in the writer's DuckDB instance.

Queries run in an in-memory DuckDB locked down once, when this process first queries the workspace: no file
system but the workspace file (and its write-ahead log), no extensions, no Python replacement scans, no spilling
to disk, a memory limit, configuration locked. It is kept for the process's later queries (making one costs
more than a point lookup), which take turns on it. For each query it attaches the workspace file READ_ONLY
under an alias drawn at random (waiting, like the writer, while another process holds it), builds the views of
engine/sql/views.py that the query reads, and detaches the file after it, so the next query sees every write
made meanwhile (the views are kept while the file is unchanged; a query may name only those built for it). An
export's sandbox, which may write one file, is an instance of its own.

Only a single SELECT (or EXPLAIN) is accepted, it may name only those views (engine/sql/statement.py: the
workspace's own tables, users and tokens among them, are out of reach), and it is interrupted when it passes
its time limit.
"""

from __future__ import annotations

import atexit
import itertools
import os
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from engine.errors import NotFoundError, QueryError, WorkspaceBusyError
from engine.sql.needs import EVERYTHING, Needs, needs_of
from engine.sql.statement import DEPTH_HINT, Reachable, ReadStatement, check_reach, parse_read
from engine.sql.views import CampaignLayout, Known, create_views, read_layouts
from engine.store.database import is_lock_error, release
from engine.store.schema import literal

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Limits:
    """How long a statement may run (seconds) and how much memory the sandbox may use (DuckDB size text)."""

    timeout: float = 30.0
    memory_limit: str = "1GB"


class Sandbox:
    """One locked-down DuckDB instance over a workspace file, open for the duration of a `with` block."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        layouts: list[CampaignLayout],
        limits: Limits,
        reachable: Reachable,
        db: str,
        parsed: ReadStatement | None = None,
    ) -> None:
        self.con = con
        self.parsed = parsed  # the statement open_sandbox already parsed, so a query is parsed once
        self.layouts = {layout.name: layout for layout in layouts}
        self.limits = limits
        self.reachable = reachable
        self.db = db  # the attached workspace's alias: engine SQL only

    def layout(self, campaign: str) -> CampaignLayout:
        if campaign not in self.layouts:
            known = ", ".join(self.layouts) or "none yet"
            raise NotFoundError(f"no campaign named '{campaign}'", hint=f"apply its spec first (known: {known})")
        return self.layouts[campaign]

    def check(self, sql: str, *, what: str = "query") -> str:
        """The text of `sql` if it is exactly one read statement naming only the views; otherwise a QueryError
        saying why not."""
        if self.parsed is not None and self.parsed.source == sql and what == "query":
            statement = self.parsed
        else:
            statement = parse_read(self.con, sql, what=what)
        check_reach(statement, self.reachable)
        return statement.text

    def query(self, sql: str) -> pa.Table:
        """Run one user SELECT and return its whole result."""
        text = self.check(sql)
        with self._deadline():
            return self.con.sql(text).to_arrow_table()

    def describe(self, select: str) -> dict[str, str]:
        """The column names and types `select` would give, without running it."""
        with self._deadline():
            return {str(row[0]): str(row[1]) for row in self.con.execute(f"DESCRIBE {select}").fetchall()}

    def run(self, sql: str) -> list[tuple[object, ...]]:
        """Run a statement the engine wrote (user SQL inside it must have passed `check`), under the
        limits."""
        with self._deadline():
            return self.con.execute(sql).fetchall()

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        armed = _WATCHDOG.arm(self.limits.timeout, self.con.interrupt)
        try:
            yield
        except duckdb.Error as err:
            raise translate(err, self.limits, self.tables(), self.db) from err
        finally:
            _WATCHDOG.disarm(armed)

    def tables(self) -> list[str]:
        return self.reachable.names()


class _Watchdog:
    """One thread that interrupts statements that pass their time limit (a timer thread per statement cost a
    millisecond of a point lookup). Once `disarm` returns, the statement's interrupt can no longer fire."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def arm(self, seconds: float, interrupt: Callable[[], None]) -> int:
        with self._changed:
            token = next(self._tokens)
            self._due[token] = (time.monotonic() + seconds, interrupt)
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._watch, name="runsheet-query-deadlines", daemon=True)
                self._stopping = False
                self._thread.start()
                atexit.register(self.stop)
            self._changed.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._changed:
            self._due.pop(token, None)

    def stop(self) -> None:
        """End the thread (at exit: a thread still waiting then keeps DuckDB's objects alive through the
        interpreter's teardown, and the duckdb module prints a page of "leaked instance" lines on stderr)."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _watch(self) -> None:
        with self._changed:
            while not self._stopping:
                now = time.monotonic()
                for token, (deadline, interrupt) in list(self._due.items()):
                    if deadline <= now:
                        del self._due[token]
                        interrupt()
                soonest = min((deadline for deadline, _ in self._due.values()), default=None)
                self._changed.wait(None if soonest is None else max(0.0, soonest - now))


_WATCHDOG = _Watchdog()


@contextmanager
def open_sandbox(
    db_path: Path,
    *,
    limits: Limits | None = None,
    busy_timeout: float = 30.0,
    writable: Path | None = None,
    needs: Needs = EVERYTHING,
    query: str | None = None,
    reader: str | None = None,
) -> Iterator[Sandbox]:
    """A sandbox over the workspace file at `db_path`, for the duration of the block. `writable` is the one file
    the engine's own statements may write (an export's temporary file: such a sandbox is an instance of its
    own, closed on leaving); `needs` limits the views built to what a statement reads (see needs.py). `query`, a
    user's statement, is parsed before anything is attached (a bad one is refused at once) and sets `needs`.
    `reader`, who asks, sees only the actions (and their results) the action library would show them."""
    limits = limits or Limits()
    if writable is not None:
        with _fresh_sandbox(db_path, limits, busy_timeout, writable, needs, query, reader) as box:
            yield box
        return
    while True:
        kept = _kept_instance(db_path, limits)
        if not kept.lock.acquire(timeout=busy_timeout):
            raise WorkspaceBusyError(
                f"the workspace {db_path.parent} stayed busy with another query of this process for "
                f"{busy_timeout:.0f}s",
                hint="retry in a moment",
            )
        if not kept.closed:
            break
        kept.lock.release()  # closed meanwhile (one instance too many): take a new one
    attached = False
    try:
        parsed = None
        if query is not None:
            parsed = parse_read(kept.con, query)
            needs = needs_of(parsed.text)
        _attach(kept.con, kept.path, busy_timeout, kept.db)
        attached = True
        stamp = _file_stamp(kept.path)
        if stamp != kept.stamp:  # written since: what it knew of the file is read again, the views made anew
            kept.stamp, kept.known = stamp, Known()
        layouts = read_layouts(kept.con, needs, kept.db, kept.known)
        reachable = create_views(kept.con, layouts, needs, kept.db, kept.known, reader)
        yield Sandbox(kept.con, layouts, limits, reachable, kept.db, parsed)
    finally:
        try:
            _tidy(kept, attached)
        finally:
            kept.lock.release()


@dataclass
class _Kept:
    """A locked-down in-memory instance that this process's queries on one workspace file take turns on: a new
    instance costs more than a point lookup. Between queries it does not hold the file: it is attached for one
    query, so writers, here or in another process, are never kept waiting. What it remembers (the catalog, which
    column tables line up with their registry, the views: views.py's `Known`) holds while the file and its
    write-ahead log are unchanged (`stamp`)."""

    con: duckdb.DuckDBPyConnection
    path: Path
    db: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    stamp: object = None
    known: Known = field(default_factory=Known)
    closed: bool = False

    def close(self) -> None:
        """Close the instance (the caller holds `lock`, or nobody can)."""
        self.closed = True
        self.con.close()


# Instances kept, the most recently used last: a process that opens many workspaces (a test run) keeps only
# the last few, each an instance with its own threads.
_KEPT: OrderedDict[tuple[str, str, int], _Kept] = OrderedDict()
_KEPT_LOCK = threading.Lock()
MAX_KEPT = 4


def _kept_instance(db_path: Path, limits: Limits) -> _Kept:
    """This process's kept instance for the file at `db_path` under `limits.memory_limit` (made locked down,
    allowed to read only that file and its write-ahead log)."""
    path = db_path.resolve()
    key = (str(path), limits.memory_limit, os.getpid())  # a forked child makes its own
    with _KEPT_LOCK:
        if key not in _KEPT:
            con = _locked_down(limits, [path, path.with_name(path.name + ".wal")])
            _KEPT[key] = _Kept(con, path, "ws_" + secrets.token_hex(16))
            for old_key, old in list(_KEPT.items())[: max(0, len(_KEPT) - MAX_KEPT)]:
                if old.lock.acquire(blocking=False):  # one in use is closed by a later call
                    del _KEPT[old_key]
                    old.close()
                    old.lock.release()
        _KEPT.move_to_end(key)
        return _KEPT[key]


def _tidy(kept: _Kept, attached: bool) -> None:
    """After a query: detach the file; an instance that cannot be tidied is not kept. The views stay, for the
    next query to use while the file is unchanged: a query may name only those built for it."""
    try:
        if attached:
            kept.con.execute(f"DETACH {kept.db}")
    except duckdb.Error:
        with _KEPT_LOCK:
            for key, found in list(_KEPT.items()):
                if found is kept:
                    del _KEPT[key]
        kept.close()


def _file_stamp(path: Path) -> tuple[tuple[int, int, int] | None, ...]:
    """What changes whenever the workspace file is written: the file's and its write-ahead log's identity, size
    and modification time (nanoseconds)."""
    stamps: list[tuple[int, int, int] | None] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            found = file.stat()
        except FileNotFoundError:
            stamps.append(None)
        else:
            stamps.append((found.st_ino, found.st_size, found.st_mtime_ns))
    return tuple(stamps)


def _locked_down(limits: Limits, readable: list[Path]) -> duckdb.DuckDBPyConnection:
    """A new in-memory instance: no file system but the `readable` files, no extensions, no Python replacement
    scans, no spilling to disk, `limits.memory_limit`, configuration locked."""
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        _lock_down(con, limits, readable)
    except BaseException:
        con.close()
        raise
    return con


def _lock_down(con: duckdb.DuckDBPyConnection, limits: Limits, readable: list[Path]) -> None:
    settings = [
        f"SET memory_limit = {literal(limits.memory_limit)}",
        "SET temp_directory = ''",
        "SET python_enable_replacements = false",
        "SET enable_progress_bar = false",  # a library prints nothing (a slow query drew one on stdout)
    ]
    if readable:
        settings.append(f"SET allowed_paths = [{', '.join(literal(str(p)) for p in readable)}]")
    settings += ["SET enable_external_access = false", "SET lock_configuration = true"]
    for statement in settings:
        try:
            con.execute(statement)
        except duckdb.Error as err:
            if "memory_limit" in statement:
                raise QueryError(
                    f"{limits.memory_limit!r} is not a memory size", hint="write it like 512MB or 2GB"
                ) from err
            raise


@contextmanager
def _fresh_sandbox(
    db_path: Path,
    limits: Limits,
    busy_timeout: float,
    writable: Path,
    needs: Needs,
    query: str | None,
    reader: str | None,
) -> Iterator[Sandbox]:
    """A sandbox in an instance of its own, closed on leaving: the file is attached and the views built before
    it is locked down, allowed to write only `writable`."""
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    db = "ws_" + secrets.token_hex(16)
    parsed = None
    try:
        if query is not None:
            parsed = parse_read(con, query)
            needs = needs_of(parsed.text)
        _attach(con, db_path, busy_timeout, db)
        layouts = read_layouts(con, needs, db)
        reachable = create_views(con, layouts, needs, db, reader=reader)
        _lock_down(con, limits, [writable])
        yield Sandbox(con, layouts, limits, reachable, db, parsed)
    finally:
        con.close()


def _attach(con: duckdb.DuckDBPyConnection, db_path: Path, busy_timeout: float, db: str) -> None:
    if not db_path.exists():
        raise NotFoundError(
            f"no workspace at {db_path.parent}", hint=f"create one with `runsheet init {db_path.parent}`"
        )
    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        release(db_path)  # this process's own hold on the file (engine/store/database.py) would refuse the attach
        try:
            con.execute(f"ATTACH {literal(str(db_path))} AS {db} (READ_ONLY)")
            return
        except duckdb.Error as err:
            if not is_lock_error(err):
                raise
            if time.monotonic() >= deadline:
                raise WorkspaceBusyError(
                    f"the workspace {db_path.parent} stayed locked by another process for {busy_timeout:.0f}s",
                    hint="wait for the other runsheet command to finish, or stop it",
                ) from err
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.1)


def translate(err: duckdb.Error, limits: Limits, tables: list[str], db: str = "") -> QueryError:
    """A DuckDB error from user SQL, as one line saying what happened and what to do (never naming the
    attached workspace's alias `db`)."""
    text = _first_line(err)
    if db:
        text = text.replace(f"{db}.", "").replace(db, "workspace")
    if isinstance(err, duckdb.InterruptException):
        return QueryError(
            f"the query ran longer than {limits.timeout:g}s and was stopped",
            hint="narrow it (a WHERE, a LIMIT), or allow more time with --timeout",
        )
    if isinstance(err, duckdb.OutOfMemoryException) or "memory limit" in text.lower():
        return QueryError(
            f"the query needed more than its {limits.memory_limit} of memory",
            hint="filter or aggregate more, or allow more with --memory-limit",
        )
    if isinstance(err, duckdb.PermissionException):
        return QueryError(
            "queries cannot read or write files, attach databases or load extensions",
            hint="query the workspace's own tables: " + ", ".join(tables),
        )
    if "read-only" in text:
        return QueryError("the workspace is read-only to queries", hint="change data with runsheet import, set or run")
    if "configuration has been locked" in text:
        return QueryError("queries cannot change settings", hint="remove the SET; limits are options of the command")
    if "expression depth" in text:
        return QueryError("the query is nested more than 1000 levels deep", hint=DEPTH_HINT)
    if isinstance(err, duckdb.CatalogException):
        return QueryError(text, hint="the tables are: " + ", ".join(tables))
    if isinstance(err, duckdb.ParserException):
        return QueryError(text, hint="fix the SQL syntax")
    return QueryError(text, hint="fix the query")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
