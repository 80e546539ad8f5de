"""`runsheet import`, `export` and `query` through the command line (typer's CliRunner, in this process)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import polars as pl
import pytest

from tests.cli.test_cli import cli, ok, ok_json
from tests.conftest import BASIC_SPEC

CSV = "email,first,employees\nann@acme.com,Ann,40\nbob@globex.io,Bob,900\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASIC_SPEC, encoding="utf-8")
    ok(folder, "init", str(folder))
    ok(folder, "apply", str(spec))
    ok(folder, "import", str(_file(tmp_path, "first.csv", CSV)))
    return folder


def _file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_with_key_and_rejects_reports_each_count(workspace: Path, tmp_path: Path) -> None:
    text = (
        "email,first,employees,Phone\nann@acme.com,Anna,40,1\nbob@globex.io,Bob,900,2\ncy@x.org,Cy,3,3\n,Nobody,1,4\n"
    )
    rejects = tmp_path / "bad.csv"
    shown = ok(
        workspace,
        "import",
        str(_file(tmp_path, "again.csv", text)),
        "--key",
        "email",
        "--rejects",
        str(rejects),
    ).stdout
    lines = shown.splitlines()
    assert lines[:4] == [
        "imported 1 rows (rows 3-3)",
        "updated 2 rows; 0 unchanged",
        f"rejected 1 rows: see {rejects}",
        "added input columns: phone (BIGINT); "
        "add them to the campaign's spec file too (an apply without them keeps them while they hold values)",
    ]
    assert rejects.read_text(encoding="utf-8").splitlines()[1].startswith("5,key column 'email' is empty on line 5")
    again = ok_json(
        workspace,
        "import",
        str(_file(tmp_path, "third.csv", "email,first\ncy@x.org,Cyd\n")),
        "--key",
        "email",
    )
    assert {k: again[k] for k in ("rows", "updated", "unchanged", "rejected", "added_columns")} == {
        "rows": 0,
        "updated": 1,
        "unchanged": 0,
        "rejected": 0,
        "added_columns": {},
    }
    assert isinstance(again["edit_run_id"], int)


def test_import_errors_are_one_line(workspace: Path, tmp_path: Path) -> None:
    bad = _file(tmp_path, "bad.csv", "email,first,employees\nzed@z.com,Zed,many\n")
    result = cli(workspace, "import", str(bad))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "error: 1 row(s) of bad.csv cannot be imported: "
        "column 'employees' has values that are not BIGINT: 'many' "
        "on line 2 (fix the values, or declare the column with a wider type (--type COLUMN=VARCHAR); or pass "
        "--rejects FILE to import the other rows and write these there)\n"
    )
    result = cli(workspace, "import", str(bad), "--type", "employees")
    assert result.exit_code == 1 and "is not COLUMN=TYPE" in result.stderr


def test_export_writes_the_chosen_rows_and_columns(workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "big.csv"
    shown = ok(workspace, "export", "-o", str(target), "--columns", "first,domain", "--where", "employees > 100")
    assert shown.stdout == f"exported 1 rows to {target}\n"
    assert target.read_text(encoding="utf-8") == "row_id,first,domain\n2,Bob,globex.io\n"
    summary = ok_json(workspace, "export", "-o", str(tmp_path / "all.parquet"), "--with-state")
    assert (summary["rows"], summary["format"]) == (2, "parquet")
    frame = pl.read_parquet(tmp_path / "all.parquet")
    assert frame["research.status"].to_list() == ["queued", "queued"] and frame.columns == summary["columns"]


def test_query_in_every_format(workspace: Path, tmp_path: Path) -> None:
    sql = "SELECT row_id, first, '=1+1' AS trap FROM t ORDER BY row_id"
    table = ok(workspace, "query", sql).stdout
    assert "Ann" in table and "Bob" in table and "2 rows" in table
    assert ok(workspace, "query", sql, "--format", "csv").stdout == "row_id,first,trap\n1,Ann,'=1+1\n2,Bob,'=1+1\n"
    assert ok(workspace, "query", sql, "--format", "csv", "--raw").stdout.endswith("2,Bob,=1+1\n")
    assert json.loads(ok(workspace, "query", sql, "--format", "json").stdout) == [
        {"row_id": 1, "first": "Ann", "trap": "=1+1"},
        {"row_id": 2, "first": "Bob", "trap": "=1+1"},
    ]
    out = tmp_path / "q.parquet"
    assert ok(workspace, "query", sql, "--format", "parquet", "-o", str(out)).stdout == f"wrote 2 rows to {out}\n"
    assert pl.read_parquet(out)["first"].to_list() == ["Ann", "Bob"]
    out_csv = tmp_path / "q.csv"
    ok(workspace, "query", sql, "--format", "csv", "-o", str(out_csv))
    with out_csv.open(encoding="utf-8", newline="") as handle:
        assert [r["trap"] for r in csv.DictReader(handle)] == ["'=1+1", "'=1+1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "DROP TABLE cells"], "error: queries are read-only: a DROP statement is not allowed"),
        (["query", "SELECT 1", "--format", "parquet"], "error: parquet is written to a file"),
        (["query", "SELECT 1", "--format", "xml"], "error: unknown format 'xml'"),
        (
            ["query", "SELECT count(*) FROM range(100000000000) a, range(1000000) b", "--timeout", "0.2"],
            "error: the query ran longer than 0.2s and was stopped",
        ),
        (["export", "--where", "nope = 1"], 'error: Binder Error: Referenced column "nope" not found'),
    ],
)
def test_data_command_errors_are_one_line(workspace: Path, args: list[str], message: str) -> None:
    result = cli(workspace, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_help_lists_the_data_commands(workspace: Path) -> None:
    text = click.unstyle(ok(workspace, "--help").stdout)
    for command in ("import", "export", "query"):
        assert f" {command} " in text


def test_import_lists_every_kind_of_problem_in_one_line(workspace: Path, tmp_path: Path) -> None:
    bad = _file(
        tmp_path,
        "mixed.csv",
        "email,first,employees\nzed@z.com,Zed,many\nyan@y.com,Yan\nxi@x.com,Xi,3,4\n"
        + "".join(f"p{i}@p.com,P,lots\n" for i in range(25)),
    )
    result = cli(workspace, "import", str(bad))
    assert result.exit_code == 1 and result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: 28 row(s) of mixed.csv cannot be imported: ")
    for named in (
        "'many' on line 2",
        "line 3 has 2 fields where the header has 3",
        "line 4 has 4 fields where the header has 3",
        "'lots' on line 5",
    ):
        assert named in result.stderr, named
    assert "(and 8 more)" in result.stderr  # 20 listed
    assert ok_json(workspace, "status")["rows"] == 2  # nothing imported


def test_export_reads_with_duckdb_alone_or_falls_back_to_the_engine(workspace: Path, tmp_path: Path) -> None:
    """`runsheet export` writes through `export_from_workspace` when DuckDB alone can answer, and the file is the
    one `Campaign.export` writes; where only the engine can answer, nothing is written there and the engine's
    path gives its usual errors (no workspace, no such campaign, several campaigns and none named)."""
    from engine import Workspace, export_from_workspace

    direct = export_from_workspace(workspace, None, tmp_path / "direct.csv", format="csv")
    assert direct is not None and direct.rows == 2
    Workspace(workspace).campaign("t").export(tmp_path / "engine.csv")
    assert (tmp_path / "direct.csv").read_bytes() == (tmp_path / "engine.csv").read_bytes()
    assert export_from_workspace(tmp_path / "nowhere", None, tmp_path / "x.csv") is None
    assert export_from_workspace(workspace, "nope", tmp_path / "x.csv") is None
    assert not (tmp_path / "x.csv").exists()
    result = cli(workspace, "export", "-c", "nope", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and result.stderr.startswith("error: no campaign named 'nope'")
    other = _file(tmp_path, "other.yaml", BASIC_SPEC.replace("campaign: t", "campaign: u"))
    ok(workspace, "apply", str(other))
    assert export_from_workspace(workspace, None, tmp_path / "x.csv") is None
    result = cli(workspace, "export", "-o", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and result.stderr.startswith("error: more than one campaign")
    assert ok(workspace, "export", "-c", "u", "-o", str(tmp_path / "u.csv")).stdout.startswith("exported 0 rows")


def test_export_of_a_workspace_an_older_version_made_goes_through_the_engine(workspace: Path, tmp_path: Path) -> None:
    """A workspace without a metadata column this version adds is upgraded by `Workspace` before it is read:
    the direct path leaves it to the engine."""
    import duckdb

    from engine import export_from_workspace

    with duckdb.connect(str(workspace / "runsheet.duckdb")) as con:
        con.execute("ALTER TABLE activity DROP COLUMN old_value")
    assert export_from_workspace(workspace, "t", tmp_path / "x.csv") is None
    assert ok(workspace, "export", "-c", "t", "-o", str(tmp_path / "x.csv")).stdout.startswith("exported 2 rows")
    assert export_from_workspace(workspace, "t", tmp_path / "y.csv") is not None  # upgraded by the engine's path
