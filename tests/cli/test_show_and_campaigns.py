"""`runsheet show --rows --where` (rows by id ranges, and a filter through the SQL sandbox) and `runsheet campaigns`
with row counts and paused state (issue 15)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from engine import Workspace
from tests.cli.test_cli import cli, grid, ok, ok_json
from tests.conftest import BASIC_SPEC, snapshot

PEOPLE = [
    {"email": f"p{i}@c{i % 3}.com", "first": f"P{i}", "employees": employees}
    for i, employees in enumerate([40, 900, 12, 300, 5, 2000, 150, 70], start=1)
]
BIG = [i for i, p in enumerate(PEOPLE, start=1) if p["employees"] > 100]  # rows 2, 4, 6, 7


@pytest.fixture
def people(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(PEOPLE)
    ws.release()
    return tmp_path / "ws"


def shown(workspace: Path, *args: str) -> tuple[int, list[int]]:
    """`show --json ARGS`: total_rows and the row ids of the page."""
    found = ok_json(workspace, "show", *args)
    return found["total_rows"], [row["row_id"] for row in found["rows"]]


def test_show_rows_picks_rows_by_id_ranges(people: Path) -> None:
    assert shown(people, "--rows", "1-3,7") == (4, [1, 2, 3, 7])
    assert shown(people, "--rows", "7,1-3", "--limit", "2", "--offset", "1") == (4, [2, 3])
    rows = grid(people, "--rows", "2", "--columns", "email,domain")
    assert rows == {
        2: {"email": {"value": "p2@c2.com", "status": "done"}, "domain": {"value": "c2.com", "status": "done"}}
    }
    text = " ".join(click.unstyle(ok(people, "show", "--rows", "1-3,7", "--columns", "first").stdout).split())
    assert "t: rows 1-4 of 4 picked" in text and "P7" in text and "P4" not in text


def test_show_where_filters_through_the_sandbox_and_pages_the_matching_rows(people: Path) -> None:
    assert shown(people, "--where", "employees > 100") == (4, BIG)
    assert shown(people, "--where", "employees > 100", "--limit", "2", "--offset", "2") == (4, BIG[2:])
    assert shown(people, "--where", "domain = 'c1.com' AND first <> 'P4'") == (2, [1, 7])  # a step's value
    queued = "row_id IN (SELECT row_id FROM cells WHERE \"column\" = 'research' AND status = 'queued')"
    assert shown(people, "--where", queued) == (8, list(range(1, 9)))  # the cells view is in reach
    assert shown(people, "--where", "employees > 100000") == (0, [])
    text = " ".join(click.unstyle(ok(people, "show", "--where", "employees > 100000").stdout).split())
    assert "t: no rows of 0 picked" in text


def test_show_rows_and_where_together_give_the_named_rows_the_condition_holds_for(people: Path) -> None:
    assert shown(people, "--rows", "1-3,7", "--where", "employees > 100") == (2, [2, 7])
    assert shown(people, "--rows", "1-3,7", "--where", "employees > 100", "--offset", "1") == (2, [7])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "employees >"], "error: the where filter is not valid SQL"),
        (["--where", "salary > 10"], "error: the where filter: "),
        (
            ["--where", "1=1) UNION SELECT 99 FROM range(1) WHERE (1=1"],
            "error: the where filter is more than a condition",
        ),
        (["--where", "true; DELETE FROM t"], "error: the where filter is not valid SQL"),
        (["--where", "row_id IN (SELECT 1 FROM duckdb_tables())"], "error: queries cannot read or write files"),
        (["--where", "  "], "error: --where is empty (give a condition"),
        (["--rows", "1-x"], "error: --rows '1-x' is not a list of row ids (write e.g. --rows 1,2,10-12)"),
        (["--rows", "2,40"], "error: campaign 't' has no row 40 (see the row ids with `runsheet show`)"),
        (["--rows", "2,40", "--where", "true"], "error: campaign 't' has no row 40"),
        (["--limit", "-1"], "error: --offset and --limit cannot be negative (give 0 or more)"),
    ],
)
def test_a_bad_selection_is_one_line_naming_the_fix_and_changes_nothing(
    people: Path, args: list[str], message: str
) -> None:
    before = snapshot(Workspace(people))
    result = cli(people, "show", *args)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert lines[0].endswith(")")  # the fix, in parentheses
    assert snapshot(Workspace(people)) == before


def test_an_unknown_column_in_where_names_the_columns_there_are(people: Path) -> None:
    result = cli(people, "show", "--where", "salary > 10")
    assert result.exit_code == 1
    assert "name columns of 't': row_id, email, first, employees, domain" in result.stderr


def test_campaigns_lists_rows_and_what_is_paused(people: Path, tmp_path: Path) -> None:
    assert ok_json(people, "campaigns") == [{"name": "t", "rows": 8, "paused": False, "paused_steps": []}]
    other = tmp_path / "u.yaml"
    other.write_text(
        "campaign: u\ncolumns:\n  - {name: word, kind: input}\n"
        "  - {name: look, kind: probe, inputs: [word], credits: 1}\n",
        encoding="utf-8",
    )
    ok(people, "apply", str(other))  # a new paid step starts paused
    ok(people, "pause", "-c", "t")
    assert ok_json(people, "campaigns") == [
        {"name": "t", "rows": 8, "paused": True, "paused_steps": []},
        {"name": "u", "rows": 0, "paused": False, "paused_steps": ["look"]},
    ]
    lines = [" ".join(line.split()) for line in click.unstyle(ok(people, "campaigns").stdout).splitlines()]
    assert "│ t │ 8 │ campaign │" in lines and "│ u │ 0 │ steps: look │" in lines
    ok(people, "resume", "-c", "t", "--no-run")
    assert ok_json(people, "campaigns")[0] == {"name": "t", "rows": 8, "paused": False, "paused_steps": []}


def test_campaigns_in_an_empty_workspace_says_how_to_start(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").release()
    assert ok_json(tmp_path / "ws", "campaigns") == []
    assert ok(tmp_path / "ws", "campaigns").stdout == "no campaign yet: apply a spec with `runsheet apply SPEC`\n"
