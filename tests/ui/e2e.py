"""Helpers for the end-to-end tests: the server (ui/server.py), the grid gestures (ui/browser.py) and the
screenshots every test saves under tests/ui/artifacts/ to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser
from playwright.sync_api import Page as BrowserPage

from ui.browser import CHROMIUM, FIRST_DATA_COLUMN, cell_text, chromium, grid, panel, select_cell, type_into_cell
from ui.server import ui_server

__all__ = [
    "CHROMIUM",
    "FIRST_DATA_COLUMN",
    "cell_text",
    "chromium",
    "grid",
    "panel",
    "select_cell",
    "type_into_cell",
    "ui_server",
]

ARTIFACTS = Path(__file__).parent / "artifacts"


def shot(page: BrowserPage, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def tab(
    browser: Browser, name: str, *, height: int, clipboard_for: str | None = None, timeout_ms: int = 60_000
) -> Iterator[BrowserPage]:
    """A page 1600 pixels wide in a context of its own (allowed the clipboard on `clipboard_for`, a URL), saved
    as `last-<name>.png` as the test left it, pass or fail."""
    context = browser.new_context(viewport={"width": 1600, "height": height})
    if clipboard_for is not None:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_for)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        yield page
    finally:
        shot(page, f"last-{name}")
        context.close()
