"""What every `runsheet` command shares: the typer app, the console, common options, error handling."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from engine import RunsheetError
from engine.cli.basics import DEFAULT_WORKSPACE as DEFAULT_WORKSPACE  # the commands import it from here
from engine.cli.basics import WORKSPACE_VARIABLE, out

if TYPE_CHECKING:
    from engine import Campaign, RunReport

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Runsheet: reactive campaign tables.")


@app.callback()
def _commands() -> None:
    """Keeps `runsheet` a group of commands when one module alone has registered its commands (engine/cli/__init__.py):
    typer would otherwise run a lone command without its name."""


WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", envvar=WORKSPACE_VARIABLE, help="The workspace folder."),
]
CampaignOption = Annotated[
    str | None, typer.Option("--campaign", "-c", help="Campaign name (default: the only campaign).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Actor = Annotated[str | None, typer.Option("--as", help="Act as this user (default: $RUNSHEET_USER or $USER).")]
T = TypeVar("T")


def main() -> None:
    try:
        app()
    except RunsheetError as error:  # raised outside a command body (should not happen, but stay one line)
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)


def guard(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one line and exit code 1."""
    try:
        return action()
    except typer.Exit:  # a body's own exit code (click's Exit is an Exception: not an internal error)
        raise
    except RunsheetError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except Exception as error:
        typer.echo(f"internal error: {type(error).__name__}: {error}", err=True)
        if os.environ.get("RUNSHEET_DEBUG"):
            raise
        raise typer.Exit(2) from None


def open_campaign(workspace: Path, name: str | None, *, actor: str | None = None, trigger: str = "cli") -> Campaign:
    from engine import Workspace

    ws = Workspace(workspace, actor=actor)
    if name is None:
        names = ws.campaigns()
        if len(names) != 1:
            raise RunsheetError(
                "more than one campaign" if names else "the workspace has no campaign",
                hint="name one with --campaign" if names else "apply a spec with `runsheet apply SPEC`",
            )
        name = names[0]
    return ws.campaign(name, actor=ws.actor, trigger=trigger)


def parse_rows(text: str | None) -> list[int] | None:
    """'1,2,10-12' -> [1, 2, 10, 11, 12]."""
    if text is None:
        return None
    rows: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            rows.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise RunsheetError(f"--rows {text!r} is not a list of row ids", hint="write e.g. --rows 1,2,10-12") from None
    return rows


def report_summary(report: RunReport) -> dict[str, object]:
    """A run report as the JSON `--json` prints: run id, status, how it ended (and why), counts per column and
    outcome with their totals, credits."""
    return {
        "run_id": report.run_id,
        "status": report.status,
        "ending": report.ending(),
        "message": report.message,
        "counts": {column: dict(outcomes) for column, outcomes in report.counts().items()},
        "outcomes": dict(sorted(report.totals().items())),
        "credits": report.credits,
        "tokens": report.tokens,
        "cache_hits": report.cache_hits,
        "credits_saved": report.credits_saved,
    }


def describe_errors(counts: Mapping[str, int]) -> str:
    """{'provider_error': 146} -> '146 in error (provider_error 146)'."""
    return f"{sum(counts.values())} in error ({', '.join(f'{code} {n}' for code, n in counts.items())})"


def up_to_date(errors: Mapping[str, int], retry: str, what: str = "every cell") -> str:
    """'every cell is up to date', or, while cells in scope are in error, how many and how to retry them."""
    if not errors:
        return f"{what} is up to date"
    return f"{what} is up to date except {describe_errors(errors)}: retry them with `{retry}`"


def print_report(
    report: RunReport,
    as_json: bool,
    *,
    in_error: Mapping[str, int] | None = None,
    retry: str = "runsheet run --errors",
) -> None:
    """Print a run's outcomes. `in_error`: the cells of the run's scope still in error after it, by code (said
    with `retry`, the command that retries them, and under "in_error" in JSON)."""
    counts = {column: dict(outcomes) for column, outcomes in report.counts().items()}
    if as_json:
        summary = report_summary(report)
        out.print_json(json.dumps(summary if in_error is None else {**summary, "in_error": dict(in_error)}))
        return
    if not counts:
        out.print(f"run {report.run_id}: nothing to do, {up_to_date(in_error or {}, retry)}", soft_wrap=True)
        return
    table = Table(title=f"run {report.run_id}")
    table.add_column("column")
    table.add_column("outcomes")
    for column, outcomes in counts.items():
        table.add_row(column, ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    out.print(table)
    if report.status != "done":
        out.print(f"run {report.run_id} {report.status}")
    if report.message:
        out.print(f"run {report.run_id}: {report.message}")
    if report.credits or report.tokens or report.cache_hits:
        out.print(
            f"{report.credits:g} credits, {report.tokens:,} tokens; {report.cache_hits} answers from the cache "
            f"saved {report.credits_saved:g} credits"
        )
    if in_error:
        out.print(f"{describe_errors(in_error)}: retry them with `{retry}`", soft_wrap=True)
