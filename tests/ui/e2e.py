"""Helpers for the end-to-end tests: the server (ui/server.py), the grid gestures (ui/browser.py) and the
screenshots every test saves under tests/ui/artifacts/ to be looked at."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page as BrowserPage

from ui.browser import CHROMIUM, FIRST_DATA_COLUMN, cell_text, grid, panel, select_cell, type_into_cell
from ui.server import ui_server

__all__ = ["CHROMIUM", "FIRST_DATA_COLUMN", "cell_text", "grid", "panel", "select_cell", "type_into_cell", "ui_server"]

ARTIFACTS = Path(__file__).parent / "artifacts"


def shot(page: BrowserPage, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
