"""Playwright gestures on the grid, shared by the browser tests and bench/: find the grid, read a cell, select a
cell, type into one. The grid is a canvas; its accessible table (`#glide-cell-COL-ROW`) is how cells are read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator
    from playwright.sync_api import Page as BrowserPage

CHROMIUM = "/usr/bin/chromium"
# Column positions in the grid's canvas: 0 is the row checkbox, 1 the row id, then the campaign's columns.
FIRST_DATA_COLUMN = 2


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a downloaded browser), closed after the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def grid(page: BrowserPage) -> Locator:
    return page.locator('[data-testid="stDataFrame"]').first


def cell_text(page: BrowserPage, row_position: int, column_position: int) -> Locator:
    """The grid cell's text, from the accessible table the canvas grid keeps in the DOM."""
    return page.locator(f"#glide-cell-{column_position}-{row_position}")


def wait_for_cell_text(page: BrowserPage, row_position: int, column_position: int, text: str) -> None:
    """Return once a grid shows `text` in that cell (while the grid is redrawn, two may be in the page)."""
    cell_text(page, row_position, column_position).filter(has_text=text).first.wait_for(state="attached")


def select_cell(
    page: BrowserPage, row_position: int, column_position: int, first_data_column: int = FIRST_DATA_COLUMN
) -> None:
    """Click the row's first data cell, then arrow right to the column (the grid is a canvas); returns once the
    grid marks that cell selected. In edit mode there is no checkbox column: the first data column is 1.

    A click on a cell that is already selected opens its editor (after an edit, Enter leaves the cell below
    selected); that editor is closed again, so the caller finds the cell selected and not being edited."""
    box = grid(page).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 130, box["y"] + 35 + 35 * row_position + 17)
    selected = page.locator("[aria-selected=true]")
    cell_text(page, row_position, first_data_column).and_(selected).wait_for(state="attached")
    if editor(page).count():  # opened by the click, in the same frame; the accessible table shows later
        page.keyboard.press("Escape")
        editor(page).wait_for(state="detached")
    for _ in range(column_position - first_data_column):
        page.keyboard.press("ArrowRight")
    cell_text(page, row_position, column_position).and_(selected).wait_for(state="attached")


def editor(page: BrowserPage) -> Locator:
    """The text box of the cell being edited (the grid opens it over the canvas)."""
    return page.locator("#portal textarea, .gdg-growing-entry textarea, textarea.gdg-input").first


def type_into_cell(page: BrowserPage, text: str) -> None:
    """Open the selected cell's editor, replace its text, commit."""
    page.keyboard.press("Enter")
    editor(page).wait_for()
    editor(page).fill(text)
    page.keyboard.press("Enter")


def panel(page: BrowserPage) -> Locator:
    return page.locator(".st-key-cell-panel")
