"""Schedules: run a campaign's auto-run steps (or one column) on a cron expression or an interval, optionally
re-running cells older than a freshness limit ("re-run cells older than 30 days"); or run a library action
(engine/actions/) on the records of a campaign that an SQL filter selects. A cron schedule may be read in a time
zone (`0 9 * * 1-5` at 9:00 in Europe/Berlin). They run inside `runsheet serve` (a Scheduler thread), with
trigger `schedule` and the schedule's creator as the actor.

A schedule that was due several times while nothing was serving runs once, not once per missed time: after a
run its next time is the first one after *now*. A tick with nothing to do (every cell in scope up to date, none
older than the limit) runs and logs nothing: only the schedule's next time moves. A paused campaign's schedules
wait (still due) until resumed. The clock is a parameter, so tests move time by hand.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.auth import authorize
from engine.cells import kind_named
from engine.errors import EditError, NotFoundError, RunsheetError
from engine.run.lifecycle import run_transaction
from engine.run.reports import RunReport
from engine.run.selection import RunSelection, plan_selection
from engine.run.windows import Windows
from engine.store.catalog import load_campaign
from engine.store.pause import pause_state
from engine.store.schema import quote
from engine.workspace import Workspace

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '30d', '2w' -> seconds."""
    found = DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise EditError(f"{text!r} is not a duration", hint="write e.g. 90s, 15m, 1h, 30d or 2w")
    return float(found.group(1)) * UNITS[found.group(2)]


def format_duration(seconds: float) -> str:
    """Seconds in the largest unit that divides them evenly, as `parse_duration` reads them: 3600 -> '1h',
    2592000 -> '30d', 5400 -> '90m'."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _now() -> datetime:
    return datetime.now()


@dataclass(frozen=True)
class Schedule:
    schedule_id: int
    campaign: str
    column: str | None
    cron: str | None
    every_seconds: float | None
    older_than_seconds: float | None
    next_due_at: datetime
    last_run_at: datetime | None
    last_run_id: int | None
    created_by: str
    action_id: int | None = None  # a library action run on the records `record_filter` selects
    record_filter: str | None = None  # SQL over the campaign's records (its wide table in the query sandbox)
    timezone: str | None = None  # the zone a cron expression is read in (None: the server's local time)

    @property
    def when(self) -> str:
        """When it runs, as a person says it: `every 1h`, or `cron 0 6 * * 1` (`in Europe/Berlin`)."""
        if self.cron is not None:
            return f"cron {self.cron}" + (f" in {self.timezone}" if self.timezone else "")
        assert self.every_seconds is not None
        return f"every {format_duration(self.every_seconds)}"

    @property
    def older_than(self) -> str:
        """Its freshness limit as a person says it (`older than 30d`), or ''."""
        return "" if self.older_than_seconds is None else f"older than {format_duration(self.older_than_seconds)}"

    @property
    def describe(self) -> str:
        """`every 1h`, with `, re-running cells older than 30d` when it has a freshness limit."""
        return f"{self.when}, re-running cells {self.older_than}" if self.older_than else self.when

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment`."""
        if self.cron is not None:
            from croniter import croniter

            if self.timezone is None:
                return croniter(self.cron, moment).get_next(datetime)  # type: ignore[no-any-return]
            zone = _zone(self.timezone)
            due: datetime = croniter(self.cron, moment.astimezone(zone)).get_next(datetime)
            return due.astimezone().replace(tzinfo=None)  # the clock's (local, naive) time
        assert self.every_seconds is not None
        return moment + timedelta(seconds=self.every_seconds)


def add_schedule(
    ws: Workspace,
    campaign: str,
    *,
    column: str | None = None,
    cron: str | None = None,
    every: str | None = None,
    older_than: str | None = None,
    action: str | None = None,
    records: str | None = None,
    timezone: str | None = None,
    clock: Clock = _now,
) -> Schedule:
    """Create a schedule (member or admin); exactly one of `cron` and `every`. With `action`, the schedule runs
    that library action on the campaign's records `records` selects (SQL over the record's fields, e.g.
    "meeting_date = current_date"; all records without it)."""
    if (cron is None) == (every is None):
        raise EditError("give a cron expression or an interval, not both or neither", hint="e.g. --every 1h")
    if cron is not None:
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise EditError(f"{cron!r} is not a cron expression", hint="five fields, e.g. '0 6 * * 1' (Mondays 6:00)")
    if timezone is not None:
        if cron is None:
            raise EditError("a time zone is for a cron schedule", hint="give --cron, or leave the zone out")
        _zone(timezone)
    if action is None and records is not None:
        raise EditError("a record filter is for an action's schedule", hint="give --action, or leave --records out")
    if action is not None and (column is not None or older_than is not None):
        raise EditError(
            "an action's schedule runs the action on records: it takes no column or freshness limit",
            hint="leave --column and --older-than out",
        )
    action_id = None if action is None else int(ws.actions().show(action)["action_id"])
    if action is not None:
        _selected(ws, campaign, records, limit=1)  # a filter that does not run is refused now, not at 6 in the morning
    seconds = parse_duration(every) if every is not None else None
    older = parse_duration(older_than) if older_than is not None else None
    with ws.db.transaction() as con:
        authorize(ws.db, ws.actor, "run", con=con, what=campaign)
        tables = load_campaign(con, campaign)
        if column is not None and tables.column(column).is_input:
            raise EditError(f"'{column}' is an input column", hint="schedule a step column")
        schedule_id = int(con.execute("SELECT nextval('ids')").fetchall()[0][0])
        draft = Schedule(
            schedule_id,
            campaign,
            column,
            cron,
            seconds,
            older,
            clock(),
            None,
            None,
            ws.actor,
            action_id,
            records,
            timezone,
        )
        con.execute(
            "INSERT INTO schedules (schedule_id, campaign, column_name, cron, every_seconds, older_than_seconds, "
            "next_due_at, created_by, created_at, action_id, record_filter, timezone) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
            [
                schedule_id,
                campaign,
                column,
                cron,
                seconds,
                older,
                draft.next_after(clock()),
                ws.actor,
                action_id,
                records,
                timezone,
            ],
        )
    return schedules(ws, schedule_id=schedule_id)[0]


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EditError(
            f"{name!r} is not a time zone", hint="use an IANA name, e.g. Europe/Berlin or America/New_York"
        ) from None


MAX_SCHEDULED_RECORDS = 1000  # records one tick of an action's schedule runs the action on


def _selected(ws: Workspace, campaign: str, records: str | None, limit: int = MAX_SCHEDULED_RECORDS) -> list[int]:
    """The row ids of the campaign's records the filter selects (in the read-only query sandbox), in order."""
    where = f"WHERE {records}" if records else ""
    found = ws.query(f"SELECT row_id FROM campaign.{quote(campaign)} {where} ORDER BY row_id LIMIT {int(limit)}")
    return [int(r) for r in found["row_id"].to_list()]


def schedules(ws: Workspace, *, schedule_id: int | None = None) -> list[Schedule]:
    with ws.db.transaction() as con:
        where = "" if schedule_id is None else f"WHERE schedule_id = {int(schedule_id)}"
        rows = con.execute(
            "SELECT schedule_id, campaign, column_name, cron, every_seconds, older_than_seconds, next_due_at, "
            f"last_run_at, last_run_id, created_by, action_id, record_filter, timezone FROM schedules {where} "
            "ORDER BY schedule_id"
        ).fetchall()
    return [Schedule(*row) for row in rows]


def remove_schedule(ws: Workspace, schedule_id: int) -> None:
    with ws.db.transaction() as con:
        authorize(ws.db, ws.actor, "run", con=con)
        if not con.execute("DELETE FROM schedules WHERE schedule_id = ? RETURNING 1", [schedule_id]).fetchall():
            raise NotFoundError(f"no schedule {schedule_id}", hint="see them with `runsheet schedule list`")


def run_due(ws: Workspace, clock: Clock = _now) -> list[tuple[int, int | None]]:
    """Run every schedule that is due at `clock()`, once each; returns (schedule_id, run_id or None)."""
    fired: list[tuple[int, int | None]] = []
    for schedule in schedules(ws):
        now = clock()
        if schedule.next_due_at > now:
            continue
        with ws.db.transaction() as con:
            paused = pause_state(con, load_campaign(con, schedule.campaign).campaign_id)
        if paused.campaign or (schedule.column is not None and schedule.column in paused.columns):
            continue  # still due: it runs once the campaign is resumed
        run_id: int | None = None
        failed = False
        try:
            run_id = _run(ws, schedule, now)
        except RunsheetError as error:  # e.g. the creator lost the role: logged, the schedule moves on
            log.warning("schedule %s could not run: %s", schedule.schedule_id, error)
            failed = True
        with ws.db.transaction() as con:
            if run_id is None and not failed:  # nothing to do: only the next time moves
                con.execute(
                    "UPDATE schedules SET next_due_at = ? WHERE schedule_id = ?",
                    [schedule.next_after(now), schedule.schedule_id],
                )
            else:
                con.execute(
                    "UPDATE schedules SET last_run_at = ?, last_run_id = ?, next_due_at = ? WHERE schedule_id = ?",
                    [now, run_id, schedule.next_after(now), schedule.schedule_id],
                )
        fired.append((schedule.schedule_id, run_id))
    return fired


def _has_work(ws: Workspace, campaign: str, columns: list[str] | None) -> bool:
    """Whether running `columns` (the auto-run steps when None) would compute or change any cell: worked out in
    transactions that are rolled back, so a tick with nothing to do leaves no run and no activity behind. A large
    campaign is looked at window by window (engine/run/windows.py), each in a transaction of its own, up to the
    first window with work: the UI and the API, in the same process, get the workspace between them."""
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, campaign)
        request, scope = plan_selection(con, tables, RunSelection.of(columns, None))
        windows = Windows.over(con, tables, request, scope)
        if windows is None:
            return _works(run_transaction(con, tables, request, scope, actor="schedule", trigger="schedule"))
    while windows.left:
        with windows.window(ws.db, campaign, commit=False) as (con, tables, window):
            if window is None:
                return False
            report = run_transaction(con, tables, request, window, actor="schedule", trigger="schedule")
            if _works(report):
                return True
    return False


def _works(report: RunReport) -> bool:
    """Whether a run computes or changes any cell: cells that only settle again where they were (still waiting
    on a manual step, say) are not work."""
    return bool(report.claims) or any(report.computed(column) for column in report.counts())


def _run(ws: Workspace, schedule: Schedule, now: datetime) -> int | None:
    """Run the schedule's steps, then Run Again its cells older than its freshness limit; returns the last run's
    id, or None when there was nothing to do (nothing is run or logged then)."""
    if schedule.action_id is not None:
        return _run_action(ws, schedule)
    campaign = ws.campaign(schedule.campaign, actor=schedule.created_by, trigger="schedule")
    columns = None if schedule.column is None else [schedule.column]
    last = campaign.run(columns).run_id if _has_work(ws, schedule.campaign, columns) else None
    if schedule.older_than_seconds is None:
        return last
    cutoff = now - timedelta(seconds=schedule.older_than_seconds)
    with ws.db.transaction() as con:
        tables = load_campaign(con, schedule.campaign)
        # Freshness is about answers. An export is not re-sent for age unless its schedule names it: it runs again
        # when the answers it sends are re-run, and sends only if its payload changed (engine/cells/export.py).
        targets = columns or [
            c
            for c in tables.spec.graph.auto_steps()
            if not tables.spec.graph.nodes[c].free and not kind_named(tables.spec.column(c).kind).side_effect
        ]
        old = {
            column: [
                r[0]
                for r in con.execute(
                    f"SELECT row_id FROM {tables.tables[column]} WHERE finished_at < ? AND status IN "
                    "('done', 'not_found') ORDER BY row_id",
                    [cutoff],
                ).fetchall()
            ]
            for column in targets
        }
    for column, rows in old.items():
        if rows:  # Run Again on the old cells (pinned ones are not in the list: they are never re-run)
            last = campaign.run([column], rows, force=True).run_id
    return last


def _run_action(ws: Workspace, schedule: Schedule) -> int | None:
    """Run the schedule's library action on each record its filter selects (a run per record, as on the record
    page); returns the last run's id, or None when no record was selected. The action's own consent, switch and
    roles apply: a paused action is refused, and the schedule moves on."""
    library = ws.actions(actor=schedule.created_by, trigger="schedule")
    assert schedule.action_id is not None
    name = library.name_of(schedule.action_id)
    last = None
    for row_id in _selected(ws, schedule.campaign, schedule.record_filter):
        last = int(library.run(name, schedule.campaign, row_id)["run_id"])
    return last


class Scheduler:
    """Runs due schedules every `interval` seconds in a thread, until stopped."""

    def __init__(self, ws: Workspace, *, interval: float = 30.0, clock: Clock = _now) -> None:
        self.ws, self.interval, self.clock = ws, interval, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runsheet-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(self.ws, self.clock)
            except Exception:  # a failing tick must not end the server's schedules
                log.exception("scheduler tick failed")
            self._stop.wait(self.interval)
