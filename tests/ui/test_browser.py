"""End to end in a real browser: Debian's Chromium, driven by Playwright, against `runsheet ui` on 127.0.0.1.

Click to Run a manual cell and see its value, Run Again, edit an input and see its downstream update, start a
column run, reload mid-run and see it continue, Stop it, open the cell panel and copy. Every test saves a
screenshot under tests/ui/artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Workspace
from tests.conftest import copy_workspace
from tests.ui import e2e

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(e2e.CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect = playwright_api.expect
expect.set_options(timeout=60_000)

OPENER = 5  # grid column positions (see e2e.FIRST_DATA_COLUMN): step columns first, then the inputs
FIRST = 2  # in edit mode, which has no checkbox column and puts the inputs first
GREET = 5
WAIT_MS = 60_000
SLOW_SPEC = """
campaign: slow
columns:
  - {name: n, kind: input}
  - {name: crawl, kind: probe, inputs: [n], delay: 0.5, run: manual}
"""


@pytest.fixture(scope="module")
def server(states_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    path = tmp_path_factory.mktemp("e2e") / "ws"
    copy_workspace(states_template, path)
    ws = Workspace(path)
    ws.apply(SLOW_SPEC)
    ws.set_setting("concurrency", 2)  # 120 cells of 0.5 s take 30 s: long enough to reload and stop mid-run
    ws.campaign("slow").add_rows([{"n": str(i)} for i in range(120)])
    with e2e.ui_server(path) as url:
        yield url, ws
    for run in ws.active_runs():  # a test that failed mid-run leaves nothing running
        ws.stop_run(int(str(run["run_id"])))


@pytest.fixture
def page(browser, server, request):  # type: ignore[no-untyped-def]
    with e2e.tab(browser, request.node.name, height=1000, clipboard_for=server[0], timeout_ms=WAIT_MS) as tab:
        yield tab


def open_grid(page, url: str, campaign: str = "t") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/?campaign={campaign}")
    expect(e2e.grid(page)).to_be_visible()
    expect(e2e.cell_text(page, 0, 1)).to_have_text("1")


def test_click_to_run_then_run_again(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    open_grid(page, url)
    expect(e2e.cell_text(page, 1, OPENER)).to_have_text("▶ Click to Run")
    e2e.select_cell(page, 1, OPENER)
    expect(e2e.panel(page)).to_contain_text("opener · row 2")
    page.get_by_role("button", name="▶ Click to Run").click()
    value = "probe(Hi Bob at globex.io|probe(globex.io))"
    expect(e2e.cell_text(page, 1, OPENER)).to_have_text(value)
    expect(e2e.panel(page).get_by_text("up to date")).to_be_visible()
    assert ws.campaign("t").cell(2, "opener_length").value == 99  # pinned: the run did not overwrite it
    runs_before = len(ws.runs(1000))
    page.get_by_role("button", name="⟳ Run Again").click()
    expect(page.get_by_text("Started: opener on 1 row(s) (Run Again)")).to_be_visible()
    e2e.shot(page, "run_again")
    deadline = time.monotonic() + 60
    while not [r for r in ws.runs(5) if r["request"].get("force") and r["status"] == "done"]:
        assert time.monotonic() < deadline, ws.runs(5)
        time.sleep(0.2)
    assert len(ws.runs(1000)) > runs_before
    expect(e2e.cell_text(page, 1, OPENER)).to_have_text(value)


def test_edit_an_input_and_see_downstream_update(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    open_grid(page, url)
    page.get_by_text("Edit inputs").click()
    expect(page.get_by_text("Edit mode: type into input cells")).to_be_visible()
    expect(e2e.cell_text(page, 2, FIRST)).to_have_text("Cy")
    edits_before = edit_runs(ws)
    e2e.select_cell(page, 2, FIRST, first_data_column=1)
    e2e.type_into_cell(page, "Cyrus")
    expect(e2e.cell_text(page, 2, GREET)).to_have_text("Hi Cyrus at initech.org")
    e2e.select_cell(page, 1, FIRST, first_data_column=1)  # a second edit in the same grid, which still holds the first
    e2e.type_into_cell(page, "Bobby")
    expect(e2e.cell_text(page, 1, GREET)).to_have_text("Hi Bobby at globex.io")
    expect(e2e.cell_text(page, 2, GREET)).to_have_text("Hi Cyrus at initech.org")
    e2e.shot(page, "edit_input")
    assert ws.campaign("t").cell(3, "greet").value == "Hi Cyrus at initech.org"
    assert ws.campaign("t").cell(2, "greet").value == "Hi Bobby at globex.io"
    assert edit_runs(ws) == edits_before + 2  # each edit written once


def edit_runs(ws: Workspace) -> int:
    requests = [run.get("request") for run in ws.runs(1000)]
    return sum(1 for request in requests if isinstance(request, dict) and request.get("kind") == "edit")


def test_column_run_survives_a_reload_and_stops(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    open_grid(page, url, "slow")
    page.get_by_role("button", name="Run").first.click()
    page.get_by_role("button", name="Estimate").click()
    expect(page.get_by_text("calls").first).to_be_visible()
    page.get_by_role("button", name="Run crawl").click()
    progress = page.get_by_text("· crawl · by e2e")
    expect(progress).to_be_visible()
    run_id = int(ws.active_runs("slow")[0]["run_id"])
    page.reload()
    expect(progress).to_be_visible()  # the run lives outside the page: a reload finds it still going
    assert [r["run_id"] for r in ws.active_runs("slow")] == [run_id]
    e2e.shot(page, "column_run_after_reload")
    page.get_by_role("button", name="■ Stop").click()
    expect(progress).to_be_hidden()
    final = next(r for r in ws.runs(20) if r["run_id"] == run_id)
    assert final["status"] == "stopped"
    done = ws.campaign("slow").status_counts()["crawl"].get("done", 0)
    assert 0 < done < 120


def test_cell_panel_shows_value_and_copies(page, server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    open_grid(page, url)
    e2e.select_cell(page, 0, OPENER)
    expect(e2e.panel(page)).to_contain_text("opener · row 1")
    expect(e2e.panel(page)).to_contain_text("Stale: its inputs changed since it ran")
    code = e2e.panel(page).locator('[data-testid="stCode"]').first
    code.hover()
    code.get_by_role("button").first.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "probe(Hi Ann at acme.com|probe(acme.com))"
    e2e.panel(page).get_by_text("Provenance").click()
    expect(e2e.panel(page)).to_contain_text("Hi Annie at acme.com")
    e2e.shot(page, "cell_panel")
