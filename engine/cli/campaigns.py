"""The commands on a campaign's records and cells: init, apply (with --dry-run, --prune, --allow-lossy), history
purge, set, save (Save to Record), confirm, show (a page, or the rows --rows and --where pick), status, campaigns
(with rows and what is paused)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from engine import RunsheetError, SpecConflictError, Status
from engine.cli.common import (
    DEFAULT_WORKSPACE,
    Actor,
    CampaignOption,
    JsonOption,
    WorkspaceOption,
    app,
    guard,
    open_campaign,
    out,
    parse_rows,
    print_report,
    report_summary,
)
from engine.cli.status_command import resume_command
from engine.cli.status_command import show as show_status

if TYPE_CHECKING:
    from engine import ApplyResult, Campaign, Cell, Estimate, Page, SpecChanges


@app.command()
def init(
    path: Annotated[
        Path | None, typer.Argument(help="Folder to create (default: $RUNSHEET_WORKSPACE, else ./workspace).")
    ] = None,
) -> None:
    """Create a workspace folder (kept as it is if it exists)."""
    from engine import Workspace

    folder = path or Path(os.environ.get("RUNSHEET_WORKSPACE") or DEFAULT_WORKSPACE)
    guard(lambda: Workspace.init(folder))
    out.print(f"workspace ready at {folder}")


@app.command()
def apply(
    spec: Annotated[Path, typer.Argument(help="A campaign spec (YAML).")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change (and what would be refused); write nothing.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Drop every column the spec leaves out, with the values it holds.")
    ] = False,
    prune_column: Annotated[
        list[str] | None,
        typer.Option("--prune-column", help="Drop this column the spec leaves out, with its values (repeatable)."),
    ] = None,
    allow_lossy: Annotated[
        bool, typer.Option("--allow-lossy", help="Retype input columns even where stored values would change.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Apply even where it undoes changes made in the UI or the API since.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update a campaign from its spec; changed steps and their downstream become stale. Nothing that
    holds data is dropped unless pruned; new paid steps start paused. A file that would undo changes made in the
    UI or the API since the last file was applied is refused (with the diff) unless --force."""
    from engine import Workspace

    def body() -> None:
        pruning: bool | list[str] = True if prune else list(prune_column or [])
        ws = Workspace(workspace, actor=actor)
        try:
            result = ws.apply(
                spec,
                actor=ws.actor,
                prune=pruning,
                allow_lossy=allow_lossy,
                dry_run=dry_run,
                origin="file",
                force=force,
            )
        except SpecConflictError as conflict:
            if not as_json:
                out.print(escape(conflict.diff), end="")
            raise
        changes = result.changes
        summary = {
            "campaign": result.campaign,
            **changes.as_dict(),
            "dry_run": dry_run,
            "paused": result.paused,
            "paused_estimate": result.paused_estimate.as_dict() if result.paused_estimate else None,
            "estimate": result.estimate.as_dict() if result.estimate else None,
            "needs_confirmation": result.needs_confirmation,
        }
        if as_json:
            out.print_json(json.dumps(summary, default=str))
            return
        if dry_run:
            _print_changes(result.campaign, changes, dry_run)
            return
        print_applied(result)

    guard(body)


def print_applied(result: ApplyResult) -> None:
    """What an apply changed, what it ran, and what waits for you (new paid steps, consent over the threshold)."""
    _print_changes(result.campaign, result.changes, False)
    _print_paused(result.campaign, result.paused, result.paused_estimate)
    if result.report is not None and result.report.events:
        print_report(result.report, False)
    if result.paid_report is not None:
        print_report(result.paid_report, False)
    if result.needs_confirmation and result.estimate is not None:
        out.print(
            f"{result.estimate.calls} paid cells are out of date; re-running them would cost "
            f"{result.estimate.credits:g} credits, above the confirm threshold. To confirm: "
            f"runsheet run -c {result.campaign}"
        )


def _print_changes(campaign: str, changes: SpecChanges, dry_run: bool) -> None:
    if dry_run:
        verb = "would be created" if changes.created else ("unchanged" if changes.nothing else "would change")
        out.print(f"dry run: campaign {campaign} {verb} (nothing was written)")
    else:
        verb = "created" if changes.created else ("unchanged" if changes.nothing else "updated")
        out.print(f"campaign {campaign} {verb}")
    if changes.created:
        return
    lines = {
        "added": ", ".join(changes.added),
        "changed": ", ".join(changes.changed),
        "renamed": ", ".join(f"{old} -> {new}" for old, new in changes.renamed.items()),
        "retyped": ", ".join(
            f"{t.column} {t.old} -> {t.new}"
            + (f" ({t.changed_values} value(s) change, e.g. {t.example})" if t.changed_values else "")
            for t in changes.retyped
        ),
        "removed": ", ".join(
            f"{name} ({changes.pruned[name]} value(s) dropped)" if name in changes.pruned else f"{name} (empty)"
            for name in changes.removed
        ),
        "kept": ", ".join(f"{name} ({n} value(s))" for name, n in changes.kept.items())
        + ("; not in the spec, holds data; --prune removes" if changes.kept else ""),
    }
    for label, text in lines.items():
        if text:
            out.print(f"  {label}: {escape(text)}")
    for refusal in changes.refusals:
        out.print(f"  [red]refused[/]: {escape(str(refusal))}")
        if isinstance(refusal, SpecConflictError):
            out.print(escape(refusal.diff), end="")


def _print_paused(campaign: str, paused: list[str], estimate: Estimate | None) -> None:
    for column in paused:
        cost = next((c for c in estimate.columns if c.column == column), None) if estimate else None
        what = f"running it on {cost.calls} row(s) would cost about {cost.credits:g} credits; " if cost else ""
        out.print(
            f"  paused: {column} is a new paid step and waits for you: {what}"
            f"start it with `runsheet resume -c {campaign} --column {column}`"
        )


history_app = typer.Typer(help="The history (activity, export deliveries) of columns removed from a campaign.")
app.add_typer(history_app, name="history")


@history_app.command("purge")
def history_purge(
    column: Annotated[str, typer.Option("--column", help="A column no longer in the campaign.")],
    campaign: CampaignOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it, only show what would go.")] = False,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Delete the activity rows and export deliveries of a removed column (runs and credits stay). History is
    never deleted otherwise."""
    from engine import Workspace

    def body() -> None:
        name = open_campaign(workspace, campaign, actor=actor).name
        counts = Workspace(workspace, actor=actor).purge_history(name, column, confirm=yes)
        if as_json:
            out.print_json(json.dumps({"campaign": name, "column": column, "deleted": yes, "rows": counts}))
            return
        what = f"{counts['activity']} activity row(s) and {counts['outbox']} export deliver(ies) of {column}"
        out.print(f"deleted {what}" if yes else f"would delete {what}; add --yes to delete them")

    guard(body)


@app.command(name="set")
def set_(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    row: Annotated[int, typer.Argument(help="Row id (see `runsheet show`).")],
    column: Annotated[str, typer.Argument(help="Column name.")],
    value: Annotated[str, typer.Argument(help="New value; 'null' clears the cell.")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    no_run: Annotated[bool, typer.Option("--no-run", help="Queue paid auto steps instead of running them.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Edit one cell. Editing an input recomputes its row's downstream; editing a step cell pins it."""

    def body() -> None:
        typed: Any = None if value == "null" else value
        report = open_campaign(workspace, campaign, actor=actor).set(row, column, typed, run_paid=not no_run)
        print_report(report, as_json)

    guard(body)


CampaignArg = Annotated[str, typer.Argument(help="Campaign name.")]
RowArg = Annotated[int, typer.Argument(help="Row id (see `runsheet show`).")]
NoRun = Annotated[bool, typer.Option("--no-run", help="Queue paid auto steps instead of running them.")]


@app.command()
def save(
    campaign: CampaignArg,
    row: RowArg,
    column: Annotated[str, typer.Argument(help="The step column whose current value is saved.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The record field: notes (a line `COLUMN: value` is appended) or an input column; "
            "a missing one is created.",
        ),
    ] = "notes",
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    no_run: NoRun = False,
    as_json: JsonOption = False,
) -> None:
    """Save to Record: copy a step cell's current value into a field of the record, so later steps use it as
    context. It is an input edit: the row's downstream recomputes."""

    def body() -> None:
        handle = open_campaign(workspace, campaign, actor=actor)
        report = handle.save_to_record(row, column, to, run_paid=not no_run)
        value = handle.cell(row, to).value
        if as_json:
            out.print_json(json.dumps({"field": to, "value": value, **report_summary(report)}, default=str))
            return
        out.print(f"saved {column} of row {row} into {to}")
        if report.events:
            print_report(report, False)

    guard(body)


@app.command()
def confirm(
    campaign: CampaignArg,
    row: RowArg,
    column: Annotated[str, typer.Argument(help="A step column whose cell was edited by hand.")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    no_run: NoRun = False,
    as_json: JsonOption = False,
) -> None:
    """Confirm a step cell edited by hand: it stays pinned, and exports downstream (which wait on unconfirmed
    edits) may now send it. Editing it again makes it unconfirmed."""

    def body() -> None:
        report = open_campaign(workspace, campaign, actor=actor).confirm(row, column, run_paid=not no_run)
        if as_json:
            print_report(report, True)
            return
        out.print(f"confirmed {column} of row {row}")
        if report.events:
            print_report(report, False)

    guard(body)


def _paused_steps(workspace: Path, handle: Campaign) -> dict[str, str]:
    """The step columns that do not run now because they, or their campaign, are paused: the command that
    resumes each."""
    from engine import Workspace

    state = Workspace(workspace).pause_state(handle.name)
    graph = handle.spec.graph
    return {
        c: resume_command(handle.name, c, c in state.columns)
        for c in graph.steps()
        if state.stops(c, graph.nodes[c].free)
    }


def _cell_text(cell: Cell, manual: bool, paused: bool = False) -> str:
    value = "" if cell.value is None else str(cell.value)
    if len(value) > 40:
        value = value[:39] + "…"
    value = escape(value)
    status = cell.status
    if paused and status in (Status.EMPTY, Status.QUEUED):
        return "[dim]paused (runsheet resume)[/]"
    if status is Status.EMPTY:
        return "[cyan]Click to Run[/]" if manual else "[dim]queued soon[/]"
    if status is Status.STALE:
        if cell.value is None:  # e.g. skipped before, and its run_if now holds
            return "[cyan]Click to Run[/] [yellow](stale)[/]" if manual else "[yellow]stale[/]"
        return f"[yellow]{value} (stale)[/]"
    if status is Status.RUNNING:
        return "[blue]running…[/]"
    if status is Status.WAITING:
        return f"[dim]waiting on {cell.waiting_on}[/]"
    if status is Status.QUEUED:
        return "[dim]queued[/]"
    if status is Status.ERROR and cell.blocked_by:
        return f"[red]blocked by {escape(cell.blocked_by)}[/]"
    if status is Status.ERROR:
        return f"[red]{cell.error_code}: {escape(cell.error_hint or '')}[/]"
    if status is Status.NOT_FOUND:
        return "[dim]no data[/]"
    if status is Status.SKIPPED:
        return "[dim]skipped[/]"
    if status is Status.PAUSED:
        return "[dim]paused (runsheet resume)[/]"
    if status is Status.PINNED:
        return f"[magenta]{value} (edited)[/]"
    if status is Status.CONFIRMED:
        return f"[magenta]{value} (edited, confirmed)[/]"
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
    chosen: Annotated[str | None, typer.Option("--rows", help="Only these rows, e.g. 1-3,7.")] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help='Only rows where this SQL condition holds, e.g. "employees > 100".'),
    ] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Show a page of the grid with each cell's state: every row, or those --rows and --where pick (the
    condition runs in the read-only SQL sandbox, over the campaign's table as `runsheet query` sees it)."""

    def body() -> None:
        if offset < 0 or limit < 0:
            raise RunsheetError("--offset and --limit cannot be negative", hint="give 0 or more")
        handle = open_campaign(workspace, campaign, actor=actor)
        wanted = [c.strip() for c in columns.split(",")] if columns else None
        page = _picked_page(handle, offset, limit, wanted, parse_rows(chosen), where)
        if as_json:
            rows = [
                {"row_id": row_id, **{c: _cell_json(cell) for c, cell in row.items()}}
                for row_id, row in zip(page.row_ids, page.rows, strict=True)
            ]
            out.print_json(
                json.dumps({"total_rows": page.total_rows, "offset": page.offset, "rows": rows}, default=str)
            )
            return
        spec = handle.spec
        paused = set(_paused_steps(workspace, handle))
        picked = " picked" if chosen is not None or where is not None else ""
        shown = f"rows {offset + 1}-{offset + len(page.rows)}" if page.rows else "no rows"
        table = Table(title=f"{handle.name}: {shown} of {page.total_rows}{picked}")
        table.add_column("row", justify="right")
        for name in page.columns:
            table.add_column(f"{name} (paused)" if name in paused else name, overflow="fold")
        for row_id, row in zip(page.row_ids, page.rows, strict=True):
            table.add_row(
                str(row_id),
                *[_cell_text(row[c], spec.column(c).run == "manual", c in paused) for c in page.columns],
            )
        out.print(table)

    guard(body)


def _picked_page(
    handle: Campaign, offset: int, limit: int, columns: list[str] | None, rows: list[int] | None, where: str | None
) -> Page:
    """The page `show` prints: `total_rows` counts the rows picked (all of them without --rows and --where)."""
    from engine import Page

    if where is not None and not where.strip():
        raise RunsheetError(
            "--where is empty", hint='give a condition, e.g. --where "employees > 100", or leave it out'
        )
    if rows is None:
        return handle.page(offset, limit, columns=columns, where=where)
    ids = sorted(set(rows))
    handle.page(rows=ids, columns=[])  # every row named must exist (NotFoundError naming it), whatever is shown
    if where is not None:  # the rows the condition picks, then those of them --rows names
        matching = set(handle.page(0, handle.row_count(), columns=[], where=where).row_ids)
        ids = [r for r in ids if r in matching]
    found = handle.page(rows=ids[offset : offset + limit], columns=columns)
    return Page(found.columns, found.row_ids, found.rows, total_rows=len(ids), offset=offset)


@app.command()
def status(
    campaign: CampaignOption = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Count each step column's cells by state."""

    def body() -> None:
        from engine import CampaignStatus, read_status

        found = read_status(workspace, campaign) or CampaignStatus.of(open_campaign(workspace, campaign, actor=actor))
        show_status(found, as_json=as_json)

    guard(body)


@app.command()
def campaigns(actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False) -> None:
    """List the workspace's campaigns: rows, and whether the campaign or some of its steps are paused."""
    from engine import Workspace

    overview = guard(lambda: Workspace(workspace, actor=actor).campaign_overview())
    if as_json:
        out.print_json(json.dumps(overview))
        return
    if not overview:
        out.print("no campaign yet: apply a spec with `runsheet apply SPEC`")
        return
    table = Table(title="campaigns")
    table.add_column("campaign")
    table.add_column("rows", justify="right")
    table.add_column("paused")
    for found in overview:
        steps = found["paused_steps"]
        assert isinstance(steps, list)
        paused = "campaign" if found["paused"] else ""
        if steps:
            paused += ("; " if paused else "") + "steps: " + ", ".join(steps)
        table.add_row(escape(str(found["name"])), str(found["rows"]), escape(paused) or "no")
    out.print(table)
