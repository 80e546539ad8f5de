"""The builder chat panel in a real browser (Debian's Chromium via Playwright, against `runsheet ui` on 127.0.0.1),
on the offline model: a request typed in the grid's panel and sent, until the new proposal is shown with its
preview. "Shown" is taken in the page: a function polled at every animation frame returns the page's clock once
the proposal box names a proposal newer than the last and the chat holds the request; the figure is that moment
minus when the click on Send was made (one wall clock).

Baseline, measured in the same run and alternated with the browser's turns so both see the same load: the
engine's own turn (`ActionBuilder.turn`, the same request and campaign, on another action's chat). The panel's
overhead per turn is the difference. The load average is printed and stored.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.browsing import load_text, new_page, require_chromium, shot_on_failure, write_results
from ui.browser import chromium

TURNS = 9
ROWS = 200
RESULTS = Path(__file__).parent / "results" / "builder_panel.json"
FAILURE_SHOT = Path(__file__).parent / "results" / "builder_panel-failure.png"
SPEC = """
campaign: people
columns:
  - {name: full_name, kind: input}
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
"""
REQUESTS = (
    "Score each lead 1-10 against our ideal customer profile and give the reasons",
    "Draft a LinkedIn connection note for each person",
    "Summarise what we know about the person and the company",
)

# Polled at every animation frame: the page's clock (ms since the epoch) once the proposal box names a proposal
# numbered above `after` and the chat holds `request`, else null.
SHOWN = """
([after, request]) => {
  const box = document.querySelector('.st-key-builder-proposal');
  const chat = document.querySelector('.st-key-builder-history');
  if (!box || !chat || !chat.textContent.includes(request)) return null;
  const found = box.textContent.match(/Proposal #(\\d+)/);
  if (!found || Number(found[1]) <= after || !box.textContent.includes('Preview on sample rows')) return null;
  return performance.timeOrigin + performance.now();
}
"""
NUMBER = "() => Number((document.querySelector('.st-key-builder-proposal')?.textContent.match(/#(\\d+)/) || [0, 0])[1])"


def browser_turn(page: Any, request: str) -> float:
    after = int(page.evaluate(NUMBER))
    page.locator(".st-key-builder-grid textarea").fill(request)
    button = page.locator(".st-key-builder-grid button", has_text="Send")
    started = float(page.evaluate("b => { const t = Date.now(); b.click(); return t; }", button.element_handle()))
    shown = page.wait_for_function(SHOWN, arg=[after, request], polling="raf").json_value()
    return float(shown) / 1000 - started / 1000


def engine_turn(folder: Path, request: str) -> float:
    from engine import Workspace

    builder = Workspace(folder).builder(trigger="bench")
    started = time.perf_counter()
    builder.turn("engine_only", request, campaign="people")
    return time.perf_counter() - started


def measure(folder: Path, url: str) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"panel_turn_s": [], "engine_turn_s": []}
    with chromium() as browser:
        page = new_page(browser, height=1200)
        with shot_on_failure(page, FAILURE_SHOT):
            page.goto(f"{url}/?campaign=people")
            page.get_by_role("button", name="Chat").click()
            page.get_by_label("New action").fill("panel_bench")
            page.get_by_label("New action").press("Enter")
            page.get_by_role("button", name="Build with chat").click()
            page.locator(".st-key-builder-grid").wait_for()
            page.keyboard.press("Escape")
            browser_turn(page, "warm-up: " + REQUESTS[0])  # the server's first builder call imports its modules
            engine_turn(folder, REQUESTS[0])
            for k in range(TURNS):
                request = f"{REQUESTS[k % len(REQUESTS)]} (turn {k})"
                figures["panel_turn_s"].append(browser_turn(page, request))
                figures["engine_turn_s"].append(engine_turn(folder, request))
    return figures


def main() -> None:
    from engine import Workspace
    from ui.server import ui_server

    require_chromium("builder_panel")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        ws = Workspace.init(folder)
        ws.apply(SPEC)
        rows = [{"full_name": f"Person {i}", "email": f"p{i}@co{i}.com", "company": f"Co {i}"} for i in range(ROWS)]
        ws.campaign("people").add_rows(rows)
        load_before = os.getloadavg()
        with ui_server(folder, exit_after=900, user="bench") as url:
            figures = measure(folder, url)
        load_after = os.getloadavg()
    summary = {name: {"median": statistics.median(v), "max": max(v)} for name, v in figures.items()}
    overhead = [a - b for a, b in zip(figures["panel_turn_s"], figures["engine_turn_s"], strict=True)]
    summary["panel_overhead_s"] = {"median": statistics.median(overhead), "max": max(overhead)}
    panel, engine = summary["panel_turn_s"], summary["engine_turn_s"]
    print(f"Builder panel in Chromium, offline model, a campaign of {ROWS} records, {TURNS} turns")
    print(f"  Send to the proposal shown with its preview: median {panel['median']:.3f} s, max {panel['max']:.3f} s")
    print(f"  the engine's turn alone, alternated: median {engine['median']:.3f} s, max {engine['max']:.3f} s")
    print(f"  the panel's overhead per turn (difference, paired): median {summary['panel_overhead_s']['median']:.3f} s")
    print(f"  load average (1, 5, 15 min) before {load_text(load_before)}, after {load_text(load_after)}")
    write_results(
        RESULTS,
        {
            "rows": ROWS,
            "command": "nice .venv/bin/python -m bench builder_panel",
            "load_average": {"before": load_before, "after": load_after},
            "summary": summary,
            "samples": {**figures, "panel_overhead_s": overhead},
        },
    )


if __name__ == "__main__":
    main()
