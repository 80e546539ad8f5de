"""The grid in a real browser (Debian's Chromium via Playwright, against `runsheet ui` on 127.0.0.1):

- navigation to the first grid page of a 1,000,000-row campaign until its first cell is visible (target <= 1.5 s);
- an input edit typed into the grid until the downstream formula cell shows the new value (target <= 1 s).

Baselines, measured in the same run: reading the same page through the engine API (`Campaign.page`) and making
the same edit through it (`Campaign.set`); and navigating to a one-dataframe Streamlit app (50 rows, no engine),
the floor any Streamlit page pays on this machine (server session, websocket, the grid's first paint).
`BENCH_UI_ROWS` sets the size (default 1,000,000); the workspace is built by bench/reactive_core.build.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

NAVIGATIONS = 7
EDITS = 7
RESULTS = Path(__file__).parent / "results" / "ui_grid.json"
CHROMIUM = "/usr/bin/chromium"
# bench/reactive_core's SPEC, in the grid: 0 checkbox, 1 row id, 2 email, ..., 6 domain; edit mode drops the
# checkbox column, so there email is 1 and domain 5.
EMAIL, DOMAIN = 2, 6
EDIT_EMAIL, EDIT_DOMAIN = 1, 5


def measure_browser(url: str) -> dict[str, list[float]]:
    from playwright.sync_api import expect, sync_playwright

    from ui.browser import cell_text, grid, select_cell, wait_for_cell_text

    expect.set_options(timeout=60_000)
    navigation: list[float] = []
    edits: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)  # warm-up: the server's first script run imports the engine
        expect(cell_text(page, 0, EMAIL)).to_have_text("user0@company0.com")
        for _ in range(NAVIGATIONS):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(url)
            wait_for_cell_text(page, 0, EMAIL, "user0@company0.com")
            navigation.append(time.perf_counter() - started)
        page.get_by_text("Edit inputs").click()
        expect(page.get_by_text("Edit mode: type into input cells")).to_be_visible()
        expect(grid(page)).to_be_visible()
        for k in range(EDITS):
            row = 1 + k
            domain = f"edited{k}-{time.time_ns() % 100000}.example"
            select_cell(page, row, EDIT_EMAIL, first_data_column=EDIT_EMAIL)
            page.keyboard.press("Enter")
            editor = page.locator("#portal textarea, .gdg-growing-entry textarea, textarea.gdg-input").first
            editor.wait_for()
            editor.fill(f"someone@{domain}")
            started = time.perf_counter()
            page.keyboard.press("Enter")
            wait_for_cell_text(page, row, EDIT_DOMAIN, domain)
            edits.append(time.perf_counter() - started)
        browser.close()
    return {"navigation_s": navigation, "edit_s": edits}


TRIVIAL_APP = """
import pandas as pd
import streamlit as st

st.dataframe(pd.DataFrame({"email": [f"user{i}@company{i}.com" for i in range(50)]}))
"""


def measure_trivial_streamlit(folder: Path) -> list[float]:
    """Navigation to a bare Streamlit page showing one 50-row dataframe: the floor under the grid's figure."""
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright

    from ui.browser import wait_for_cell_text
    from ui.server import _wait_until_up, free_port

    script = folder / "trivial_app.py"
    script.write_text(TRIVIAL_APP)
    port = free_port()
    log = folder / "trivial.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    times: list[float] = []
    try:
        _wait_until_up(url, process, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            wait_for_cell_text(page, 0, 1, "user0@company0.com")
            for _ in range(NAVIGATIONS):
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(url)
                wait_for_cell_text(page, 0, 1, "user0@company0.com")
                times.append(time.perf_counter() - started)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=15)
    return times


def measure_engine(folder: Path) -> dict[str, list[float]]:
    from engine import Workspace

    campaign = Workspace(folder).campaign("bench")
    pages, edits = [], []
    for _ in range(NAVIGATIONS):
        started = time.perf_counter()
        campaign.page(0, 50)
        pages.append(time.perf_counter() - started)
    for k in range(EDITS):
        started = time.perf_counter()
        campaign.set(100 + k, "email", f"base{k}@baseline{time.time_ns() % 100000}.example")
        edits.append(time.perf_counter() - started)
    return {"engine_page_s": pages, "engine_edit_s": edits}


def main() -> None:
    from bench.reactive_core import build
    from ui.server import ui_server

    rows = int(os.environ.get("BENCH_UI_ROWS", "1000000"))
    if not Path(CHROMIUM).exists():
        raise SystemExit("bench ui_grid needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        started = time.perf_counter()
        build(folder, rows)
        built = time.perf_counter() - started
        engine = measure_engine(folder)
        with ui_server(folder, exit_after=900, user="bench") as url:
            browser = measure_browser(url)
        trivial = measure_trivial_streamlit(Path(tmp))
    figures = {**browser, **engine, "trivial_streamlit_navigation_s": trivial}
    summary = {name: {"median": statistics.median(v), "max": max(v)} for name, v in figures.items()}
    nav, edit = summary["navigation_s"], summary["edit_s"]
    print(f"UI grid in Chromium, {rows:,} records (built in {built:.0f} s), 12 columns, 50 rows per page")
    print(f"  navigation to first page visible: median {nav['median']:.3f} s, max {nav['max']:.3f} s "
          f"over {NAVIGATIONS} (target <= 1.5 s)")
    print(f"  input edit to downstream formula shown: median {edit['median']:.3f} s, max {edit['max']:.3f} s "
          f"over {EDITS} (target <= 1 s)")
    print(f"  baseline, a one-dataframe Streamlit page (no engine): navigation median "
          f"{summary['trivial_streamlit_navigation_s']['median']:.3f} s")
    print(f"  baseline, engine only: page {summary['engine_page_s']['median'] * 1000:.0f} ms, "
          f"edit {summary['engine_edit_s']['median'] * 1000:.0f} ms (median)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "summary": summary, "samples": figures}, indent=2) + "\n")
    print(f"  written to {RESULTS}")


if __name__ == "__main__":
    main()
