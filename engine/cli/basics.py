"""What the commands share that needs neither typer nor the engine: the console they print to and the default
workspace (engine/cli/status_command.py prints `runsheet status` without importing typer)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
DEFAULT_WORKSPACE = Path("workspace")
WORKSPACE_VARIABLE = "RUNSHEET_WORKSPACE"
