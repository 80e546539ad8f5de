from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from engine import RunReport, Workspace
from engine.testing import PROBE_LEDGER

BASIC_SPEC = """
campaign: t
columns:
  - {name: email, kind: input}
  - {name: first, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: greet, kind: formula, expression: "'Hi ' || first || ' at ' || domain"}
  - {name: research, kind: probe, inputs: [domain]}
  - {name: opener, kind: probe, inputs: [greet, research], run: manual}
  - {name: opener_length, kind: formula, expression: "length(opener)"}
"""

BASIC_ROWS = [
    {"email": "ann@acme.com", "first": "Ann", "employees": 40},
    {"email": "bob@globex.io", "first": "Bob", "employees": 900},
    {"email": "cy@initech.org", "first": "Cy", "employees": 12},
]


@pytest.fixture(autouse=True)
def _clear_probe_ledger() -> None:
    PROBE_LEDGER.clear()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws")


@pytest.fixture
def basic(ws: Workspace):  # type: ignore[no-untyped-def]
    ws.apply(BASIC_SPEC)
    campaign = ws.campaign("t")
    campaign.add_rows(BASIC_ROWS)
    return campaign


def assert_ran(report: RunReport, did: Iterable[str] = (), did_not: Iterable[str] = ()) -> None:
    """Assert which columns computed at least one cell in a run, and which computed none."""
    for column in did:
        assert report.computed(column) > 0, f"{column} did not run: {report.counts()}"
    for column in did_not:
        assert report.computed(column) == 0, f"{column} ran: {report.counts()}"


def snapshot(ws: Workspace) -> dict[str, Any]:
    """Every table of the workspace, sorted, for before/after comparisons (read in a transaction rolled back)."""
    with ws.db.transaction(commit=False) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {name: sorted(map(repr, con.execute(f'SELECT * FROM "{name}"').fetchall())) for name in names}


def copy_workspace(template: Path, destination: Path) -> Path:
    """A byte-for-byte copy of the workspace folder `template`. This process first gives the template's file up: an
    idle hold folds the write-ahead log into the file after a few seconds, which would delete the log mid-copy."""
    Workspace(template).release()
    shutil.copytree(template, destination)
    return destination
