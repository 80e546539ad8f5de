"""An action's schedule (issue 17, triggers): a library action run on the records an SQL filter selects, on an
interval or a cron expression read in a time zone, with a controllable clock; bad schedules are refused with
the fix, a paused action is refused at its tick (the schedule moves on), deleting the action removes them."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from engine import Campaign, EditError, QueryError, Workspace
from engine.schedules import add_schedule, run_due, schedules
from tests.actions.test_schedules import Clock

OPENER = {"prompt": "Write an opener to {{ full_name }} at {{ company }}"}


@pytest.fixture()
def opener(ws: Workspace, people: Campaign) -> Workspace:
    ws.actions().add("opener", "ai", dict(OPENER), description="An opener")
    ws.actions().resume("opener")
    return ws


def test_an_action_runs_on_the_records_its_filter_selects_when_due(opener: Workspace) -> None:
    clock = Clock()
    made = add_schedule(opener, "people", action="opener", records="title <> ''", every="1h", clock=clock)
    assert made.next_due_at == clock.now + timedelta(hours=1) and made.record_filter == "title <> ''"
    assert run_due(opener, clock) == []
    clock.advance(hours=1)
    [(schedule_id, run_id)] = run_due(opener, clock)
    results = opener.actions().results(action="opener")
    assert sorted(r["row_id"] for r in results) == [1, 2]  # Alan Turing's title is empty
    assert {(r["trigger"], r["actor"], r["status"]) for r in results} == {("schedule", opener.actor, "done")}
    assert run_id == max(r["run_id"] for r in results) and schedule_id == made.schedule_id
    assert schedules(opener)[0].next_due_at == clock.now + timedelta(hours=1)


def test_a_cron_schedule_is_read_in_its_time_zone(opener: Workspace) -> None:
    clock = Clock()  # 2026-01-05 06:00, the clock's local time
    made = add_schedule(opener, "people", action="opener", cron="0 9 * * *", timezone="Asia/Tokyo", clock=clock)
    tokyo = clock.now.astimezone(ZoneInfo("Asia/Tokyo"))
    nine = tokyo.replace(hour=9, minute=0, second=0, microsecond=0)
    if nine <= tokyo:
        nine += timedelta(days=1)
    assert made.next_due_at == nine.astimezone().replace(tzinfo=None)
    assert made.when == "cron 0 9 * * * in Asia/Tokyo"


def test_bad_schedules_are_refused_with_the_fix(opener: Workspace) -> None:
    with pytest.raises(EditError, match="not a time zone") as zone:
        add_schedule(opener, "people", action="opener", cron="0 9 * * *", timezone="Mars/Olympus")
    assert "Europe/Berlin" in zone.value.hint
    with pytest.raises(EditError, match="for a cron schedule"):
        add_schedule(opener, "people", action="opener", every="1h", timezone="Europe/Berlin")
    with pytest.raises(QueryError):
        add_schedule(opener, "people", action="opener", every="1h", records="no_such_field = 1")
    with pytest.raises(EditError, match="for an action's schedule"):
        add_schedule(opener, "people", every="1h", records="title <> ''")
    with pytest.raises(EditError, match="takes no column"):
        add_schedule(opener, "people", action="opener", every="1h", column="domain")
    assert schedules(opener) == []


def test_a_paused_action_is_refused_at_its_tick_and_deleting_it_removes_its_schedules(opener: Workspace) -> None:
    clock = Clock()
    add_schedule(opener, "people", action="opener", every="1h", clock=clock)
    opener.actions().pause("opener")
    clock.advance(hours=1)
    [(_, run_id)] = run_due(opener, clock)
    assert run_id is None and opener.actions().results() == []
    assert schedules(opener)[0].next_due_at == clock.now + timedelta(hours=1)
    assert opener.actions().delete("opener", confirm=True)["schedules"] == 1
    assert schedules(opener) == []
