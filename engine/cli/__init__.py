"""The `runsheet` command line. It uses only the public API in `engine/__init__.py`.

Exit codes: 0 ok; 1 with a one-line reason for anything the user can fix; 2 for usage errors and engine bugs.
Each module registers its commands on the shared typer app.
"""

from __future__ import annotations

from engine.cli import (
    account,  # noqa: F401  (registers context, credits, settings)
    campaigns,  # noqa: F401  (registers the commands)
    data,  # noqa: F401  (registers import, export, query)
    log,  # noqa: F401  (registers `runsheet log`)
    runs,  # noqa: F401  (registers run, stop, runs)
    serve,  # noqa: F401  (registers serve, users, token, schedule, pause, resume)
    specs,  # noqa: F401  (registers `runsheet spec history|export`)
    ui,  # noqa: F401  (registers `runsheet ui`)
)
from engine.cli.common import app, main

__all__ = ["app", "main"]
