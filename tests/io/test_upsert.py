"""Re-importing with a key: changed inputs drive the reactivity rules like edits; unchanged rows cost
nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from engine import Campaign, ImportError_, Status, Workspace
from engine.testing import PROBE_LEDGER
from tests.conftest import assert_ran, copy_workspace
from tests.io.conftest import PEOPLE_SPEC, people_csv, write

ROWS = 300


@pytest.fixture(scope="module")
def settled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 300 people and every step computed, the manual opener included."""
    folder = tmp_path_factory.mktemp("upsert")
    ws = Workspace.init(folder / "ws")
    ws.apply(PEOPLE_SPEC)
    people = ws.campaign("people")
    people.import_file(write(folder, "people.csv", people_csv(ROWS)))
    people.run()
    people.run(["opener"])
    assert people.status_counts()["opener"] == {"done": ROWS}
    return folder / "ws"


@pytest.fixture
def settled(settled_template: Path, tmp_path: Path) -> Campaign:
    """A fresh copy of the settled workspace's campaign."""
    copy_workspace(settled_template, tmp_path / "ws")
    PROBE_LEDGER.clear()
    return Workspace(tmp_path / "ws").campaign("people")


def events_of(report_events: list, column: str, outcome: str) -> tuple[int, ...] | None:  # type: ignore[type-arg]
    rows: list[int] = []
    for event in report_events:
        if event.column == column and event.outcome == outcome:
            rows += list(event.rows)
    return tuple(sorted(rows)) if rows else None


def test_one_percent_changed_recomputes_exactly_those_rows(settled: Campaign, tmp_path: Path) -> None:
    changed = {5: "Eve", 150: "Max", 299: "Zed"}
    before = settled.cell(6, "opener")
    report = settled.import_file(write(tmp_path, "again.csv", people_csv(ROWS, changed=changed)), key="crm_id")
    assert (report.updated, report.unchanged, len(report.inserted)) == (3, ROWS - 3, 0)
    assert report.edit_run is not None
    run = report.edit_run
    assert_ran(run, did=["greet"], did_not=["domain", "research", "opener"])
    assert events_of(run.events, "greet", "done") == (5, 150, 299)
    assert events_of(run.events, "opener", "stale") == (5, 150, 299)
    assert PROBE_LEDGER.calls == []  # nothing paid ran
    assert settled.cell(5, "greet").value == "Hi Eve"
    stale = settled.cell(5, "opener")
    assert stale.status is Status.STALE and stale.value is not None  # keeps its old value
    assert settled.cell(6, "opener") == before
    assert settled.status_counts()["opener"] == {"done": ROWS - 3, "stale": 3}
    assert settled.status_counts()["greet"] == {"done": ROWS}


def test_a_changed_email_queues_the_paid_step_of_that_row_only(settled: Campaign, tmp_path: Path) -> None:
    text = (
        people_csv(ROWS)
        .replace("c7,p7@firm0.com,", "c7,p7@newco.io,")
        .replace("c8,p8@firm1.com,First8,24", "c8,p8@firm1.com,First8,25")
    )
    report = settled.import_file(write(tmp_path, "moved.csv", text), key="crm_id")
    assert (report.updated, report.unchanged) == (2, ROWS - 2)
    run = report.edit_run
    assert run is not None
    assert events_of(run.events, "domain", "done") == (7,)
    assert events_of(run.events, "research", "queued") == (7,)
    assert events_of(run.events, "opener", "stale") == (7,)
    assert settled.cell(8, "employees").value == 25 and settled.cell(8, "opener").status is Status.DONE
    assert settled.status_counts()["research"] == {"done": ROWS - 1, "queued": 1}
    assert PROBE_LEDGER.calls == []


def test_the_same_file_again_changes_nothing(settled: Campaign, tmp_path: Path) -> None:
    values, counts = settled.values(), settled.status_counts()
    report = settled.import_file(write(tmp_path, "same.csv", people_csv(ROWS)), key="crm_id")
    assert (report.updated, report.unchanged, len(report.inserted), report.edit_run) == (0, ROWS, 0, None)
    assert report.new_rows_run.events == []
    assert settled.values().equals(values) and settled.status_counts() == counts


def test_new_records_are_appended_and_partial_files_touch_only_their_columns(settled: Campaign, tmp_path: Path) -> None:
    text = "crm_id,first\nc2,Bea\nc999,New\nc1000,Newer\n"  # no email or employees column
    report = settled.import_file(write(tmp_path, "partial.csv", text), key="crm_id")
    assert (report.updated, report.unchanged, list(report.inserted)) == (1, 0, [ROWS + 1, ROWS + 2])
    assert settled.cell(2, "first").value == "Bea" and settled.cell(2, "email").value == "p2@firm2.com"
    new = settled.cell(ROWS + 1, "greet")
    assert (new.value, new.status) == ("Hi New", Status.DONE)
    assert settled.cell(ROWS + 1, "research").status is Status.QUEUED
    assert settled.row_count() == ROWS + 2


def test_a_key_several_campaign_rows_hold_is_refused(people: Campaign, tmp_path: Path) -> None:
    people.import_file(write(tmp_path, "twice.csv", "crm_id,first\nc1,Ann\nc1,Ann\nc2,Bob\n"))
    with pytest.raises(ImportError_, match="key 'crm_id' value 'c1' on line 2 is held by 2 rows"):
        people.import_file(write(tmp_path, "fix.csv", "crm_id,first\nc1,Anne\n"), key="crm_id")
    assert [people.cell(r, "greet").value for r in (1, 2, 3)] == ["Hi Ann", "Hi Ann", "Hi Bob"]
    report = people.import_file(write(tmp_path, "fix2.csv", "crm_id,first\nc2,Bobby\n"), key="crm_id")
    assert (report.updated, report.unchanged) == (1, 0)  # a key the campaign holds once still upserts


def test_parquet_upsert_casts_to_the_column_types(settled: Campaign, tmp_path: Path) -> None:
    path = tmp_path / "update.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT 'c3' AS crm_id, 77::INTEGER AS employees UNION ALL SELECT 'c4', 12) "
            f"TO '{path}' (FORMAT parquet)"
        )
    report = settled.import_file(path, key="crm_id")
    assert (report.updated, report.unchanged) == (1, 1)  # c4 already had 12 employees
    assert settled.cell(3, "employees").value == 77


def test_row_id_key_round_trips_an_export(settled: Campaign, tmp_path: Path) -> None:
    exported = settled.export(tmp_path / "out.csv", columns=["first"])
    lines = exported.path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["row_id,first", "1,First1"]
    lines[1] = "1,Edited"
    report = settled.import_file(write(tmp_path, "edited.csv", "\n".join(lines) + "\n"), key="row_id")
    assert (report.updated, report.unchanged, len(report.inserted)) == (1, ROWS - 1, 0)
    assert settled.cell(1, "greet").value == "Hi Edited"
    with pytest.raises(ImportError_) as caught:
        settled.import_file(write(tmp_path, "ghost.csv", "row_id,first\n999,Ghost\n"), key="row_id")
    assert "campaign 'people' has no row 999 (on line 2)" in str(caught.value)
    assert settled.row_count() == ROWS
