"""SQL over the workspace: the views a query sees, and the sandbox that keeps it read-only and bounded."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import Campaign, QueryError, Status, Workspace
from engine.sql.needs import needs_of
from engine.sql.sandbox import Limits, open_sandbox
from tests.conftest import BASIC_ROWS, BASIC_SPEC, snapshot


def test_each_campaign_is_a_wide_table_of_its_values(ws: Workspace, basic: Campaign) -> None:
    found = ws.query("SELECT * FROM t ORDER BY row_id")
    assert found.equals(basic.values())
    assert ws.query("SELECT * FROM campaign.t ORDER BY row_id").equals(found)
    assert ws.query("SELECT name FROM campaigns").rows() == [("t",)]


def test_cells_hold_every_step_cell_with_its_state(ws: Workspace, basic: Campaign) -> None:
    basic.run(["research"], rows=[1])
    counts = ws.query(
        "SELECT \"column\", status, count(*) AS n FROM cells WHERE campaign = 't' GROUP BY ALL ORDER BY ALL"
    )
    expected = sorted((c, s, n) for c, found in basic.status_counts().items() for s, n in found.items())
    assert counts.rows() == expected
    cell = ws.query(
        "SELECT row_id, value, status, credits, error_code, started_at IS NOT NULL AS timed FROM cells "
        "WHERE \"column\" = 'research' AND row_id = 1"
    )
    stored = basic.cell(1, "research")
    assert cell.rows() == [(1, stored.value, Status.DONE.value, stored.cost, None, True)]
    assert set(ws.query("SELECT * FROM cells LIMIT 0").columns) >= {
        "campaign",
        "row_id",
        "column",
        "status",
        "error_code",
        "error_hint",
        "credits",
        "tokens",
        "latency_ms",
        "started_at",
        "finished_at",
    }


def test_runs_and_activity_name_their_campaign(ws: Workspace, basic: Campaign) -> None:
    runs = ws.query("SELECT campaign, trigger, count(*) AS n FROM runs GROUP BY ALL ORDER BY ALL")
    assert ("t", "api", 1) in runs.rows()  # the new rows, logged with the trigger they came in by
    activity = ws.query("SELECT DISTINCT campaign, column_name FROM activity WHERE column_name = 'domain'")
    assert activity.rows() == [("t", "domain")]


NEEDS = [
    ("SELECT email, count(*) FROM t GROUP BY ALL", {"t"}, {"email", "t"}),
    (
        "SELECT a.first FROM t a JOIN cells c USING (row_id) WHERE c.status = 'error'",
        {"t", "cells"},
        {"a", "c", "t", "cells", "first", "row_id", "status"},
    ),
    ("SELECT * FROM t", {"t"}, None),
    ("SELECT x.* FROM t x", {"t"}, None),
    ("SELECT COLUMNS('e.*') FROM t", {"t"}, None),
    ("SELECT t FROM t", {"t"}, None),
    ("WITH x AS (SELECT email FROM t) SELECT count(*) FROM x", {"t", "x"}, {"email", "t", "x"}),
    ("EXPLAIN SELECT email FROM t", None, None),
    ("DESCRIBE t", {"t"}, None),
    ("SELECT count(*) FROM (SUMMARIZE t)", {"t"}, None),
]


@pytest.mark.parametrize(("sql", "tables", "columns"), NEEDS)
def test_only_the_views_and_columns_a_query_reads_are_built(
    sql: str, tables: set[str] | None, columns: set[str] | None
) -> None:
    needs = needs_of(sql)
    assert needs.tables == (None if tables is None else frozenset(tables))
    assert needs.columns == (None if columns is None else frozenset(columns))


def test_pruned_and_whole_views_give_the_same_answers(ws: Workspace, basic: Campaign) -> None:
    whole = ws.query("SELECT * FROM t ORDER BY row_id").select(["first", "greet"])
    assert ws.query("SELECT first, greet FROM t ORDER BY row_id").equals(whole)
    assert ws.query("EXPLAIN SELECT first FROM t").height >= 1
    with pytest.raises(QueryError) as caught:
        ws.query("SELECT nope FROM t")
    assert 'Referenced column "nope" not found' in str(caught.value)


def test_a_campaign_named_like_a_view_stays_reachable(ws: Workspace, tmp_path: Path) -> None:
    ws.apply("campaign: cells\ncolumns:\n  - {name: x, kind: input}\n")
    ws.campaign("cells").add_rows([{"x": "mine"}])
    assert ws.query("SELECT x FROM campaign.cells").rows() == [("mine",)]
    assert ws.query("SELECT count(*) FROM cells").rows() == [(0,)]  # the view of step cells: it has none


@dataclass
class Refused:
    name: str
    sql: str
    message: str


REFUSED = [
    Refused("read-a-file", "SELECT * FROM read_csv('/etc/passwd')", "cannot read or write files"),
    Refused("read-text", "SELECT content FROM read_text('/etc/passwd')", "cannot read or write files"),
    Refused("glob", "SELECT * FROM glob('/etc/*')", "cannot read or write files"),
    Refused("file-scan", "SELECT * FROM '/etc/passwd'", "Table with name /etc/passwd does not exist"),
    Refused("copy-to", "COPY (SELECT * FROM t) TO '/tmp/stolen.csv'", "a COPY statement is not allowed"),
    Refused("attach", "ATTACH '/tmp/other.duckdb' AS other", "an ATTACH statement is not allowed"),
    Refused("install", "INSTALL httpfs", "a LOAD statement is not allowed"),
    Refused("load", "LOAD httpfs", "a LOAD statement is not allowed"),
    Refused("set", "SET threads = 1", "a SET statement is not allowed"),
    Refused("set-access", "SET enable_external_access = true", "a SET statement is not allowed"),
    Refused("reset", "RESET lock_configuration", "statement is not allowed"),
    Refused("pragma", "PRAGMA enable_profiling", "a PRAGMA statement is not allowed"),
    Refused("call", "CALL pragma_version()", "a CALL statement is not allowed"),
    Refused("insert", "INSERT INTO ws.c1_rows VALUES (99, now())", "an INSERT statement is not allowed"),
    Refused("update", "UPDATE ws.c1_2 SET value = 'x'", "an UPDATE statement is not allowed"),
    Refused("delete", "DELETE FROM ws.runs", "a DELETE statement is not allowed"),
    Refused("drop", "DROP TABLE cells", "a DROP statement is not allowed"),
    Refused("create", "CREATE TABLE ws.evil AS SELECT 1", "a CREATE statement is not allowed"),
    Refused("detach", "DETACH ws", "a DETACH statement is not allowed"),
    Refused("export-database", "EXPORT DATABASE '/tmp/dump'", "an EXPORT statement is not allowed"),
    Refused("two-statements", "SELECT 1; DROP TABLE cells", "holds 2 statements; one is allowed"),
    Refused("smuggled-write", "SELECT * FROM query('INSERT INTO ws.runs (run_id) VALUES (1)')", "call query()"),
    Refused("syntax", "SELEC 1", "not valid SQL"),
    Refused("unknown-table", "SELECT * FROM nowhere", "nowhere"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace for the whole battery: every case checks that it left it unchanged."""
    ws = Workspace.init(tmp_path_factory.mktemp("sandbox") / "ws")
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    return ws


@pytest.mark.parametrize("case", REFUSED, ids=[r.name for r in REFUSED])
def test_the_sandbox_refuses_with_a_clear_message(shared: Workspace, case: Refused) -> None:
    before = snapshot(shared)
    with pytest.raises(QueryError) as caught:
        shared.query(case.sql)
    assert case.message in str(caught.value) and caught.value.hint and "\n" not in str(caught.value)
    assert snapshot(shared) == before
    name = f"Ann {case.name}"
    assert shared.campaign("t").set(1, "first", name).computed("greet") == 1  # the writer is unaffected
    assert shared.campaign("t").cell(1, "greet").value == f"Hi {name} at acme.com"
    assert not Path("/tmp/stolen.csv").exists() and not Path("/tmp/dump").exists()


def test_a_runaway_query_stops_at_its_timeout(ws: Workspace, basic: Campaign) -> None:
    with pytest.raises(QueryError) as caught:
        ws.query("SELECT count(*) FROM range(100000000000) a, range(1000000) b", timeout=0.3)
    assert str(caught.value).startswith("the query ran longer than 0.3s and was stopped")
    assert "--timeout" in caught.value.hint
    assert ws.query("SELECT count(*) FROM t").rows() == [(3,)]


def test_a_query_stops_at_its_memory_limit(ws: Workspace, basic: Campaign) -> None:
    with pytest.raises(QueryError) as caught:
        ws.query("SELECT list(i) FROM range(50000000) t(i)", memory_limit="64MB")
    assert "needed more than its 64MB of memory" in str(caught.value)


def test_a_query_waits_for_a_writer_in_the_same_process_and_vice_versa(ws: Workspace, basic: Campaign) -> None:
    results: list[object] = []
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with ws.db.transaction() as con:
            con.execute("UPDATE c1_rows SET created_at = created_at")
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=hold_the_writer)
    writer.start()
    holding.wait(30)
    reader = threading.Thread(target=lambda: results.append(ws.query("SELECT count(*) FROM t").rows()))
    reader.start()
    reader.join(0.2)
    assert results == []  # still waiting for the file
    release.set()
    writer.join(30)
    reader.join(30)
    assert results == [[(3,)]]

    started, writes = threading.Event(), []

    def slow_query() -> None:
        with open_sandbox(ws.db.path, limits=Limits(timeout=1.0)) as box:
            started.set()  # the sandbox has the file attached from here on
            with pytest.raises(QueryError):
                box.query("SELECT count(*) FROM range(100000000000) a, range(1000000) b")

    query = threading.Thread(target=slow_query)
    query.start()
    started.wait(30)
    writes.append(basic.set(2, "first", "Bo").computed("greet"))  # retries while the sandbox holds the file
    query.join(30)
    assert writes == [1] and basic.cell(2, "greet").value == "Hi Bo at globex.io"
