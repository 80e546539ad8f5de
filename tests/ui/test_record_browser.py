"""The record page end to end in a real browser (Debian's Chromium, driven by Playwright, against `runsheet ui` on
127.0.0.1): open a record by search, run an action from the Run Action list and see the result panel go from
running to done with its completion time, Copy and Copy as Markdown put the plain text and the markdown on the
clipboard, Save to Record adds a note and an AI-generated timeline entry, a later action reads the saved note;
a viewer sees no action to run. Takes the README's screenshot of the record page (docs/record-page.png)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import ACTION_TEMPLATES, Workspace
from tests.library.conftest import CONTACTS, CONTACTS_SPEC
from tests.ui import e2e
from ui import cells

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(e2e.CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect = playwright_api.expect
expect.set_options(timeout=60_000)

# The README's screenshot is taken again with RUNSHEET_README_SHOT=1 (otherwise a test run leaves docs/ alone).
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "record-page.png"
OPENER = {"prompt": "Write an opener to {{ full_name }} at {{ company }}"}
ICP = {"prompt": "Score {{ company }} against our ideal customer profile"}  # the template's JSON schema: markdown
FOLLOW_UP = {"prompt": "Follow up on: {{ notes }}"}
SLOW = {"inputs": ["company"], "delay": 1.5}  # long enough to see the panel running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    path = tmp_path_factory.mktemp("record") / "ws"
    ws = Workspace.init(path)
    ws.apply(CONTACTS_SPEC)
    ws.campaign("people").add_rows(CONTACTS)
    library = ws.actions()
    library.add("opener", "ai", dict(OPENER), category="personalization", description="A first line for one person")
    library.add("follow_up", "ai", dict(FOLLOW_UP), category="enablement", description="Follows up on the notes")
    library.add("icp", template="icp_score", options={**ACTION_TEMPLATES["icp_score"]["options"], **ICP})
    library.add("company_check", "probe", dict(SLOW), category="research", description="Checks the company (slow)")
    for name in ("opener", "follow_up", "icp", "company_check"):
        library.resume(name)
    with e2e.ui_server(path) as url:
        yield url, ws


@pytest.fixture
def page(browser, server, request):  # type: ignore[no-untyped-def]
    with e2e.tab(browser, request.node.name, height=1100, clipboard_for=server[0]) as tab:
        yield tab


def keyed(page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f".st-key-{key}")


def run(page, action: str) -> None:  # type: ignore[no-untyped-def]
    keyed(page, f"run-action-{action}").get_by_role("button").click()


def done(page, action: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until the result panel shows `action`'s result done, and only it (a rerun replaces what it drew)."""
    panel = keyed(page, "result-panel")
    expect(panel).to_contain_text(f"{action} · result")
    expect(panel.get_by_text("Done at")).to_have_count(1)
    expect(panel).not_to_contain_text("Running since")


def copied(page, position: int) -> str:  # type: ignore[no-untyped-def]
    """Click the copy button of the result panel's code block `position` (0 Copy, 1 Copy as Markdown)."""
    code = keyed(page, "result-panel").locator('[data-testid="stCode"]').nth(position)
    code.hover()
    code.get_by_role("button").first.click()
    return str(page.evaluate("navigator.clipboard.readText()"))


def test_search_run_copy_save_and_a_later_action_sees_the_note(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    page.goto(f"{url}/record?campaign=people")
    expect(page.get_by_text("Find a record above")).to_be_visible()
    search = page.get_by_label("Find a record")
    search.fill("cobol")
    search.press("Enter")
    keyed(page, "record-pick-2").get_by_role("button").click()
    expect(page.get_by_text("Grace Hopper · row 2")).to_be_visible()
    expect(keyed(page, "record-fields")).to_contain_text("grace@cobol.dev")
    expect(keyed(page, "record-cells")).to_contain_text("cobol.dev")
    assert "row=2" in page.url  # the record has a link

    run(page, "company_check")
    panel = keyed(page, "result-panel")
    expect(panel).to_contain_text("running")
    expect(panel).to_contain_text("Running since")
    expect(panel).to_contain_text("Done at")  # the completion time
    expect(keyed(page, "result-body")).to_contain_text("probe(Cobol)")

    run(page, "icp")
    done(page, "icp")
    [scored] = ws.actions().results(action="icp")
    markdown = cells.as_markdown(scored["value"])
    assert "- **score**: " in markdown
    expect(keyed(page, "result-body").locator("strong").first).to_have_text("reasons")  # rendered as markdown
    assert copied(page, 1) == markdown  # Copy as Markdown: the markdown
    assert copied(page, 0) == markdown.replace("**", "")  # Copy: plain text

    run(page, "opener")
    done(page, "opener")
    [opened] = ws.actions().results(action="opener")
    value = opened["value"]
    keyed(page, "result-save").get_by_role("button").click()
    expect(keyed(page, "record-fields")).to_contain_text("notes: opener: [offline model] Write an opener to Grace")
    timeline = keyed(page, "record-timeline")
    expect(timeline).to_contain_text("AI generated")
    expect(timeline).to_contain_text("· e2e ·")
    expect(timeline).to_contain_text("opener result saved to notes")
    expect(panel).to_contain_text("Saved to notes by e2e")
    assert ws.campaign("people").cell(2, "notes").value == f"opener: {value}"
    page.locator('[data-testid="stToast"]').first.wait_for(state="detached")
    page.evaluate("document.querySelectorAll('[data-testid=\"stMain\"], html').forEach(e => e.scrollTo(0, 0))")
    page.mouse.move(0, 0)
    shot = e2e.shot(page, "record_page")
    if os.environ.get("RUNSHEET_README_SHOT") == "1":
        README_SHOT.write_bytes(shot.read_bytes())

    run(page, "follow_up")
    done(page, "follow_up")
    expect(keyed(page, "result-body")).to_contain_text("Follow up on opener offline model Write an opener to Grace")
    expect(panel.get_by_text("Provenance")).to_have_count(1)  # the panel drawn before this run is gone
    panel.get_by_text("Provenance").click()  # the rendered prompt: the saved note, as the action saw it
    expect(panel).to_contain_text(f"Follow up on: opener: {value}")
    [later] = ws.actions().results(action="follow_up")
    assert later["detail"]["messages"][-1]["content"] == f"Follow up on: opener: {value}"


def test_a_viewer_sees_no_action_to_run(page, server) -> None:  # type: ignore[no-untyped-def]
    url, ws = server
    admin = Workspace(ws.path, actor="ada")
    admin.set_role("ada", "admin", "ada-password")
    admin.set_role("vic", "viewer", "vic-password")
    page.goto(f"{url}/record?campaign=people&row=1")
    page.get_by_role("textbox", name="User").fill("vic")
    page.get_by_role("textbox", name="Password", exact=True).fill("vic-password")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_text("Signed in as vic")).to_be_visible()
    expect(page.get_by_text("Ada Lovelace · row 1")).to_be_visible()
    expect(keyed(page, "run-action")).to_contain_text("Viewers read records and results; they run no action.")
    assert keyed(page, "run-action").get_by_role("button").count() == 0
