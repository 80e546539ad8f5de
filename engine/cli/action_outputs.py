"""`runsheet action results|save|documents|document|find`: what actions produced on records (results, Save to
Record, documents), and finding the record to run an action on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from engine import RunsheetError
from engine.cli.actions import action_app, open_library
from engine.cli.common import DEFAULT_WORKSPACE, Actor, JsonOption, WorkspaceOption, guard, out


@action_app.command("results")
def action_results(
    name: Annotated[str | None, typer.Argument(help="Only this action's results.")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign's.")] = None,
    row: Annotated[int | None, typer.Option("--row", help="Only this record's.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List results of actions run on records, newest first."""

    def body() -> None:
        found = open_library(workspace, actor).results(action=name, campaign=campaign, row_id=row, limit=limit)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="action results")
        for column in ("id", "action", "campaign", "row", "status", "credits", "finished", "by", "value"):
            table.add_column(column)
        for r in found:
            text = (r["value"] or r["error_message"] or "").replace("\n", " ")
            table.add_row(
                str(r["result_id"]),
                r["action"],
                str(r["campaign"]),
                str(r["row_id"]),
                r["status"],
                f"{r['credits'] or 0:g}",
                str(r["finished_at"])[:19],
                str(r["actor"]),
                escape(text[:50] + ("…" if len(text) > 50 else "")),
            )
        out.print(table)

    guard(body)


@action_app.command("save")
def action_save(
    result_id: int,
    field: Annotated[str, typer.Option("--to", help="The record field (notes appends a line).")] = "notes",
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Save to Record: put an action result into the record (a timeline entry marked AI generated)."""

    def body() -> None:
        saved = open_library(workspace, actor).save_result(result_id, field)
        out.print(f"saved result {result_id} of {saved['action']} to row {saved['row_id']}'s {field}")

    guard(body)


@action_app.command("documents")
def action_documents(
    name: Annotated[str | None, typer.Argument(help="Only this action's documents.")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign's.")] = None,
    row: Annotated[int | None, typer.Option("--row", help="Only this record's.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List the documents actions produced (meeting prep notes...)."""

    def body() -> None:
        found = open_library(workspace, actor).documents(action=name, campaign=campaign, row_id=row)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="documents")
        for column in ("id", "title", "action", "campaign", "row", "author", "created"):
            table.add_column(column)
        for d in found:
            table.add_row(
                str(d["document_id"]),
                escape(d["title"]),
                d["action"],
                str(d["campaign"]),
                str(d["row_id"]),
                str(d["author"]),
                str(d["created_at"])[:19],
            )
        out.print(table)

    guard(body)


@action_app.command("document")
def action_document(
    document_id: int,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this markdown file.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Print a document, or export it as a markdown file (an existing file is not overwritten)."""

    def body() -> None:
        found = open_library(workspace, actor).document(document_id)
        if output is None:
            typer.echo(found["body"])
            return
        try:
            with output.open("x", encoding="utf-8") as handle:
                handle.write(found["body"].rstrip("\n") + "\n")
        except FileExistsError:
            raise RunsheetError(f"{output} exists", hint="choose another file name, or remove it first") from None
        out.print(f"wrote document {document_id} to {output}")

    guard(body)


@action_app.command("find")
def action_find(
    campaign: str,
    text: str,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 10,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Find records of a campaign by row id, name, email or domain (for --record)."""

    def body() -> None:
        found = open_library(workspace, actor).find_records(campaign, text, limit)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        for record in found:
            shown = ", ".join(str(v) for k, v in record.items() if k != "row_id" and v not in (None, ""))
            out.print(f"{record['row_id']}: {escape(shown[:110])}", soft_wrap=True)
        if not found:
            out.print(f"no record of {campaign} matches {text!r}")

    guard(body)
