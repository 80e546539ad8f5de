"""`Campaign.page(where=...)`: the rows a user's SQL condition picks, counted and paged in row order, the
condition checked in the sandbox like a query and refused when it is more than a condition."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import EditError, QueryError, Workspace

SPEC = """
campaign: people
columns:
  - {name: email, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
"""


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(SPEC)
    ws.campaign("people").add_rows([{"email": f"p{i}@c{i % 3}.com", "employees": i} for i in range(20)])
    return ws


def test_a_condition_picks_counts_and_pages_rows(workspace: Workspace) -> None:
    people = workspace.campaign("people")
    page = people.page(2, 3, where="domain = 'c1.com' AND employees > 1")
    assert (page.total_rows, page.offset, page.row_ids) == (6, 2, [11, 14, 17])
    assert [row["employees"].value for row in page.rows] == [10, 13, 16]
    assert people.page(where="employees > 100").row_ids == []
    from_cells = people.page(where="""row_id IN (SELECT row_id FROM cells WHERE "column" = 'domain' AND row_id < 3)""")
    assert from_cells.row_ids == [1, 2]


@pytest.mark.parametrize(
    ("where", "refused"),
    [
        ("", "empty"),
        ("true) UNION ALL (SELECT 99", "more than a condition"),
        ("true) LIMIT (1", "more than a condition"),
        ("true) GROUP BY (row_id", "more than a condition"),
        ("nope > 1", "nope"),
        ("true; DELETE FROM people", "not valid SQL"),
    ],
)
def test_a_bad_condition_is_refused_with_the_fix(workspace: Workspace, where: str, refused: str) -> None:
    with pytest.raises(QueryError) as caught:
        workspace.campaign("people").page(where=where)
    assert refused in caught.value.message and caught.value.hint
    assert workspace.campaign("people").row_count() == 20


def test_rows_and_a_condition_are_not_given_together(workspace: Workspace) -> None:
    with pytest.raises(EditError, match="not both"):
        workspace.campaign("people").page(rows=[1], where="true")
