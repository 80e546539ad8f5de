"""Clicks go to the warm runner when one is up for the workspace (engine/warm.py): the run is the runner's (its
pid on the run row, no new process), shows running at once, and ends with the value shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from engine import WarmRunner, Workspace
from tests.ui.test_grid_app import grid, open_cell, wait_for_launches
from ui import runs


@pytest.fixture
def runner(states_ws: Workspace) -> Iterator[WarmRunner]:
    started = WarmRunner.start(states_ws.path)
    try:
        assert started.ready(), "the warm runner did not come up"
        yield started
    finally:
        started.stop()


def test_click_to_run_goes_through_the_warm_runner(app: AppTest, states_ws: Workspace, runner: WarmRunner) -> None:
    open_cell(app.run(), 2, "opener")
    app.button(key="panel-run").click().run()
    launched = runs.launches_all()
    assert len(launched) == 1 and isinstance(launched[0].process, runs.WarmProcess)
    assert launched[0].pid == runner.pid
    wait_for_launches()
    assert launched[0].process.returncode == 0, launched[0].log_path.read_text()
    frame = grid(app.run())
    assert frame.loc[2, "opener"] == "probe(Hi Bob at globex.io|probe(globex.io))"
    assert frame.loc[3, "opener"] == "▶ Click to Run"  # only the chosen cell ran
    run = runs.recent_runs(states_ws, 5)[0]
    assert run["pid"] == runner.pid and run["trigger"] == "ui" and run["actor"] == "tester"
    assert run["status"] == "done"


def test_a_click_shows_running_at_once_and_two_clicks_run_side_by_side(
    app: AppTest, states_ws: Workspace, runner: WarmRunner
) -> None:
    states_ws.campaign("t").set(3, "first", "Cyd")
    open_cell(app.run(), 2, "opener")
    app.button(key="panel-run").click().run()
    assert grid(app).loc[2, "opener"].startswith("⟳")  # running, before the run has written anything
    open_cell(app, 3, "checker")
    app.button(key="panel-run").click().run()
    wait_for_launches()
    assert [item.process.returncode for item in runs.launches_all()] == [0, 0]
    frame = grid(app.run())
    assert frame.loc[2, "opener"] == "probe(Hi Bob at globex.io|probe(globex.io))"
    assert frame.loc[3, "checker"] == "probe(Cyd)"
    assert {r["pid"] for r in runs.recent_runs(states_ws, 2)} == {runner.pid}
