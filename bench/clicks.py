"""Click to Run in a real browser (Debian's Chromium via Playwright, against `runsheet ui` on 127.0.0.1): from
the click on the cell panel's "Click to Run" button until the grid paints the cell's value, for one AI cell at a
time against the fake OpenAI-compatible provider (tests/support/fake_llm.py) answering after 200 ms.

- `warm`: the click goes to the warm runner `runsheet ui` started beside it (engine/warm.py). Targets: <= 1.0 s
  median on a litellm-transport column, <= 0.8 s on a direct-transport one.
- floor, measured in the same run and alternating with the clicks: one bare chat-completion request to the same
  provider (urllib, in this process): the provider's latency, what no click can beat.
- `spawned`: the same clicks with the warm runner stopped (by its PID, from its descriptor), so the UI falls
  back to spawning one `runsheet run` process per click: the path every click took before the warm runner.

"Painted" is taken as bench/ui_grid.py takes it: a script in the page notes when the grid draws exactly the
awaited text onto its visible canvas, then the next animation frame; the figure is that frame's time minus the
moment the click was sent (one wall clock). The value must then also be in the right cell of the grid's
accessible table. Each click is on a cell never run (its own prompt: no cache hit). The load average is printed
and stored with the figures (bench/results/clicks.json): they are wall-clock times on a shared machine.

Run: `.venv/bin/python -m bench clicks` (BENCH_CLICKS=N clicks per column and path, default 9 warm, 3 spawned).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC
from pathlib import Path
from typing import Any

from bench.browsing import load_text, new_page, require_chromium, shot_on_failure, write_results
from bench.ui_grid import SHOWN_PROBE
from ui.browser import chromium

RESULTS = Path(__file__).parent / "results" / "clicks.json"
FAILURE_SHOT = Path(__file__).parent / "results" / "clicks-failure.png"
KEY_ENV = "BENCH_PROVIDER_KEY"
LATENCY = 0.2
# The grid (step columns first): 0 checkbox, 1 row id, 2 lite, 3 direct, 4 company.
COLUMNS = {"lite": 2, "direct": 3}
X_OFFSETS = {"lite": 240, "direct": 520}  # their middles, in pixels from the grid's left edge (1600 px wide page)
SPEC = """
campaign: clicks
columns:
  - {{name: company, kind: input}}
  - name: lite
    kind: ai
    run: manual
    model: openai/fake-model
    api_base: {api_base}
    api_key_env: BENCH_PROVIDER_KEY
    transport: litellm
    tier: fast
    prompt: "Research {{{{ company }}}}"
  - name: direct
    kind: ai
    run: manual
    model: openai/fake-model
    api_base: {api_base}
    api_key_env: BENCH_PROVIDER_KEY
    transport: direct
    tier: fast
    prompt: "Look up {{{{ company }}}}"
"""
PROMPTS = {"lite": "Research", "direct": "Look up"}
CLICKS: list[tuple[str, float, float]] = []  # (path, clicked, painted), epoch seconds, in click order


def phases(workspace: Path) -> dict[str, list[float]]:
    """Where each click's time went, from its run row (one per click, in order): from the click until the run
    row was opened (the UI's rerun and the hand-over), the run itself, and from its end until the paint."""

    from engine import Workspace

    rows = [r for r in reversed(Workspace(workspace).runs(len(CLICKS) + 10)) if r["trigger"] == "ui"]
    found: dict[str, list[float]] = {}
    for (path, clicked, painted), run in zip(CLICKS, rows, strict=False):
        opened = run["started_at"].replace(tzinfo=UTC).timestamp()  # type: ignore[union-attr]
        ended = run["finished_at"].replace(tzinfo=UTC).timestamp()  # type: ignore[union-attr]
        found.setdefault(f"{path}_click_to_run_row_s", []).append(opened - clicked)
        found.setdefault(f"{path}_run_s", []).append(ended - opened)
        found.setdefault(f"{path}_run_end_to_paint_s", []).append(painted - ended)
    return {name: v for name, v in found.items() if not name.startswith("warm-up")}


def build(folder: Path, api_base: str, rows: int) -> None:
    from engine import Workspace

    ws = Workspace.init(folder)
    result = ws.apply(SPEC.format(api_base=api_base))
    for column in result.paused:  # new paid steps start paused: consent given here
        ws.resume(result.campaign, column, run=False)
    ws.campaign("clicks").add_rows([{"company": f"Company{n}"} for n in range(1, rows + 1)])
    ws.release()


def bare_call(api_base: str, n: int) -> float:
    """One chat completion straight to the provider: the floor under any click."""
    body = {"model": "fake-model", "messages": [{"role": "user", "content": f"floor {n} {time.time_ns()}"}]}
    request = urllib.request.Request(
        f"{api_base}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return time.perf_counter() - started


def click(page: Any, row: int, column: str, path: str) -> float:
    """Click to Run on (row, column) through the cell panel; seconds until the grid painted the value."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from ui.browser import grid, panel, wait_for_cell_text

    text = f"answer: {PROMPTS[column]} Company{row + 1}"
    position = COLUMNS[column]
    title = panel(page).get_by_text(f"{column} · row {row + 1}")
    for _ in range(20):  # a click landing while the app reruns (a run just ended) is lost: click again
        box = grid(page).bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + X_OFFSETS[column], box["y"] + 35 + 35 * row + 17)
        try:
            title.wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    button = panel(page).get_by_role("button", name=re.compile("Click to Run"))
    button.wait_for()
    page.evaluate("w => { window.__gridWatch = w; }", {"text": text, "cell": f"glide-cell-{position}-{row}"})
    started = time.time()
    button.click()
    found = "t => { const m = window.__gridShown[t]; return m && m.framed ? m : null; }"
    marks = page.wait_for_function(found, arg=text, timeout=120_000).json_value()
    wait_for_cell_text(page, row, position, text)  # in the right cell, not only somewhere on the canvas
    CLICKS.append((path, started, float(marks["framed"]) / 1000))
    return float(marks["framed"]) / 1000 - started


def measure(url: str, api_base: str, workspace: Path, warm: int, spawned: int) -> dict[str, list[float]]:
    from playwright.sync_api import expect

    from engine import WarmRunner

    expect.set_options(timeout=120_000)
    figures: dict[str, list[float]] = {
        name: [] for name in ("floor_s", "warm_lite_s", "warm_direct_s", "spawned_lite_s", "spawned_direct_s")
    }
    with chromium() as browser:
        page = new_page(browser, timeout_ms=120_000, init_script=SHOWN_PROBE.replace("WATCH", "null"))
        with shot_on_failure(page, FAILURE_SHOT):
            page.goto(url)
            expect(page.get_by_text("Company1", exact=True).first).to_be_attached()
            row = 0
            bare_call(api_base, -1)  # warm-up: the provider's first connection
            for k in range(warm + 1):
                for column in ("lite", "direct"):
                    seconds = click(page, row, column, "warm" if k else "warm-up")
                    if k:  # the first click of each column is a warm-up (the runner's first call of a transport)
                        figures[f"warm_{column}_s"].append(seconds)
                    figures["floor_s"].append(bare_call(api_base, row))
                row += 1
            runner = WarmRunner.find(workspace)
            if runner is not None and spawned:
                os.kill(runner.pid, signal.SIGTERM)  # clicks now spawn a process each, as before the runner
                while WarmRunner.find(workspace) is not None:
                    time.sleep(0.1)
            for _ in range(spawned):
                for column in ("lite", "direct"):
                    figures[f"spawned_{column}_s"].append(click(page, row, column, "spawned"))
                    figures["floor_s"].append(bare_call(api_base, row))
                row += 1
    return figures


def main() -> None:
    from tests.support.provider import start_provider
    from ui.server import ui_server

    require_chromium("clicks")
    warm = int(os.environ.get("BENCH_CLICKS", "9"))
    spawned = int(os.environ.get("BENCH_CLICKS_SPAWNED", "3"))
    os.environ.setdefault(KEY_ENV, "k")
    provider = start_provider(latency=LATENCY)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "ws"
            build(folder, provider.api_base, warm + spawned + 2)
            load_before = os.getloadavg()
            with ui_server(folder, exit_after=1200, user="bench") as url:
                figures = measure(url, provider.api_base, folder, warm, spawned)
            load_after = os.getloadavg()
            split = phases(folder)
    finally:
        provider.stop()
    summary = {name: {"median": statistics.median(v), "max": max(v)} for name, v in figures.items() if v}

    def line(name: str, what: str, target: str = "") -> None:
        if name in summary:
            figure = summary[name]
            print(
                f"  {what}: median {figure['median']:.3f} s, max {figure['max']:.3f} s over {len(figures[name])}"
                f"{target}"
            )

    print(f"Click to Run in Chromium until the value is painted, fake provider at {LATENCY * 1000:.0f} ms")
    line("warm_lite_s", "warm runner, litellm column", " (target <= 1.0 s)")
    line("warm_direct_s", "warm runner, direct column", " (target <= 0.8 s)")
    line("floor_s", "floor, a bare call to the provider, alternated with the clicks")
    line("spawned_lite_s", "before: a runsheet run process per click, litellm column")
    line("spawned_direct_s", "before: a runsheet run process per click, direct column")
    for path in ("warm", "spawned"):
        parts = [(name[len(path) + 1 : -2], v) for name, v in split.items() if name.startswith(f"{path}_")]
        if parts:
            print(
                f"  where a {path} click's time goes (medians, from its run row): "
                + ", ".join(f"{name.replace('_', ' ')} {statistics.median(v):.3f} s" for name, v in parts)
            )
    print(
        f"  load average (1, 5, 15 min) before the measurements {load_text(load_before)}, after {load_text(load_after)}"
    )
    write_results(
        RESULTS,
        {
            "provider_latency_s": LATENCY,
            "load_average": {"before": load_before, "after": load_after},
            "summary": summary,
            "samples": figures,
            "phases": split,
        },
    )


if __name__ == "__main__":
    main()
