"""What the browser benches share (beside ui/browser.py's Chromium and grid gestures): a page, the page saved when
a measurement fails, a bare Streamlit page serving as a floor, and the load average and results file every bench
reports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ui.browser import CHROMIUM


def require_chromium(bench: str) -> None:
    """Stop `bench` with the fix when Debian's Chromium (never a downloaded browser) is missing."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"bench {bench} needs Debian's chromium (apt-get install chromium)")


def new_page(
    browser: Any, *, width: int = 1600, height: int = 1000, timeout_ms: int = 60_000, init_script: str | None = None
) -> Any:
    """A page of `browser` waiting up to `timeout_ms` for each step, running `init_script` (if any) in every
    document it loads."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(timeout_ms)
    if init_script is not None:
        page.add_init_script(script=init_script)
    return page


@contextmanager
def shot_on_failure(page: Any, path: Path) -> Iterator[None]:
    """When the block fails, save the page as the failure left it to `path` (and say where), then re-raise."""
    try:
        yield
    except Exception:
        path.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        print(f"  the page as the failure left it: {path}")
        raise


@contextmanager
def bare_streamlit(folder: Path, name: str, script: str) -> Iterator[str]:
    """Streamlit serving `script` alone (written to `folder`/`name`.py) on 127.0.0.1: the floor under a page of
    ours. Yields its URL; the server is stopped by its PID after the block."""
    from ui.server import _wait_until_up, free_port

    path = folder / f"{name}.py"
    path.write_text(script)
    port = free_port()
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(path), "--server.address", "127.0.0.1"]
            + ["--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def load_text(load: tuple[float, ...]) -> str:
    """The load averages (1, 5, 15 min) as printed beside the figures."""
    return ", ".join(f"{x:.2f}" for x in load)


def write_results(path: Path, figures: dict[str, Any]) -> None:
    """Write `figures` as JSON to `path` (bench/results/...) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"  written to {shown}")
