"""Schedules with a controllable clock: due times, missed runs coalescing into one, freshness re-runs, paused
campaigns waiting, and bad schedules refused with the fix."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine import EditError, Workspace
from engine.schedules import add_schedule, run_due, schedules
from engine.testing import PROBE_LEDGER
from tests.actions.conftest import Receiver

SPEC = """
campaign: s
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company]}
  - {name: score, kind: probe, inputs: [company], run: manual}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 6, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    workspace.apply(SPEC)
    workspace.campaign("s").add_rows([{"company": f"c{i}"} for i in range(3)])
    return workspace


def test_an_interval_schedule_runs_when_due_and_missed_runs_coalesce(ws: Workspace) -> None:
    clock = Clock()
    made = add_schedule(ws, "s", every="1h", clock=clock)
    assert made.next_due_at == clock.now + timedelta(hours=1)
    assert run_due(ws, clock) == []
    clock.advance(minutes=59)
    assert run_due(ws, clock) == []
    clock.advance(minutes=1)
    fired = run_due(ws, clock)
    assert [schedule_id for schedule_id, _ in fired] == [made.schedule_id]
    assert ws.campaign("s").status_counts()["research"] == {"done": 3}
    run = next(r for r in ws.runs(5) if r["run_id"] == fired[0][1])
    assert (run["trigger"], run["actor"]) == ("schedule", made.created_by)

    clock.advance(hours=10)  # ten due times missed while nothing was serving
    assert len(run_due(ws, clock)) == 1
    assert run_due(ws, clock) == []
    assert schedules(ws)[0].next_due_at == clock.now + timedelta(hours=1)


def test_a_cron_schedule_on_a_manual_column(ws: Workspace) -> None:
    clock = Clock()  # a Monday, 06:00
    made = add_schedule(ws, "s", column="score", cron="30 7 * * 1-5", clock=clock)
    assert made.next_due_at == datetime(2026, 1, 5, 7, 30)
    clock.now = datetime(2026, 1, 9, 23, 0)  # Friday night: four weekday runs missed
    assert len(run_due(ws, clock)) == 1
    assert ws.campaign("s").status_counts()["score"] == {"done": 3}
    assert schedules(ws)[0].next_due_at == datetime(2026, 1, 12, 7, 30)  # next Monday


def test_freshness_reruns_only_cells_older_than_the_limit(ws: Workspace) -> None:
    clock = Clock()
    campaign = ws.campaign("s")
    campaign.run()
    campaign.set(3, "research", "typed by hand")  # pinned: never re-run by a schedule
    PROBE_LEDGER.clear()
    add_schedule(ws, "s", column="research", every="1d", older_than="30d", clock=clock)
    clock.now = datetime.now() + timedelta(days=2)
    run_due(ws, clock)
    assert PROBE_LEDGER.calls == []  # computed moments ago: fresh
    clock.now = datetime.now() + timedelta(days=31)
    run_due(ws, clock)
    assert sorted(PROBE_LEDGER.calls) == [("research", 1), ("research", 2)]
    assert campaign.cell(3, "research").value == "typed by hand"


def test_a_paused_campaign_keeps_its_schedule_due_until_resumed(ws: Workspace) -> None:
    clock = Clock()
    add_schedule(ws, "s", every="15m", clock=clock)
    ws.pause("s")
    clock.advance(hours=3)
    assert run_due(ws, clock) == []
    assert ws.campaign("s").status_counts()["research"].get("done", 0) == 0
    ws.pause("s", resume=True)
    assert len(run_due(ws, clock)) == 1
    assert ws.campaign("s").status_counts()["research"] == {"done": 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "cron expression or an interval"),
        ({"cron": "*/5 * *"}, "not a cron"),
        ({"every": "soon"}, "duration"),
        ({"every": "1h", "column": "company"}, "input column"),
        ({"every": "1h", "older_than": "0d"}, "duration"),
    ],
)
def test_bad_schedules_are_refused_with_the_fix(ws: Workspace, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(EditError, match=message) as caught:
        add_schedule(ws, "s", **kwargs)  # type: ignore[arg-type]
    assert caught.value.hint
    assert schedules(ws) == []


def test_a_freshness_rerun_does_not_resend_an_unchanged_export(tmp_path: Path, receiver: Receiver) -> None:
    """A schedule re-running old answers re-runs what they feed, but an export whose payload came out the same
    sends nothing (issue 13, item 10; found by tests/test_invariants.py)."""
    ws = Workspace.init(tmp_path / "fresh")
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
    push = f'  - {{name: push, kind: export, url: "{receiver.base}/hooks/crm", fields: [company, research]}}\n'
    ws.apply(SPEC + push)
    campaign = ws.campaign("s")
    campaign.add_rows([{"company": f"c{i}"} for i in range(3)])
    campaign.run()
    assert receiver.posts() == 3
    clock = Clock()
    add_schedule(ws, "s", every="1d", older_than="30d", clock=clock)
    PROBE_LEDGER.clear()
    clock.now = datetime.now() + timedelta(days=31)
    run_due(ws, clock)
    # the answers were re-run...
    assert sorted(PROBE_LEDGER.calls) == [("research", 1), ("research", 2), ("research", 3)]
    assert receiver.posts() == 3  # ...and the same payloads were not sent again
