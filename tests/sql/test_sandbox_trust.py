"""What a viewer can reach through `runsheet query`: only the documented views. Every internal table of the
workspace file (users, API tokens, the credit ledger, the outbox, the memo, each column's own table ...) is tried
by name and by every way around we know of, and each try is refused in one line that never names the alias the
file is attached under. Tokens are stored as their SHA-256 only."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine import ExportError, QueryError, Workspace
from engine.api import create_app
from engine.auth import create_token, set_user, user_for_token
from engine.cli import app
from engine.sql.sandbox import open_sandbox
from engine.store.schema import METADATA_DDL
from tests.conftest import BASIC_ROWS, BASIC_SPEC

ALIAS = re.compile(r"ws_[0-9a-f]{32}")
DOCUMENTED = {
    "campaigns": ["name", "description", "created_at", "updated_at"],
    "runs": ["campaign", "run_id", "campaign_id", "actor", "trigger"],  # then the rest of the run log
    "activity": ["campaign", "run_id", "campaign_id", "column_name", "row_id"],
    "actions": ["action_id", "name", "kind", "options", "category", "description"],
    "action_results": ["action", "campaign", "result_id", "action_id", "campaign_id", "row_id"],
    "documents": ["action", "campaign", "document_id", "action_id", "campaign_id", "row_id"],
}


def metadata_tables() -> list[str]:
    return [m.group(1) for s in METADATA_DDL if (m := re.search(r"TABLE IF NOT EXISTS (\w+)", s))]


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, str]]:
    """A workspace with an admin and a viewer holding API tokens, a campaign that has run, and credits."""
    path = tmp_path_factory.mktemp("trust") / "ws"
    Workspace.init(path)
    ws = Workspace(path, actor="ada")
    ws.apply(BASIC_SPEC, actor="ada")
    campaign = ws.campaign("t", actor="ada")
    campaign.add_rows(BASIC_ROWS)
    campaign.run(["research"])
    ws.add_credits(100)
    set_user(ws.db, "ada", "ada", "admin")
    set_user(ws.db, "ada", "vic", "viewer")
    tokens = {"ada": create_token(ws.db, "ada", "ada"), "vic": create_token(ws.db, "ada", "vic")}
    return Workspace(path, actor="vic"), tokens


def internal_tables(ws: Workspace) -> list[str]:
    """Every table in the workspace file: the metadata tables of schema.py and each campaign's own tables."""
    with ws.db.transaction(commit=False) as con:
        found = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
    assert set(metadata_tables()) <= set(found) and any(name.startswith("c1_") for name in found)
    return found


def refused(ws: Workspace, sql: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        ws.query(sql)
    text = f"{caught.value} {caught.value.hint}"
    assert "\n" not in text and not ALIAS.search(text), text
    return caught.value


def test_every_internal_table_is_out_of_reach_by_any_name(trusted: tuple[Workspace, dict[str, str]]) -> None:
    ws, _ = trusted
    assert ws.role() == "viewer"
    for table in internal_tables(ws):
        spellings = [f"ws.{table}", f"ws.main.{table}", f"memory.main.{table}", f"campaign.{table}"]
        if table not in DOCUMENTED:
            spellings += [table, f'"{table}"', f"main.{table}", f"{table.upper()}"]
        for name in spellings:
            error = refused(ws, f"SELECT * FROM {name}")
            assert "does not exist" in str(error) and "cells" in (error.hint or ""), (name, error)
            refused(ws, f"SELECT count(*) FROM t WHERE row_id IN (SELECT 1 FROM {name})")
            refused(ws, f"WITH x AS (SELECT * FROM {name}) SELECT * FROM x")
            refused(ws, f"DESCRIBE {name}")
        for function in ("query_table", "pragma_table_info", "pragma_storage_info"):
            refused(ws, f"SELECT * FROM {function}('{table}')")
        refused(ws, f"SELECT * FROM query('SELECT * FROM {table}')")


def test_the_documented_views_show_only_their_columns(trusted: tuple[Workspace, dict[str, str]]) -> None:
    ws, _ = trusted
    for view, first in DOCUMENTED.items():
        columns = ws.query(f"SELECT * FROM {view} LIMIT 0").columns
        assert columns[: len(first)] == first, (view, columns)
    assert "spec" not in ws.query("SELECT * FROM campaigns").columns
    assert ws.query("SELECT count(*) FROM cells WHERE \"column\" = 'research' AND status = 'done'").item() == 3


def test_the_alias_the_file_is_attached_under_cannot_be_named(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BASIC_SPEC)
    with open_sandbox(ws.db.path) as box:
        assert ALIAS.fullmatch(box.db)
        for sql in (
            f'SELECT * FROM "{box.db}".main.api_tokens',
            f"SELECT * FROM {box.db}.api_tokens",
            f"SELECT * FROM {box.db}.c1_rows",
            f"SELECT * FROM {box.db}.runs",
            f"FROM {box.db}.users",
        ):
            with pytest.raises(QueryError) as caught:
                box.query(sql)
            assert "does not exist" in str(caught.value)


WAYS_AROUND = [
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.columns",
    "SELECT * FROM information_schema.schemata",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_tables",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_columns()",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM pg_catalog.pg_tables",
    "SELECT * FROM sqlite_master",
    "SHOW TABLES",
    "SHOW ALL TABLES",
    "SHOW DATABASES",
    "SELECT * FROM (SHOW ALL TABLES)",
    "SUMMARIZE ws.api_tokens",
    "SELECT * FROM read_parquet('runsheet.duckdb')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_blob('runsheet.duckdb')",
    "SELECT * FROM 'runsheet.duckdb'",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT * FROM ws.api_tokens'))",
    "ATTACH 'runsheet.duckdb' AS mine",
    "USE ws",
    "SET search_path = 'ws.main'",
    # a CTE named like a catalog view does not hide one read inside it, nor one outside its scope
    "WITH duckdb_tables AS (SELECT * FROM duckdb_tables) SELECT * FROM duckdb_tables",
    "SELECT * FROM (WITH users AS (SELECT 1) SELECT * FROM users), users",
    "SELECT * FROM t AT (VERSION => (SELECT count(*) FROM ws.api_tokens))",
    "SELECT * FROM range((SELECT count(*) FROM ws.users))",
    "SELECT (SELECT max(token_hash) FROM ws.api_tokens)",
]


@pytest.mark.parametrize("sql", WAYS_AROUND)
def test_every_way_around_the_views_is_refused(trusted: tuple[Workspace, dict[str, str]], sql: str) -> None:
    ws, _ = trusted
    refused(ws, sql)


ALLOWED = [
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT count(*) FROM r", 3),
    ("WITH a AS (SELECT * FROM t), b AS (SELECT * FROM a) SELECT count(*) FROM b", 3),
    ("WITH cells AS (SELECT 1 AS x) SELECT count(*) FROM cells", 1),
    ("SELECT count(*) FROM (SELECT first FROM t) PIVOT (count(*) FOR first IN ('Ann'))", 1),
    ("SELECT count(*) FROM range(7), unnest([1, 2]) u(x)", 14),
    ("SELECT employees FROM t ORDER BY employees DESC NULLS LAST, first ASC LIMIT 1", 900),
    ("SELECT count(*) FROM (VALUES (1), (2)) v(x) WHERE x IN (SELECT row_id FROM t)", 2),
    ("SELECT count(*) FROM campaign.t JOIN cells USING (row_id) WHERE \"column\" = 'research'", 3),
    ("SELECT count(*) FROM MAIN.CELLS", 15),
    ("SELECT count(*) FROM (DESCRIBE t)", 9),
    ("SELECT count(*) FROM (SUMMARIZE SELECT employees FROM t)", 1),
]


@pytest.mark.parametrize(("sql", "expected"), ALLOWED)
def test_ordinary_sql_over_the_views_still_works(
    trusted: tuple[Workspace, dict[str, str]], sql: str, expected: int
) -> None:
    ws, _ = trusted
    assert ws.query(sql).item() == expected
    assert ws.query("EXPLAIN " + sql).height >= 1


def test_a_campaign_named_like_an_internal_table_shows_its_own_rows(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply("campaign: api_tokens\ncolumns:\n  - {name: x, kind: input}\n")
    ws.campaign("api_tokens").add_rows([{"x": "mine"}])
    set_user(ws.db, "api", "api", "admin")
    create_token(ws.db, "api", "api")
    assert ws.query("SELECT x FROM api_tokens").rows() == [("mine",)]
    assert ws.query("SELECT x FROM campaign.api_tokens").rows() == [("mine",)]


def test_a_viewer_cannot_read_a_token_through_the_cli_or_act_as_admin(
    trusted: tuple[Workspace, dict[str, str]],
) -> None:
    ws, tokens = trusted
    env = {"RUNSHEET_WORKSPACE": str(ws.path), "RUNSHEET_USER": "vic", "USER": "vic"}
    result = CliRunner().invoke(app, ["query", "SELECT * FROM ws.api_tokens", "--format", "csv"], env=env)
    assert result.exit_code == 1 and "does not exist" in result.output
    assert tokens["ada"] not in result.output and _digest(tokens["ada"]) not in result.output
    with TestClient(create_app(ws.path)) as client:
        viewer = {"Authorization": f"Bearer {tokens['vic']}"}
        assert client.get("/campaigns", headers=viewer).status_code == 200
        assert client.post("/campaigns/t/pause", headers=viewer).status_code == 403
        stolen = {"Authorization": f"Bearer {_digest(tokens['ada'])}"}
        assert client.get("/campaigns", headers=stolen).status_code == 401


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_unknown_tokens_cannot_grow_the_servers_memory(trusted: tuple[Workspace, dict[str, str]]) -> None:
    from engine.api.app import TOKENS_REMEMBERED

    ws, tokens = trusted
    app = create_app(ws.path)
    with TestClient(app) as client:
        state = app.state.runsheet
        for i in range(TOKENS_REMEMBERED + 50):
            assert state.user_for(f"rs_guess{i}") is None
        assert len(state._tokens) <= TOKENS_REMEMBERED
        assert tokens["vic"] not in repr(state._tokens)
        assert client.get("/campaigns", headers={"Authorization": f"Bearer {tokens['vic']}"}).status_code == 200
        assert tokens["vic"] not in repr(state._tokens) and _digest(tokens["vic"]) in state._tokens


def test_tokens_are_stored_as_their_sha256_only(trusted: tuple[Workspace, dict[str, str]]) -> None:
    ws, tokens = trusted
    with ws.db.transaction(commit=False) as con:
        stored = {r[0]: r[1] for r in con.execute("SELECT user_name, token_hash FROM api_tokens").fetchall()}
        con.execute("CHECKPOINT")
    assert stored == {user: _digest(token) for user, token in tokens.items()}
    for user, token in tokens.items():
        assert user_for_token(ws.db, token) == user
        assert user_for_token(ws.db, stored[user]) is None and user_for_token(ws.db, "rs_" + stored[user]) is None
    for path in ws.path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(token.encode() in data for token in tokens.values()), path


NESTED = [
    "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "SELECT " + "NOT " * 5000 + "true",
    "SELECT * FROM " + "(SELECT * FROM " * 3000 + "t" + ") x" * 3000,
    "SELECT " + "[" * 5000 + "1" + "]" * 5000,
    "SELECT " + "coalesce(" * 3000 + "1" + ")" * 3000,
]


@pytest.mark.parametrize("sql", NESTED, ids=["parentheses", "not", "subqueries", "lists", "calls"])
def test_a_deeply_nested_query_is_refused_in_one_line(
    trusted: tuple[Workspace, dict[str, str]], sql: str, tmp_path: Path
) -> None:
    ws, _ = trusted
    error = refused(ws, sql)
    assert "nested" in str(error) or "depth" in str(error), error
    with pytest.raises(QueryError) as caught:
        ws.query_to_file(sql, tmp_path / "out.csv")
    assert "nested" in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_a_deeply_nested_export_filter_is_refused_in_one_line(
    trusted: tuple[Workspace, dict[str, str]], tmp_path: Path
) -> None:
    ws, _ = trusted
    with pytest.raises((QueryError, ExportError)) as caught:
        ws.campaign("t").export(tmp_path / "o.csv", where="(" * 5000 + "true" + ")" * 5000)
    assert "nested" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(QueryError) as caught:
        ws.campaign("t").export(tmp_path / "o.csv", where="row_id IN (SELECT 1 FROM ws.api_tokens)")
    assert "does not exist" in str(caught.value)
