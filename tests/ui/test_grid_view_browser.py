"""The grid as Debian's Chromium draws it (issue 15, "The grid"): `/grid` opens without a "Page not found"
modal; every state glyph is drawn by a stock font (not the empty box ⏳ was); a null is blank and the text "None"
is text; the hover toolbar sits above the grid, off its column headers; the grid fills the window. Each test
saves a screenshot under tests/ui/artifacts/grid_view-*.png, to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Workspace
from tests.conftest import copy_workspace
from tests.support.consent import apply_active
from tests.ui import e2e
from ui import cells

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(e2e.CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect = playwright_api.expect
expect.set_options(timeout=60_000)

BLOCKED_SPEC = """
campaign: b
columns:
  - {name: first, kind: input}
  - {name: fit, kind: probe, inputs: [first], fail_on: Bob}
  - {name: pitch, kind: probe, inputs: [fit]}
"""
NULLS_SPEC = """
campaign: nulls
columns:
  - {name: label, kind: input}
  - {name: size, kind: input, type: BIGINT}
  - {name: echo, kind: formula, expression: "label"}
"""
# grid positions in campaign "nulls": 0 the checkbox, 1 the row id, then the step, then the inputs
ECHO, LABEL, SIZE = 2, 3, 4
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def server(states_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("grid_view") / "ws"
    copy_workspace(states_template, path)
    ws = Workspace(path)
    ws.campaign("t").add_rows([{"email": f"p{i}@x{i}.com", "first": f"P{i}", "employees": i} for i in range(60)])
    apply_active(ws, BLOCKED_SPEC)
    ws.campaign("b").add_rows([{"first": "Ann"}, {"first": "Bob"}])
    ws.campaign("b").run()
    ws.apply(NULLS_SPEC)
    ws.campaign("nulls").add_rows([{"label": None, "size": None}, {"label": "None", "size": 7}])
    with e2e.ui_server(path) as url:
        yield url


@pytest.fixture
def page(browser, request):  # type: ignore[no-untyped-def]
    with e2e.tab(browser, request.node.name, height=VIEWPORT["height"]) as tab:
        yield tab


def open_grid(page, url: str, path: str = "/", campaign: str = "t") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}{path}?campaign={campaign}")
    expect(e2e.grid(page)).to_be_visible()
    expect(e2e.cell_text(page, 0, 1)).to_have_text("1")


def test_grid_path_opens_the_grid_without_page_not_found(page, server) -> None:  # type: ignore[no-untyped-def]
    open_grid(page, server, "/grid")
    expect(e2e.cell_text(page, 0, 2)).to_have_text("acme.com")  # domain: step columns come first
    # Streamlit sends "page not found" before the page's first element: with the grid drawn, it would be shown.
    assert page.get_by_text("Page not found").count() == 0
    assert page.url.split("?")[0].endswith("/grid")  # not sent back to /
    e2e.shot(page, "grid_view-grid_path")


# A glyph no font has is drawn as the same empty box (.notdef) as any other missing one: compare canvas pixels.
SAME_AS_MISSING = """([glyphs, font]) => {
  const draw = (text) => {
    const canvas = document.createElement('canvas'); canvas.width = 40; canvas.height = 40;
    const g = canvas.getContext('2d'); g.font = font; g.fillText(text, 4, 30);
    return Array.from(g.getImageData(0, 0, 40, 40).data).join(',');
  };
  const missing = draw('\\u{10FFFD}');
  return glyphs.filter((glyph) => draw(glyph) === missing);
}"""


def test_state_glyphs_are_drawn_by_a_stock_font(page, server) -> None:  # type: ignore[no-untyped-def]
    open_grid(page, server)
    expect(e2e.cell_text(page, 2, 8)).to_contain_text("waiting on opener")  # opener_length, row 3
    font = '16px "Source Sans", "Source Sans Pro", sans-serif'  # the grid's font and Chromium's fallbacks
    glyphs = sorted(
        {
            c
            for c in " ".join([cells.WAITING, cells.PAUSED, cells.BLOCKED, "▶◐—∅⚠✎⟳…", *cells.KIND_ICONS.values()])
            if c.strip()
        }
    )
    assert page.evaluate(SAME_AS_MISSING, [["⏳"], font]) == ["⏳"]  # the check sees a missing glyph
    assert page.evaluate(SAME_AS_MISSING, [glyphs, font]) == []
    e2e.shot(page, "grid_view-state_glyphs")
    open_grid(page, server, campaign="b")
    expect(e2e.cell_text(page, 1, 3)).to_have_text("⊘ blocked by fit")  # pitch, row 2
    e2e.shot(page, "grid_view-blocked_glyph")


# Records every text the grid's canvas draws, where (the accessible table alone would not show a null drawn as a
# grey "None": the grid paints that itself).
DRAWN_HOOK = """
window.__drawn = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y) {
  const m = this.getTransform();
  window.__drawn.push([String(text), m.a * x + m.e, m.d * y + m.f]);
  return fillText.apply(this, arguments);
};
"""


def test_a_null_is_blank_and_the_text_none_is_text(page, server) -> None:  # type: ignore[no-untyped-def]
    page.add_init_script(DRAWN_HOOK)
    open_grid(page, server, campaign="nulls")
    expect(e2e.cell_text(page, 1, LABEL)).to_have_text("None")
    expect(e2e.cell_text(page, 1, SIZE)).to_have_text("7")
    page.wait_for_timeout(500)  # the last paint
    drawn = {(text, round(x), round(y)) for text, x, y in page.evaluate("window.__drawn")}
    first_row = sorted(text for text, _, y in drawn if 35 < y < 70)  # the header is 35 px, a row 35 px
    second_row = sorted(text for text, _, y in drawn if 70 < y < 105)
    assert first_row == ["1"]  # the row id; its null label, size and echo are blank
    assert second_row == ["2", "7", "None", "None"]  # the text "None" in label and echo
    assert e2e.cell_text(page, 0, SIZE).inner_text().strip() == ""
    e2e.shot(page, "grid_view-nulls")


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    across = a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
    return across and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_the_hover_toolbar_covers_no_button_nor_the_grid(page, server) -> None:  # type: ignore[no-untyped-def]
    open_grid(page, server)
    grid = e2e.grid(page)
    grid.hover()
    toolbar = page.locator('[data-testid="stElementToolbar"]').first
    expect(toolbar).to_be_visible()
    page.wait_for_timeout(500)  # it fades in
    bar, box = toolbar.bounding_box(), grid.bounding_box()
    assert bar is not None and box is not None
    assert bar["y"] + bar["height"] <= box["y"] + 1, (bar, box)  # wholly above the grid's header row
    controls = page.locator(
        '[data-testid="stMain"] button:visible, [data-testid="stMain"] [data-testid="stSelectbox"]:visible'
    )
    covered = []
    for k in range(controls.count()):
        control = controls.nth(k)
        found = control.bounding_box()
        inside = control.evaluate("e => !!e.closest('[data-testid=stElementToolbar]')")
        if found and not inside and overlaps(found, bar):
            covered.append(control.inner_text())
    assert covered == []  # the menus' buttons above and the page controls beside it stay clickable
    e2e.shot(page, "grid_view-hover_toolbar")


def test_the_grid_fills_the_window(page, server) -> None:  # type: ignore[no-untyped-def]
    open_grid(page, server)
    box = e2e.grid(page).bounding_box()
    assert box is not None
    assert box["height"] > 38 + 35 * 16  # more than the 16 rows it used to stop at
    assert box["y"] + box["height"] <= VIEWPORT["height"]  # and no taller than the window
    assert box["y"] + box["height"] >= VIEWPORT["height"] - 160  # down to near its bottom edge
    e2e.shot(page, "grid_view-fills_window")
