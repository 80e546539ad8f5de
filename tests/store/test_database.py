"""A process keeps the workspace file open for a while between its transactions, and gives it up: when the
while is over (folding the write-ahead log first), at once when asked, and to a process waiting for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from engine import Campaign, Workspace
from engine.store import database
from tests.support.servers import REPO

# Opens the file the plain way, without waiting: it fails while another process holds the file.
PLAIN_OPEN = "import duckdb, sys; duckdb.connect(sys.argv[1]).close(); print('opened')"
# Reads a cell the engine's way, waiting for the file (and saying so) while another process has it.
ENGINE_READ = (
    "import sys; from engine import Workspace; print(Workspace(sys.argv[1]).campaign('t').cell(2, 'greet').value)"
)
# Reads the status on a read-only snapshot (engine/status.py), waiting for the file the same way.
STATUS_READ = "import sys; from engine import read_status; print(read_status(sys.argv[1], 't').counts['greet'])"


def plain_open(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PLAIN_OPEN, path], capture_output=True, text=True, timeout=60)


def test_transactions_close_together_share_one_open_of_the_file(
    ws: Workspace, basic: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = []
    real_open = database.Database._open
    monkeypatch.setattr(database.Database, "_open", lambda self: opens.append(1) or real_open(self))
    ws.release()
    for k in range(5):
        basic.set(1, "first", f"name{k}")
    assert basic.cell(1, "greet").value.startswith("Hi name4")
    assert len(opens) == 1


def test_the_file_is_given_up_after_the_linger_with_its_log_folded(
    ws: Workspace, basic: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "LINGER_SECONDS", 3600.0)  # held however long the check below takes to start
    basic.set(2, "first", "Zed")
    wal = ws.db.path.with_name(ws.db.path.name + ".wal")
    assert wal.stat().st_size > 0
    assert "lock" in plain_open(str(ws.db.path)).stderr.lower()  # still held after the edit, while it lingers
    monkeypatch.setattr(database, "LINGER_SECONDS", 0.5)  # the watcher reads it on each poll
    holder = database._holder(ws.db.path)
    deadline = time.monotonic() + 60  # a loaded machine may be slow to schedule the watcher; no timing is asserted
    while holder.con is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.con is None, "the idle file was never given up"
    assert plain_open(str(ws.db.path)).stdout.strip() == "opened"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_waiting_process_gets_the_file_while_this_one_lingers(
    ws: Workspace, basic: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "LINGER_SECONDS", 3600.0)  # only the waiter can make this process let go
    basic.set(2, "first", "Zed")
    reader = subprocess.run(
        [sys.executable, "-c", ENGINE_READ, str(ws.path)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert (reader.returncode, reader.stdout.strip()) == (0, "Hi Zed at globex.io"), reader.stderr
    assert basic.cell(2, "greet").value == "Hi Zed at globex.io"  # and this process opens it again


def test_a_read_only_snapshot_waits_for_the_file_and_takes_no_write(
    ws: Workspace, basic: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "LINGER_SECONDS", 3600.0)  # only the waiter can make this process let go
    basic.set(2, "first", "Zed")
    reader = subprocess.run(
        [sys.executable, "-c", STATUS_READ, str(ws.path)], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert (reader.returncode, reader.stdout.strip()) == (0, "{'done': 3}"), reader.stderr
    assert basic.cell(2, "greet").value == "Hi Zed at globex.io"  # this process opens the file again
    with ws.db.snapshot() as con:  # this process holds the file again: the snapshot is a transaction rolled back
        assert database._holder(ws.db.path).con is not None
        con.execute("CREATE TABLE scratch (x INTEGER)")
    with ws.db.snapshot() as con:
        assert not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'scratch'").fetchall()


def test_release_gives_the_file_up_at_once(ws: Workspace, basic: Campaign) -> None:
    basic.set(2, "first", "Zed")
    ws.release()
    assert plain_open(str(ws.db.path)).stdout.strip() == "opened"
    assert basic.cell(2, "greet").value.startswith("Hi Zed")  # and this process opens it again when needed


def test_a_query_right_after_an_edit_reads_it(ws: Workspace, basic: Campaign) -> None:
    """The read-only query sandbox attaches the file from an instance of its own: this process's hold on the
    file is given up first, or DuckDB would refuse it."""
    basic.set(3, "first", "Ada")
    answer = ws.query("SELECT greet FROM t WHERE first = 'Ada'")
    assert answer["greet"].to_list()[0].startswith("Hi Ada")


def test_a_commit_stands_when_the_log_cannot_be_folded_now(
    ws: Workspace, basic: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 6: the fold after a commit (CHECKPOINT) failed with "there are other write transactions
    active" and the caller saw an error for a write that had committed (an API request answered 500)."""
    monkeypatch.setattr(database, "wal_checkpoint_bytes", lambda file_bytes: 0)  # fold after every commit
    basic.set(1, "first", "Ann")  # the file is open in this process from here on
    other = database._holder(ws.db.path).con.cursor()  # a writer DuckDB knows of and the engine does not count
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE c1_rows SET created_at = created_at WHERE row_id = 3")
    try:
        basic.set(2, "first", "Zed")  # commits, then the fold is refused by DuckDB: the edit stands
        with ws.db.transaction() as outer:  # a transaction inside another one (a refusal is logged that way)
            outer.execute("UPDATE c1_rows SET created_at = created_at WHERE row_id = 1")
            with ws.db.transaction() as inner:
                inner.execute("INSERT INTO credit_ledger VALUES (now(), 5, NULL, NULL, 'test')")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert basic.cell(2, "greet").value == "Hi Zed at globex.io"
    with ws.db.transaction() as con:
        assert database.scalar(con, "SELECT count(*) FROM credit_ledger WHERE reason = 'test'") == 1
    basic.set(3, "first", "Cy")  # and the next commit, with nothing else open, folds the log
    assert ws.db._wal_bytes() == 0


def test_threads_of_one_process_take_turns_instead_of_conflicting(ws: Workspace, basic: Campaign) -> None:
    """Two threads updating the same row at once (two API requests, a run's writer and an edit): DuckDB aborted
    one with "Conflict on update"; transactions of one process now take turns."""
    first_wrote, second_done = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    with ws.db.transaction() as con:
        table = database.scalar(con, "SELECT table_name FROM columns WHERE name = 'first'")

    def first() -> None:
        with ws.db.transaction() as con:
            con.execute(f"UPDATE {table} SET value = 'Bob' WHERE row_id = 1")
            first_wrote.set()
            second_done.wait(1.0)  # before taking turns, the second one failed meanwhile

    def second() -> None:
        first_wrote.wait(30)
        try:
            basic.set(1, "first", "Ada")
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            failures.append(err)
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert basic.cell(1, "greet").value == "Hi Ada at acme.com"
