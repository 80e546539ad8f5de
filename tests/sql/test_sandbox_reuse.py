"""The query sandbox is one locked-down instance kept for a process's queries: it must still see every write made
since its last query, here or in another process, and a statement filtering a column (read through views joined
on row_id) must give exactly what the positional views give."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from engine import Workspace
from engine.errors import QueryError
from engine.sql.sandbox import open_sandbox
from engine.sql.views import LOOKUP_ALIGNED_MAX, LOOKUP_MAX_COLUMNS
from tests.conftest import BASIC_SPEC


def view_sql(box: object, name: str) -> str:
    con = box.con  # type: ignore[attr-defined]
    [(sql,)] = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? AND schema_name = 'campaign'", [name]
    ).fetchall()
    return str(sql)


def test_one_instance_serves_the_queries_of_a_process(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    path = ws.db.path
    with open_sandbox(path) as first:
        kept = first.con
        first.query("SELECT count(*) FROM t")
    with open_sandbox(path, query="SELECT email FROM t") as second:
        assert second.con is kept
        assert second.query("SELECT email FROM t").num_rows == 3
        # Locked down, whatever the statement check lets through.
        with pytest.raises(QueryError, match="cannot change settings"):
            second.run("SET enable_external_access = true")
        with pytest.raises(QueryError, match="cannot read or write files"):
            second.run("SELECT * FROM read_csv('/etc/passwd')")
    # Between queries it holds neither the file nor the views: the writer opens the file at once.
    assert basic.set(1, "first", "Annie").computed("greet") == 1


def test_a_kept_instance_sees_this_processs_writes(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    assert ws.query("SELECT first FROM t WHERE row_id = 2").item() == "Bob"
    basic.set(2, "first", "Bo")
    assert ws.query("SELECT first FROM t WHERE row_id = 2").item() == "Bo"
    assert ws.query("SELECT greet FROM t WHERE first = 'Bo'").item() == "Hi Bo at globex.io"
    basic.run(["research"])
    research = "SELECT row_id, research FROM t ORDER BY row_id"
    assert ws.query(research)["research"].null_count() == 0  # its table lines up with the rows
    basic.add_rows([{"email": f"{n}@umbrella.com", "first": n, "employees": 7} for n in ("di", "ed")])
    assert ws.query("SELECT count(*) FROM t").item() == 5
    assert ws.query("SELECT domain FROM t WHERE email = 'di@umbrella.com'").item() == "umbrella.com"
    # A table whose cell was deleted and appended again no longer lines up with the rows by position: read it
    # as if it did, row 2 would show row 3's value.
    with ws.db.transaction() as con:
        [(table,)] = con.execute("SELECT table_name FROM columns WHERE name = 'research'").fetchall()
        con.execute(f"CREATE TEMP TABLE moved AS SELECT * FROM {table} WHERE row_id = 2")
        con.execute(f"DELETE FROM {table} WHERE row_id = 2")
        con.execute(f"INSERT INTO {table} SELECT * FROM moved")
    assert ws.query(research)["research"].to_list()[:3] == ["probe(acme.com)", "probe(globex.io)", "probe(initech.org)"]


def test_a_kept_instance_sees_another_processs_writes(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    assert ws.query("SELECT count(*) FROM t").item() == 3
    assert ws.query("SELECT first FROM t WHERE email = 'bob@globex.io'").item() == "Bob"
    script = textwrap.dedent(
        f"""
        from engine import Workspace
        campaign = Workspace({str(ws.path)!r}, busy_timeout=10).campaign("t")
        campaign.set(2, "first", "Robert")
        campaign.add_rows([{{"email": "eve@hooli.com", "first": "Eve", "employees": 5}}])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ws.query("SELECT first FROM t WHERE email = 'bob@globex.io'").item() == "Robert"
    assert ws.query("SELECT count(*) FROM t").item() == 4
    assert ws.query("SELECT greet FROM t WHERE row_id = 4").item() == "Hi Eve at hooli.com"


def test_a_process_that_queried_and_exported_exits_without_noise(ws: Workspace, basic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The deadline thread ends at exit: left waiting, it kept DuckDB's objects alive through the interpreter's
    teardown and the duckdb module printed a page of "leaked instance" lines after every `runsheet query`."""
    script = textwrap.dedent(
        f"""
        from engine import Workspace
        ws = Workspace({str(ws.path)!r}, busy_timeout=10)
        print(ws.query("SELECT count(*) FROM t").item())
        ws.campaign("t").export({str(tmp_path / "out.csv")!r})
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]
    assert done.stderr == ""


# Each statement twice: as written (its WHERE compares a column with constants: views joined on row_id) and with
# the constants behind a subquery, which keeps the positional views; both must give the same rows (in the same
# order where the statement orders them; the views joined on row_id come out in row order).
LOOKUPS = [
    "SELECT * FROM t WHERE email = 'bob@globex.io'",
    "SELECT * FROM t WHERE row_id = 2",
    "SELECT email, greet FROM t WHERE first IN ('Ann', 'Cy')",
    "SELECT * FROM t WHERE domain IN ('acme.com', 'initech.org', 'nowhere.net')",
    "SELECT row_id, research, opener FROM t WHERE employees = 900",
    "SELECT count(*), sum(employees) FROM t WHERE first = 'Ann'",
    "SELECT t.email, c.\"column\", c.status, c.value FROM t JOIN cells c USING (row_id) WHERE t.first = 'Bob' "
    'ORDER BY c."column"',
    "SELECT t.first, c.status FROM t LEFT JOIN cells c ON c.row_id = t.row_id AND c.\"column\" = 'opener' "
    "WHERE t.employees IN (40, 12)",
    "SELECT a.column_name, count(*) AS n FROM activity a JOIN t ON t.row_id = a.row_id WHERE t.email = "
    "'ann@acme.com' GROUP BY ALL ORDER BY ALL",
    "SELECT r.campaign, r.trigger, t.first FROM runs r, t WHERE t.first = 'Cy' ORDER BY r.run_id",
    "SELECT * FROM campaign.t WHERE research = 'no such value'",
]


@pytest.mark.parametrize("sql", LOOKUPS)
def test_a_lookup_gives_what_the_positional_views_give(ws: Workspace, basic, sql: str) -> None:  # type: ignore[no-untyped-def]
    basic.run(["research"], rows=[1, 3])  # a step table that does not line up with the rows
    basic.run(["opener"], rows=[3])
    positional = re.sub(r"= ('[^']*'|\d+)", r"= (SELECT \1)", sql)
    positional = re.sub(r"IN \(([^()]*)\)", r"IN (SELECT unnest([\1]))", positional)
    assert positional != sql
    with open_sandbox(ws.db.path, query=sql) as box:
        assert "ORDER BY r.row_id" in view_sql(box, "t")  # joined on row_id
        looked_up = pl.from_arrow(box.query(sql))
    with open_sandbox(ws.db.path, query=positional) as box:
        assert "POSITIONAL JOIN" in view_sql(box, "t")
        lined_up = pl.from_arrow(box.query(positional))
    if "ORDER BY" not in sql:  # the positional views join a table that does not line up on row_id: any order
        assert looked_up.columns[0] != "row_id" or looked_up["row_id"].is_sorted()
        looked_up, lined_up = looked_up.sort(looked_up.columns), lined_up.sort(lined_up.columns)
    assert looked_up.equals(lined_up), (looked_up, lined_up)
    assert looked_up.height >= (0 if "no such" in sql else 1)


def test_a_where_filter_on_a_looked_up_column_pages_rows_in_order(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.add_rows([{"email": f"p{i}@acme.com", "first": "Ann", "employees": i} for i in range(5)])
    page = basic.page(limit=3, where="first = 'Ann'")
    assert (page.total_rows, page.row_ids) == (6, [1, 4, 5])
    page = basic.page(offset=2, limit=10, where="first IN ('Ann', 'Cy')")
    assert (page.total_rows, page.row_ids) == (7, [4, 5, 6, 7, 8])


def test_a_workspace_replaced_under_the_same_path_is_read_anew(tmp_path: Path) -> None:
    from tests.conftest import BASIC_ROWS, BASIC_SPEC

    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    assert ws.query("SELECT count(*) FROM t").item() == 3
    ws.release()
    import shutil

    shutil.rmtree(tmp_path / "ws")
    again = Workspace.init(tmp_path / "ws")
    again.apply(BASIC_SPEC)
    again.campaign("t").add_rows(BASIC_ROWS[:1])
    assert again.query("SELECT count(*) FROM t").item() == 1
    assert again.query("SELECT first FROM t WHERE email = 'ann@acme.com'").item() == "Ann"


def test_a_lookup_joins_lined_up_tables_inner_up_to_a_width_and_a_narrow_one_starts_at_the_filtered_table(
    tmp_path: Path,
) -> None:
    ws = Workspace.init(tmp_path / "ws")
    names = [f"c{i}" for i in range(LOOKUP_ALIGNED_MAX + 1)]
    ws.apply("campaign: w\ncolumns:\n" + "".join(f"  - {{name: {n}, kind: input}}\n" for n in names))
    ws.campaign("w").add_rows([{n: f"{n}-{r}" for n in names} for r in range(5)])
    some = ", ".join(names[:10])
    ten = f"SELECT row_id, {some} FROM w WHERE c3 = 'c3-2'"
    with open_sandbox(ws.db.path, query=ten) as box:
        sql = view_sql(box, "w")
        # every table lines up with the registry: inner joins on row_id, which DuckDB plans from the rows found
        assert "POSITIONAL JOIN" not in sql and "LEFT JOIN" not in sql and " JOIN " in sql
        assert box.query(ten).to_pylist() == [{"row_id": 3, **{n: f"{n}-2" for n in names[:10]}}]
    wide = "SELECT * FROM w WHERE c3 = 'c3-2'"
    with open_sandbox(ws.db.path, query=wide) as box:
        assert "POSITIONAL JOIN" in view_sql(box, "w")  # past LOOKUP_ALIGNED_MAX columns DuckDB plans it badly
        assert box.query(wide).to_pylist() == [{"row_id": 3, **{n: f"{n}-2" for n in names}}]
    narrow = "SELECT row_id, c1, c7 FROM w WHERE c7 IN ('c7-4', 'c7-0')"
    with open_sandbox(ws.db.path, query=narrow) as box:
        sql = view_sql(box, "w")
        assert "POSITIONAL JOIN" not in sql and "_rows" not in sql  # the registry is not read: c7's table drives
        assert box.query(narrow).to_pylist() == [
            {"row_id": 1, "c1": "c1-0", "c7": "c7-0"},
            {"row_id": 5, "c1": "c1-4", "c7": "c7-4"},
        ]


def test_a_lookup_with_a_table_not_lined_up_joins_left_and_only_while_narrow(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.run(["research"], rows=[1, 3])  # research's table holds rows 1 and 3 only
    sql = "SELECT * FROM t WHERE email = 'bob@globex.io'"
    with open_sandbox(ws.db.path, query=sql) as box:
        view = view_sql(box, "t")
        assert "LEFT JOIN" in view and "POSITIONAL JOIN" not in view
        [row] = box.query(sql).to_pylist()
        assert row["email"] == "bob@globex.io" and row["research"] is None  # row 2 kept, its research empty
    names = [f"x{i}" for i in range(LOOKUP_MAX_COLUMNS)]
    ws.apply(BASIC_SPEC.rstrip() + "\n" + "".join(f"  - {{name: {n}, kind: input}}\n" for n in names))
    with open_sandbox(ws.db.path, query=sql) as box:
        assert "POSITIONAL JOIN" in view_sql(box, "t")  # left joins past LOOKUP_MAX_COLUMNS: positional
        [row] = box.query(sql).to_pylist()
        assert row["email"] == "bob@globex.io" and row["x0"] is None


def test_a_process_keeps_only_the_last_few_instances(tmp_path: Path) -> None:
    from engine.sql import sandbox

    workspaces = []
    for i in range(sandbox.MAX_KEPT + 2):
        ws = Workspace.init(tmp_path / f"ws{i}")
        ws.apply("campaign: t\ncolumns:\n  - {name: x, kind: input}\n")
        ws.campaign("t").add_rows([{"x": str(i)}])
        assert ws.query("SELECT x FROM t").item() == str(i)
        workspaces.append(ws)
    assert len(sandbox._KEPT) <= sandbox.MAX_KEPT
    assert workspaces[0].query("SELECT x FROM t").item() == "0"  # made again


def test_a_statement_seen_before_is_checked_against_the_views_of_now(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    # Its parse is kept, but what it may name is decided at each query: a campaign dropped since is refused.
    sql = "SELECT count(*) AS n FROM t"
    assert ws.query(sql)["n"].to_list() == [3]
    assert ws.query(sql)["n"].to_list() == [3]
    with pytest.raises(QueryError, match="holds 2 statements"):
        ws.query("SELECT 1; SELECT 2")
    with pytest.raises(QueryError, match="holds 2 statements"):  # a refused statement is refused every time
        ws.query("SELECT 1; SELECT 2")
    with pytest.raises(QueryError, match="read-only"):
        ws.query("DELETE FROM t")
    with pytest.raises(QueryError, match="read-only"):
        ws.query("DELETE FROM t")
    with pytest.raises(QueryError, match="does not exist"):
        ws.query("SELECT count(*) AS n FROM nowhere")


def test_a_kept_parse_is_the_same_statement_and_the_keep_is_bounded() -> None:
    import duckdb

    from engine.sql import statement

    with duckdb.connect() as con:
        first = statement.parse_read(con, "SELECT 1 AS one")
        assert statement.parse_read(con, "SELECT 1 AS one") is first
        assert statement.parse_read(con, "SELECT 1 AS one", what="where filter") is not first
        for i in range(statement.PARSED_KEPT + 5):
            statement.parse_read(con, f"SELECT {i} AS n")
        assert len(statement._PARSED) == statement.PARSED_KEPT
        assert statement.parse_read(con, "SELECT 1 AS one") is not first  # pushed out, parsed again
        long = "SELECT 1 AS one WHERE 1 IN (" + ", ".join(["1"] * 8000) + ")"
        assert len(long) > statement.KEPT_MAX_CHARS
        assert statement.parse_read(con, long) is not statement.parse_read(con, long)  # too long to keep


def test_every_query_keeps_its_own_time_limit(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    # One watchdog serves every query: a quick query between two slow ones neither stops them nor is stopped.
    slow = "SELECT count(*) FROM range(100000000000) a, range(1000000) b"
    for _ in range(2):
        with pytest.raises(QueryError, match=r"ran longer than 0.3s"):
            ws.query(slow, timeout=0.3)
        assert ws.query("SELECT count(*) AS n FROM t", timeout=0.3)["n"].to_list() == [3]
    assert ws.query("SELECT count(*) AS n FROM t", timeout=5)["n"].to_list() == [3]
