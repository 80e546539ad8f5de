"""The record page in a real browser (Debian's Chromium via Playwright, against `runsheet ui` on 127.0.0.1), on a
1,000,000-row campaign (bench/reactive_core's):

- open a record: navigation to `/record?campaign=bench&row=N` until its step cells are shown (target <= 1 s);
- run an offline action from the Run Action list until the result panel shows the result, done (target <= 1.5 s).

"Shown" is taken in the page: a function polled at every animation frame returns the page's clock when the text
awaited is in the element (the record's last step value in its Steps box; the result in the result panel with
its completion time); the figure is that moment minus when the navigation or the click was sent (one wall clock).
Each open is of another record, spread over the campaign; each run is on a record opened just before (untimed),
so the panel is that run's.

Baselines, measured in the same run: a bare Streamlit page with one line of text (no engine), its navigations
alternating with the record page's so both see the same load (the floor any Streamlit page pays here); and the
engine alone (`Campaign.page(rows=[N])`, `ActionLibrary.run`). The load average is printed and stored.
`BENCH_RECORD_ROWS` sets the size (default 1,000,000); `BENCH_RECORD_DIR`, a folder to build the workspace in once
and reuse on later runs (default: a temporary one, built each time).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browsing import (
    bare_streamlit,
    load_text,
    new_page,
    require_chromium,
    shot_on_failure,
    write_results,
)
from ui.browser import chromium

OPENS = 11
RUNS = 11
RESULTS = Path(__file__).parent / "results" / "record_page.json"
FAILURE_SHOT = Path(__file__).parent / "results" / "record_page-failure.png"
ACTION = "opener"
OPTIONS = {"prompt": "Write an opener to {{ first_name }} at {{ company }}"}  # the offline model: no key, no cost
FLOOR_TEXT = "floor page ready"
FLOOR_APP = f'import streamlit as st\n\nst.title("Record")\nst.markdown("{FLOOR_TEXT}")\n'

# Polled at every animation frame: the page's clock (ms since the epoch) once `selector` holds every one of
# `texts`, else null.
SHOWN = """
([selector, texts]) => {
  const found = document.querySelector(selector);
  if (!found) return null;
  const text = found.textContent;
  return texts.every(t => text.includes(t)) ? performance.timeOrigin + performance.now() : null;
}
"""


def shown_at(page: Any, selector: str, *texts: str) -> float:
    return float(page.wait_for_function(SHOWN, arg=[selector, list(texts)], polling="raf").json_value()) / 1000


def open_record(page: Any, url: str, row: int, last_step: str) -> float:
    page.goto("about:blank")
    started = time.time()
    page.goto(f"{url}/record?campaign=bench&row={row}")
    return shown_at(page, ".st-key-record-cells", last_step) - started


def open_floor(page: Any, url: str) -> float:
    page.goto("about:blank")
    started = time.time()
    page.goto(url)
    return shown_at(page, '[data-testid="stMain"]', FLOOR_TEXT) - started


def run_action(page: Any, url: str, row: int, last_step: str) -> float:
    open_record(page, url, row, last_step)
    button = page.locator(f".st-key-run-action-{ACTION} button")
    button.wait_for()
    started = float(page.evaluate("b => { const t = Date.now(); b.click(); return t; }", button.element_handle()))
    return shown_at(page, ".st-key-result-panel", "Done at", "[offline model] Write an opener") - started / 1000


def measure_browser(url: str, floor_url: str, rows: dict[int, str], runs: dict[int, str]) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"open_s": [], "floor_open_s": [], "run_s": []}
    with chromium() as browser:
        page = new_page(browser)
        with shot_on_failure(page, FAILURE_SHOT):
            first = next(iter(rows))
            open_record(page, url, first, rows[first])  # warm-up: the server's first script run imports the engine
            open_floor(page, floor_url)
            for row, last_step in rows.items():
                figures["open_s"].append(open_record(page, url, row, last_step))
                figures["floor_open_s"].append(open_floor(page, floor_url))
            for row, last_step in runs.items():
                figures["run_s"].append(run_action(page, url, row, last_step))
    return figures


def prepare(folder: Path, rows: int) -> tuple[dict[int, str], dict[int, str]]:
    """Add the offline action (resumed); the records to open and to run it on, each with its last step's text."""
    from engine import Workspace
    from ui import cells

    ws = Workspace(folder)
    library = ws.actions()
    if not [a for a in library.listed() if a["name"] == ACTION]:
        library.add(ACTION, "ai", dict(OPTIONS), category="personalization", description="An opener for one person")
        library.resume(ACTION)
    campaign = ws.campaign("bench")
    last = [c.name for c in campaign.spec.columns if not c.is_input][-1]
    step = max(rows // (OPENS + RUNS), 1)
    shift = time.time_ns() % max(step - 1, 1)  # a reused workspace: other records than last time (no cached result)
    chosen = [1 + shift + k * step for k in range(OPENS + RUNS)]
    found = {r: cells.short(campaign.page(rows=[r], columns=[last]).rows[0][last].value, 300) for r in chosen}
    items = list(found.items())
    return dict(items[:OPENS]), dict(items[OPENS:])


def measure_engine(folder: Path, rows: list[int]) -> dict[str, list[float]]:
    from engine import Workspace

    ws = Workspace(folder)
    campaign, library = ws.campaign("bench"), ws.actions()
    pages, runs = [], []
    for row in rows:
        started = time.perf_counter()
        campaign.page(rows=[row])
        pages.append(time.perf_counter() - started)
    for row in rows:
        started = time.perf_counter()
        library.run(ACTION, "bench", row + 1)
        runs.append(time.perf_counter() - started)
    return {"engine_open_s": pages, "engine_run_s": runs}


def main() -> None:
    from bench.reactive_core import build
    from ui.server import ui_server

    rows = int(os.environ.get("BENCH_RECORD_ROWS", "1000000"))
    require_chromium("record_page")
    kept = os.environ.get("BENCH_RECORD_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(kept or tmp) / "ws"
        started = time.perf_counter()
        if not (kept and folder.exists()):
            build(folder, rows)
        built = time.perf_counter() - started
        opens, runs = prepare(folder, rows)
        load_before = os.getloadavg()
        engine = measure_engine(folder, list(opens)[:OPENS])
        with (
            ui_server(folder, exit_after=900, user="bench") as url,
            bare_streamlit(Path(tmp), "floor_app", FLOOR_APP) as floor_url,
        ):
            browser = measure_browser(url, floor_url, opens, runs)
        load_after = os.getloadavg()
    figures = {**browser, **engine}
    summary = {name: {"median": statistics.median(v), "max": max(v)} for name, v in figures.items()}
    opened, ran, floor = summary["open_s"], summary["run_s"], summary["floor_open_s"]
    print(f"Record page in Chromium, {rows:,} records (built in {built:.0f} s)")
    print(
        f"  open a record to its step cells shown: median {opened['median']:.3f} s, max {opened['max']:.3f} s over "
        f"{OPENS} (target <= 1 s)"
    )
    print(
        f"  run an offline action to its result shown: median {ran['median']:.3f} s, max {ran['max']:.3f} s over "
        f"{RUNS} (target <= 1.5 s)"
    )
    print(
        f"  floor, a one-line Streamlit page (no engine), alternated with the opens: median {floor['median']:.3f} s, "
        f"max {floor['max']:.3f} s"
    )
    print(
        f"  engine only: one record's page {summary['engine_open_s']['median'] * 1000:.0f} ms, the action run "
        f"{summary['engine_run_s']['median'] * 1000:.0f} ms (median)"
    )
    before, after = load_text(load_before), load_text(load_after)
    print(f"  load average (1, 5, 15 min) before the measurements {before}, after {after}")
    write_results(
        RESULTS,
        {
            "rows": rows,
            "command": "./dev bench record_page",
            "load_average": {"before": load_before, "after": load_after},
            "summary": summary,
            "samples": figures,
        },
    )


if __name__ == "__main__":
    main()
