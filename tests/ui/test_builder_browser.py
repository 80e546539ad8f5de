"""The builder chat panel end to end in a real browser (Debian's Chromium, driven by Playwright, against `runsheet ui`
on 127.0.0.1), on the offline model (no key): from the grid's Chat menu, describe a step in plain language, see the
plan, the diff and the preview on sample rows, accept, add it as a column, and see the new column's cells fill in
the grid. Takes the README's screenshot of the panel (docs/builder-panel.png) with RUNSHEET_README_SHOT=1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Status, Workspace
from tests.library.conftest import CONTACTS, CONTACTS_SPEC
from tests.ui import e2e

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(e2e.CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect = playwright_api.expect
expect.set_options(timeout=60_000)

README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "builder-panel.png"
REQUEST = "Score each lead 1-10 against our ideal customer profile and give the reasons"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    path = tmp_path_factory.mktemp("builder") / "ws"
    ws = Workspace.init(path)
    ws.apply(CONTACTS_SPEC)
    ws.campaign("people").add_rows(CONTACTS)
    with e2e.ui_server(path) as url:
        yield url, ws


@pytest.fixture
def page(browser, server, request):  # type: ignore[no-untyped-def]
    with e2e.tab(browser, request.node.name, height=1500) as tab:
        yield tab


def keyed(page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f".st-key-{key}")


def test_describe_see_plan_diff_preview_accept_and_the_new_column_fills(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    page.goto(f"{url}/?campaign=people")
    expect(e2e.grid(page)).to_be_visible()
    expect(e2e.cell_text(page, 0, 1)).to_have_text("1")

    page.get_by_role("button", name="Chat").click()
    page.get_by_label("New action").fill("icp_fit")
    page.get_by_label("New action").press("Enter")
    page.get_by_role("button", name="Build with chat").click()
    panel = keyed(page, "builder-grid")
    expect(panel).to_contain_text("Build with chat: action icp_fit")
    page.keyboard.press("Escape")  # the menu closes; the panel stays under the toolbar

    panel.get_by_label("Describe the change, or ask about the action").fill(REQUEST)
    panel.get_by_role("button", name="Send").click()
    proposal = keyed(page, "builder-proposal")
    expect(proposal).to_contain_text("drafted from the template icp_score")  # the offline model says so
    expect(proposal).to_contain_text("Plan")
    expect(proposal).to_contain_text("Start from the built-in template icp_score")
    expect(proposal).to_contain_text("+kind: ai")  # the diff
    expect(proposal).to_contain_text("0 credits a record, 0 for all 3 records")
    expect(proposal).to_contain_text("Preview on sample rows")
    expect(proposal.locator('[data-testid="stDataFrame"]')).to_be_visible()
    assert ws.actions().listed() == []  # nothing applied yet

    proposal.get_by_role("button", name="Accept").click()
    expect(proposal).to_contain_text("Accepted at")
    assert ws.actions().show("icp_fit")["active"] is False  # a new action starts paused
    expect(panel).to_contain_text("the column does not need that")
    expect(proposal).to_contain_text("Proposal #2 for icp_fit · accepted")

    page.locator('[data-testid="stToast"]').first.wait_for(state="detached")
    page.evaluate("document.querySelectorAll('[data-testid=\"stMain\"], html').forEach(e => e.scrollTo(0, 0))")
    page.mouse.move(0, 0)
    shot = e2e.shot(page, "builder_panel")
    if os.environ.get("RUNSHEET_README_SHOT") == "1":
        README_SHOT.write_bytes(shot.read_bytes())

    panel.get_by_role("button", name="Add as column").click()
    expect(panel).to_have_count(0)  # the panel closes: the grid is right under the toolbar
    # the grid's new column: one cell a record, each holding the offline model's score and reasons
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text="Ada Lovelace")  # not the preview
    filled = grid.locator('[id^="glide-cell-"]').filter(has_text="offline model")
    expect(filled).to_have_count(3)
    campaign = ws.campaign("people")
    assert [campaign.cell(r, "icp_fit").status for r in (1, 2, 3)] == [Status.DONE] * 3
    e2e.shot(page, "builder_column_filled")
