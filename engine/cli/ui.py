"""`runsheet ui`: serve the Streamlit grid for one workspace on 127.0.0.1.

Streamlit runs in this very process, so whoever started `runsheet ui` stops it by its PID; its one child, the warm
runner that runs clicks (engine/warm.py), stops with it (and by itself should this process die first).
`--exit-after` makes a server stop by itself, which tests and benchmarks use as a safety net.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from engine import NotFoundError
from engine.cli.common import DEFAULT_WORKSPACE, WorkspaceOption, app, guard

APP_SCRIPT = Path(__file__).resolve().parents[2] / "ui" / "app.py"


@app.command()
def ui(
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501,
    exit_after: Annotated[
        float | None, typer.Option("--exit-after", help="Stop the server by itself after this many seconds.")
    ] = None,
) -> None:
    """Open the grid in a browser: serves the Streamlit UI for the workspace on http://127.0.0.1:PORT."""

    def check() -> None:
        if not APP_SCRIPT.exists():
            raise NotFoundError(f"the UI is not installed next to the engine ({APP_SCRIPT})", hint="reinstall runsheet")

    guard(check)
    os.environ["RUNSHEET_WORKSPACE"] = str(Path(workspace).resolve())
    if exit_after is not None:
        # SIGTERM lets Streamlit shut its server down cleanly.
        timer = threading.Timer(exit_after, lambda: os.kill(os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
    typer.echo(f"Runsheet UI for {workspace}: http://127.0.0.1:{port}")
    from engine import WarmRunner

    # clicks go to this warm runner (engine and litellm imported) instead of a new process each
    runner = WarmRunner.start(os.environ["RUNSHEET_WORKSPACE"])
    try:
        serve(port)
    finally:
        runner.stop()


def serve(port: int) -> None:
    """Run `streamlit run ui/app.py` in this process, bound to 127.0.0.1 only, with no telemetry or file watcher."""
    import sys

    from streamlit.web import cli as streamlit_cli

    sys.argv = [
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--browser.serverAddress",
        "127.0.0.1",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--client.showErrorDetails",
        "none",
        "--theme.base",
        "light",
    ]
    streamlit_cli.main(prog_name="streamlit")
