"""The `runsheet` command line. It uses only the public API in `engine/__init__.py`.

Exit codes: 0 ok; 1 with a one-line reason for anything the user can fix; 2 for usage errors and engine bugs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine import Campaign, Cell, RunReport, RunsheetError, Status, Workspace

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Runsheet: reactive campaign tables.")
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", envvar="RUNSHEET_WORKSPACE", help="The workspace folder."),
]
CampaignOption = Annotated[
    str | None, typer.Option("--campaign", "-c", help="Campaign name (default: the only campaign).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_WORKSPACE = Path("workspace")
T = TypeVar("T")


def main() -> None:
    try:
        app()
    except RunsheetError as error:  # raised outside a command body (should not happen, but stay one line)
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)


def _guard(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one line and exit code 1."""
    try:
        return action()
    except RunsheetError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except Exception as error:
        typer.echo(f"internal error: {type(error).__name__}: {error}", err=True)
        if os.environ.get("RUNSHEET_DEBUG"):
            raise
        raise typer.Exit(2) from None


def _campaign(workspace: Path, name: str | None) -> Campaign:
    ws = Workspace(workspace)
    if name is None:
        names = ws.campaigns()
        if len(names) != 1:
            raise RunsheetError(
                "more than one campaign" if names else "the workspace has no campaign",
                hint="name one with --campaign" if names else "apply a spec with `runsheet apply SPEC`",
            )
        name = names[0]
    return ws.campaign(name, actor=os.environ.get("USER", "cli"), trigger="cli")


def _parse_rows(text: str | None) -> list[int] | None:
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


def _print_report(report: RunReport, as_json: bool) -> None:
    counts = {column: dict(outcomes) for column, outcomes in report.counts().items()}
    if as_json:
        out.print_json(json.dumps({"run_id": report.run_id, "counts": counts}))
        return
    if not counts:
        out.print(f"run {report.run_id}: nothing to do, every cell is up to date")
        return
    table = Table(title=f"run {report.run_id}")
    table.add_column("column")
    table.add_column("outcomes")
    for column, outcomes in counts.items():
        table.add_row(column, ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    out.print(table)


@app.command()
def init(
    path: Annotated[
        Path | None, typer.Argument(help="Folder to create (default: $RUNSHEET_WORKSPACE, else ./workspace).")
    ] = None,
) -> None:
    """Create a workspace folder (kept as it is if it exists)."""
    folder = path or Path(os.environ.get("RUNSHEET_WORKSPACE") or DEFAULT_WORKSPACE)
    _guard(lambda: Workspace.init(folder))
    out.print(f"workspace ready at {folder}")


@app.command()
def apply(
    spec: Annotated[Path, typer.Argument(help="A campaign spec (YAML).")],
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Create or update a campaign from its spec; changed steps and their downstream become stale."""

    def body() -> None:
        result = Workspace(workspace).apply(spec, actor=os.environ.get("USER", "cli"))
        changes = result.changes
        summary = {
            "campaign": result.campaign,
            "created": changes.created,
            "added": changes.added,
            "removed": changes.removed,
            "changed": changes.changed,
        }
        if as_json:
            out.print_json(json.dumps(summary))
            return
        verb = "created" if changes.created else ("unchanged" if changes.nothing else "updated")
        out.print(f"campaign {result.campaign} {verb}")
        for label in ("added", "removed", "changed"):
            if summary[label] and not changes.created:
                out.print(f"  {label}: {', '.join(summary[label])}")  # type: ignore[arg-type]
        if result.report is not None and result.report.events:
            _print_report(result.report, False)

    _guard(body)


@app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file whose columns are input columns.")],
    campaign: CampaignOption = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only load; compute nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Load records into a campaign; their auto-run formula steps compute at once, paid ones are queued."""

    def body() -> None:
        ids, report = _campaign(workspace, campaign).import_file(file, run=not no_run)
        if as_json:
            out.print_json(json.dumps({"rows": len(ids), "first_row": ids.start, "run_id": report.run_id}))
            return
        out.print(f"imported {len(ids)} rows" + (f" (rows {ids.start}-{ids.stop - 1})" if len(ids) else ""))
        _print_report(report, False)

    _guard(body)


@app.command(name="set")
def set_(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    row: Annotated[int, typer.Argument(help="Row id (see `runsheet show`).")],
    column: Annotated[str, typer.Argument(help="Column name.")],
    value: Annotated[str, typer.Argument(help="New value; 'null' clears the cell.")],
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    no_run: Annotated[bool, typer.Option("--no-run", help="Queue paid auto steps instead of running them.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Edit one cell. Editing an input recomputes its row's downstream; editing a step cell pins it."""

    def body() -> None:
        typed: Any = None if value == "null" else value
        report = _campaign(workspace, campaign).set(row, column, typed, run_paid=not no_run)
        _print_report(report, as_json)

    _guard(body)


@app.command()
def run(
    campaign: CampaignOption = None,
    column: Annotated[list[str] | None, typer.Option("--column", help="Run these columns (repeatable).")] = None,
    rows: Annotated[str | None, typer.Option("--rows", help="Only these rows, e.g. 1,2,10-12.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Only cells that are stale or queued.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run Again: recompute even fresh or pinned cells.")] = False,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Compute cells: by default every auto-run step's empty, stale and queued cells."""

    def body() -> None:
        report = _campaign(workspace, campaign).run(column or None, _parse_rows(rows), only_stale=stale, force=force)
        _print_report(report, as_json)

    _guard(body)


def _cell_text(cell: Cell, manual: bool) -> str:
    value = "" if cell.value is None else str(cell.value)
    if len(value) > 40:
        value = value[:39] + "…"
    value = escape(value)
    status = cell.status
    if status is Status.EMPTY:
        return "[cyan]Click to Run[/]" if manual else "[dim]queued soon[/]"
    if status is Status.STALE:
        return f"[yellow]{value} (stale)[/]"
    if status is Status.WAITING:
        return f"[dim]waiting on {cell.waiting_on}[/]"
    if status is Status.QUEUED:
        return "[dim]queued[/]"
    if status is Status.ERROR:
        return f"[red]{cell.error_code}: {escape(cell.error_hint or '')}[/]"
    if status is Status.NOT_FOUND:
        return "[dim]no data[/]"
    if status is Status.SKIPPED:
        return "[dim]skipped[/]"
    if status is Status.PINNED:
        return f"[magenta]{value} (edited)[/]"
    return value


def _cell_json(cell: Cell) -> dict[str, Any]:
    data = {"value": cell.value, "status": cell.status.value}
    for name in ("waiting_on", "error_code", "error_message", "error_hint"):
        if getattr(cell, name):
            data[name] = getattr(cell, name)
    return data


@app.command()
def show(
    campaign: CampaignOption = None,
    offset: Annotated[int, typer.Option(help="First row of the page.")] = 0,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 20,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to show.")] = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Show a page of the grid with each cell's state."""

    def body() -> None:
        handle = _campaign(workspace, campaign)
        wanted = [c.strip() for c in columns.split(",")] if columns else None
        page = handle.page(offset, limit, columns=wanted)
        if as_json:
            rows = [
                {"row_id": row_id, **{c: _cell_json(cell) for c, cell in row.items()}}
                for row_id, row in zip(page.row_ids, page.rows, strict=True)
            ]
            out.print_json(json.dumps({"total_rows": page.total_rows, "offset": page.offset, "rows": rows}, default=str))
            return
        spec = handle.spec
        table = Table(title=f"{handle.name}: rows {offset + 1}-{offset + len(page.rows)} of {page.total_rows}")
        table.add_column("row", justify="right")
        for name in page.columns:
            table.add_column(name, overflow="fold")
        for row_id, row in zip(page.row_ids, page.rows, strict=True):
            table.add_row(str(row_id), *[_cell_text(row[c], spec.column(c).run == "manual") for c in page.columns])
        out.print(table)

    _guard(body)


@app.command()
def status(
    campaign: CampaignOption = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Count each step column's cells by state."""

    def body() -> None:
        handle = _campaign(workspace, campaign)
        counts = handle.status_counts()
        if as_json:
            out.print_json(json.dumps({"campaign": handle.name, "rows": handle.row_count(), "columns": counts}))
            return
        states = [s.value for s in Status if any(s.value in c for c in counts.values())]
        table = Table(title=f"{handle.name}: {handle.row_count()} rows")
        table.add_column("column")
        for state in states:
            table.add_column(state, justify="right")
        for column, found in counts.items():
            table.add_row(column, *[str(found.get(state, "")) for state in states])
        out.print(table)

    _guard(body)


@app.command()
def campaigns(workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False) -> None:
    """List the workspace's campaigns."""
    names = _guard(lambda: Workspace(workspace).campaigns())
    if as_json:
        out.print_json(json.dumps(names))
    else:
        for name in names:
            out.print(name)


if __name__ == "__main__":
    main()
