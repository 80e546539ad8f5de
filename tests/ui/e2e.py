"""Helpers for the end-to-end tests: a real `runsheet ui` server on 127.0.0.1 (a free port, stopped by its PID),
Debian's Chromium driven by Playwright, and the few gestures the grid needs (select a cell, read a cell)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator
from playwright.sync_api import Page as BrowserPage

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
# Column positions in the grid's canvas: 0 is the row checkbox, 1 the row id, then the campaign's columns.
FIRST_DATA_COLUMN = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ui_server(workspace: Path, *, exit_after: float = 600) -> Iterator[str]:
    """`runsheet ui` for `workspace` on a free port of 127.0.0.1; yields its URL, stops it by PID afterwards."""
    port = free_port()
    log = open(workspace.parent / f"ui-{port}.log", "wb")  # noqa: SIM115 (closed below)
    env = {**os.environ, "RUNSHEET_USER": "e2e", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "ui", "--workspace", str(workspace), "--port", str(port),
         "--exit-after", str(exit_after)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runsheet ui did not start:\n{Path(log.name).read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def grid(page: BrowserPage) -> Locator:
    return page.locator('[data-testid="stDataFrame"]').first


def cell_text(page: BrowserPage, row_position: int, column_position: int) -> Locator:
    """The grid cell's text, from the accessible table the canvas grid keeps in the DOM."""
    return page.locator(f"#glide-cell-{column_position}-{row_position}")


def select_cell(
    page: BrowserPage, row_position: int, column_position: int, first_data_column: int = FIRST_DATA_COLUMN
) -> None:
    """Click the row's first data cell, then arrow right to the column (the grid is a canvas); returns once the
    grid marks that cell selected. In edit mode there is no checkbox column: the first data column is 1."""
    box = grid(page).bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 130, box["y"] + 35 + 35 * row_position + 17)
    cell_text(page, row_position, first_data_column).and_(page.locator("[aria-selected=true]")).wait_for(state="attached")
    for _ in range(column_position - first_data_column):
        page.keyboard.press("ArrowRight")
    cell_text(page, row_position, column_position).and_(page.locator("[aria-selected=true]")).wait_for(state="attached")


def type_into_cell(page: BrowserPage, text: str) -> None:
    """Open the selected cell's editor, replace its text, commit."""
    page.keyboard.press("Enter")
    editor = page.locator("#portal textarea, .gdg-growing-entry textarea, textarea.gdg-input").first
    editor.wait_for()
    editor.fill(text)
    page.keyboard.press("Enter")


def panel(page: BrowserPage) -> Locator:
    return page.locator(".st-key-cell-panel")


def shot(page: BrowserPage, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
