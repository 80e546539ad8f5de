"""`runsheet status`'s output, and its command line read without typer when it is plain (issue 16).

`status` is a whole process with half a second to live, and typer alone takes a third of it before the first
query: importing typer, then pydantic, which typer 0.29 imports to coerce any option that is not a flag. So a
plain command line (the options below, each at most once, as `-c NAME`, `--campaign NAME` or `--campaign=NAME`)
is read here, and the status printed when DuckDB alone can read it (engine/status.py). Anything else goes to
typer as before and is read, reported or refused there: --help, an option that is not status's, a value that
starts with a dash, an empty value, a workspace or campaign the DuckDB read cannot answer for (no workspace, no
such campaign, a run marked running), or any error while reading (typer's path reads again and reports it).
tests/cli/test_status_command.py checks these options against typer's and the output of both paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.basics import DEFAULT_WORKSPACE, WORKSPACE_VARIABLE, out

if TYPE_CHECKING:
    from engine import CampaignStatus

# status's options as typer declares them (engine/cli/campaigns.py): option -> its parameter.
VALUED = {"-c": "campaign", "--campaign": "campaign", "--as": "actor", "-w": "workspace", "--workspace": "workspace"}
FLAGS = {"--json": "as_json"}


def parse(args: list[str]) -> dict[str, str | bool] | None:
    """The options given on a plain command line (see above); None for any other, which typer reads."""
    found: dict[str, str | bool] = {}
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if not name.startswith("--"):  # a short option's "=" is part of its value: typer's
            name, equals, value = name + equals + value, "", ""
        given: str | bool
        if name in FLAGS and not equals:
            key, given = FLAGS[name], True
        elif name in VALUED:
            if not equals and rest:
                value = rest.pop(0)
            if not value or value.startswith("-"):
                return None
            key, given = VALUED[name], value
        else:
            return None
        if key in found:
            return None
        found[key] = given
    return found


def quick(args: list[str]) -> int | None:
    """Print the status for `runsheet status ARGS` without typer (exit code 0); None when typer must answer."""
    options = parse(args)
    if options is None:
        return None
    workspace = Path(str(options.get("workspace") or os.environ.get(WORKSPACE_VARIABLE) or DEFAULT_WORKSPACE))
    campaign = options.get("campaign")
    from engine import read_status

    try:
        found = read_status(workspace, None if campaign is None else str(campaign))
    except Exception:  # typer's path reads again and reports it as every command reports errors
        return None
    if found is None:
        return None
    show(found, as_json=bool(options.get("as_json")))
    return 0


def show(found: CampaignStatus, *, as_json: bool) -> None:
    """Print a campaign's status: a table of each step's cells by state (or JSON), then what is paused."""
    if as_json:
        out.print_json(json.dumps({"campaign": found.campaign, "rows": found.rows, "columns": found.counts}))
        return
    from rich.table import Table

    from engine import Status

    states = [s.value for s in Status if any(s.value in c for c in found.counts.values())]
    table = Table(title=f"{found.campaign}: {found.rows} rows")
    table.add_column("column")
    for state in states:
        table.add_column(state, justify="right")
    for column, cells in found.counts.items():
        table.add_row(column, *[str(cells.get(state, "")) for state in states])
    out.print(table)
    for column, own in found.paused.items():
        out.print(f"{column} is paused: start it with `{resume_command(found.campaign, column, own)}`")


def resume_command(campaign: str, column: str, own: bool) -> str:
    """The command that starts a paused step again: resuming it (`own`, paused on its own) or its campaign."""
    return f"runsheet resume -c {campaign}" + (f" --column {column}" if own else "")
