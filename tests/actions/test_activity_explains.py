"""Activity that explains (issue 15): edits record their old and new value; run ids count up by one per workspace;
no table has a column named with the SQL keyword `at` (and an old workspace is upgraded, keeping its log);
schedules speak in human durations and log nothing on a tick with nothing to do (`provider_cost`:
tests/runner/test_provider_cost.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from engine import Campaign, Workspace
from engine.schedules import add_schedule, run_due, schedules
from tests.cli.test_cli import ok
from tests.conftest import BASIC_SPEC


def activity_rows(ws: Workspace) -> list[dict[str, object]]:
    return ws.activity(1000)


# ---- edits record the old and the new value ------------------------------------------------------------------


def test_an_input_edit_and_a_pin_record_old_and_new_values(ws: Workspace, basic: Campaign) -> None:
    basic.set(1, "email", "ann@initech.org")
    edit = next(a for a in activity_rows(ws) if a["action"] == "edit")
    assert (edit["action"], edit["column_name"], edit["row_id"]) == ("edit", "email", 1)
    assert (edit["old_value"], edit["new_value"], edit["outcome"]) == ("ann@acme.com", "ann@initech.org", "done")
    old_research = basic.cell(2, "research").value
    basic.set(2, "research", "by hand")
    edit = next(a for a in activity_rows(ws) if a["action"] == "edit" and a["column_name"] == "research")
    assert (edit["old_value"], edit["new_value"]) == (old_research, "by hand")
    basic.set(3, "employees", 12)  # the same value: logged as unchanged
    edit = next(a for a in activity_rows(ws) if a["action"] == "edit" and a["column_name"] == "employees")
    assert (edit["old_value"], edit["new_value"], edit["outcome"]) == ("12", "12", "unchanged")


def test_save_to_record_records_old_and_new_values(ws: Workspace, basic: Campaign) -> None:
    basic.run(["research"])
    research = basic.cell(1, "research").value
    basic.save_to_record(1, "research", "first")
    saved = next(a for a in activity_rows(ws) if a["action"] == "save_to_record")
    assert (saved["column_name"], saved["old_value"], saved["new_value"]) == ("first", "Ann", research)


# ---- run ids -------------------------------------------------------------------------------------------------


def test_run_ids_count_up_by_one_whatever_else_takes_ids(ws: Workspace, basic: Campaign) -> None:
    basic.estimate(["opener"])  # a dry run: rolled back
    ws.apply(BASIC_SPEC + '  - {name: extra, kind: formula, expression: "1"}\n', dry_run=True)
    add_schedule(ws, "t", every="1h")  # schedules, deliveries and campaigns take ids from a shared sequence
    ws.apply(BASIC_SPEC.replace("campaign: t", "campaign: other"))
    basic.run(["opener"])
    basic.set(1, "first", "Annie")
    ids = sorted(int(r["run_id"]) for r in ws.runs(1000))
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) >= 5


# ---- no column named `at`; old workspaces upgraded -------------------------------------------------------------


def columns_named(ws: Workspace, name: str) -> list[str]:
    with ws.db.transaction(commit=False) as con:
        found = con.execute(
            "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'main' AND column_name = ?", [name]
        ).fetchall()
    return sorted(t for (t,) in found)


def test_no_table_has_a_column_named_at(ws: Workspace, basic: Campaign) -> None:
    assert columns_named(ws, "at") == []
    assert columns_named(ws, "logged_at") == ["activity"]
    assert columns_named(ws, "booked_at") == ["credit_ledger"]
    assert ws.credit_ledger(1)[0]["booked_at"] is not None


def make_old(folder: Path) -> None:
    """Turn a workspace into one made before the rename (schema 2): `at` columns, no edit values, no history."""
    Workspace(folder).release()
    con = duckdb.connect(str(folder / "runsheet.duckdb"))
    con.execute('ALTER TABLE activity RENAME COLUMN logged_at TO "at"')
    con.execute("ALTER TABLE activity DROP COLUMN old_value")
    con.execute("ALTER TABLE activity DROP COLUMN new_value")
    con.execute('ALTER TABLE credit_ledger RENAME COLUMN booked_at TO "at"')
    con.execute("DROP TABLE spec_history")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()


def test_an_old_workspace_opens_upgraded_and_keeps_its_log(ws: Workspace, basic: Campaign) -> None:
    basic.run(["opener"])
    log_before = [(a["run_id"], a["column_name"], a["outcome"], a["logged_at"]) for a in activity_rows(ws)]
    balance = ws.credits()
    make_old(ws.path)
    assert len(log_before) > 3

    upgraded = Workspace(ws.path)
    assert columns_named(upgraded, "at") == []
    log_after = [(a["run_id"], a["column_name"], a["outcome"], a["logged_at"]) for a in activity_rows(upgraded)]
    assert log_after == log_before
    assert upgraded.credits() == balance
    with upgraded.db.transaction(commit=False) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [("3",)]
    upgraded.campaign("t").set(1, "first", "Annie")  # edits, runs and spec changes work on it
    assert next(a for a in activity_rows(upgraded) if a["action"] == "edit")["new_value"] == "Annie"
    upgraded.apply(BASIC_SPEC.replace("length(opener)", "length(opener) + 1"), origin="file")
    assert [h["origin"] for h in upgraded.spec_history("t")] == ["file"]
    assert upgraded.query("SELECT count(*) AS n FROM activity")["n"][0] == len(activity_rows(upgraded))


# ---- schedules -----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 6, 0, 0)

    def __call__(self) -> datetime:
        return self.now


def test_schedules_print_human_durations(ws: Workspace, basic: Campaign) -> None:
    made = add_schedule(ws, "t", every="1h", older_than="30d")
    assert (made.when, made.older_than) == ("every 1h", "older than 30d")
    assert made.describe == "every 1h, re-running cells older than 30d"
    assert add_schedule(ws, "t", every="90m").when == "every 90m"
    assert add_schedule(ws, "t", cron="0 6 * * 1").when == "cron 0 6 * * 1"
    added = ok(ws.path, "schedule", "add", "-c", "t", "--every", "2d", "--older-than", "2w").stdout
    assert "every 2d, re-running cells older than 2w; next run at" in added
    listed = ok(ws.path, "schedule", "list").stdout
    assert "every 1h" in listed and "older than 30d" in listed and "every 2d" in listed
    assert "3600" not in listed and "2592000" not in listed


def test_a_tick_with_nothing_to_do_logs_nothing(ws: Workspace, basic: Campaign) -> None:
    clock = Clock()
    made = add_schedule(ws, "t", every="1h", older_than="30d", clock=clock)
    clock.now += timedelta(hours=1)
    basic.run()  # every auto cell is up to date already
    runs, log = len(ws.runs(1000)), len(activity_rows(ws))
    assert run_due(ws, clock) == [(made.schedule_id, None)]
    assert (len(ws.runs(1000)), len(activity_rows(ws))) == (runs, log)
    assert schedules(ws)[0].next_due_at == clock.now + timedelta(hours=1)
    assert schedules(ws)[0].last_run_id is None

    basic.add_rows([{"email": "dee@x.io", "first": "Dee", "employees": 5}], run=False)  # now there is work
    clock.now += timedelta(hours=1)
    [(_, run_id)] = run_due(ws, clock)
    assert run_id is not None and schedules(ws)[0].last_run_id == run_id
    assert basic.cell(4, "research").status == "done"
