"""The commands that move data in and out: import, export, query."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from engine import ExportError, QueryError, RunsheetError
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
    print_report,
)

if TYPE_CHECKING:
    from engine import ImportReport

FORMATS = ("table", "csv", "json", "parquet")


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        name, sep, kind = value.partition("=")
        if not sep or not name.strip() or not kind.strip():
            raise RunsheetError(f"{option} {value!r} is not COLUMN=TYPE", hint=f"write e.g. {option} zip=VARCHAR")
        pairs[name.strip()] = kind.strip()
    return pairs


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the stage of long work, on a terminal only (scripts get clean output)."""
    if not out.is_terminal:
        yield lambda stage: None
        return
    with out.status(label) as status:
        yield lambda stage: status.update(f"{label}: {stage}")


@app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(help="A CSV, Parquet or JSON-lines file.")],
    campaign: CampaignOption = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    key: Annotated[str | None, typer.Option("--key", help="Column that identifies a record: update matches.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, parquet or json (default: from the name).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV field delimiter (default: sniffed).")] = None,
    quote: Annotated[str | None, typer.Option(help="CSV quote character (default: sniffed).")] = None,
    escape_char: Annotated[str | None, typer.Option("--escape", help="CSV escape character.")] = None,
    encoding: Annotated[str | None, typer.Option(help="utf-8, utf-16 or latin-1 (default: sniffed).")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="Whether row 1 names columns.")] = None,
    types: Annotated[list[str] | None, typer.Option("--type", help="COLUMN=TYPE for a new column.")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Leave this file column out.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Write bad rows here and import the rest.")] = None,
    max_line_size: Annotated[int | None, typer.Option(help="Longest CSV line allowed, in bytes.")] = None,
    no_new_columns: Annotated[bool, typer.Option("--no-new-columns", help="Refuse columns not in the spec.")] = False,
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not compute new rows' steps.")] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="CSV: keep a leading ' (do not undo export's formula escape).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load records into a campaign in one transaction. New file columns become input columns; with --key,
    matching records are updated and only changed inputs recompute downstream (paid steps are queued)."""

    def body() -> None:
        handle = open_campaign(workspace, campaign, actor=actor)
        with _progress(f"importing {file.name}") as progress:
            report = handle.import_file(
                file,
                key=key,
                run=not no_run,
                rejects=rejects,
                progress=progress,
                format=fmt,
                delimiter=delimiter,
                quote=quote,
                escape=escape_char,
                encoding=encoding,
                header=header,
                types=_pairs(types, "--type"),
                skip=tuple(skip or ()),
                max_line_size=max_line_size,
                add_columns=not no_new_columns,
                unescape=not raw,
            )
        _print_import(report, as_json)

    guard(body)


def _print_import(report: ImportReport, as_json: bool) -> None:
    ids = report.inserted
    if as_json:
        summary: dict[str, Any] = {
            "rows": len(ids),
            "first_row": ids.start,
            "run_id": report.new_rows_run.run_id,
            "records": report.records,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected,
            "rejects_file": str(report.rejects_file) if report.rejects_file else None,
            "added_columns": report.added_columns,
            "edit_run_id": report.edit_run.run_id if report.edit_run else None,
        }
        out.print_json(json.dumps(summary))
        return
    out.print(f"imported {len(ids)} rows" + (f" (rows {ids.start}-{ids.stop - 1})" if len(ids) else ""))
    if report.updated or report.unchanged:
        out.print(f"updated {report.updated} rows; {report.unchanged} unchanged")
    if report.rejected:
        out.print(f"rejected {report.rejected} rows: see {escape(str(report.rejects_file))}")
    if report.added_columns:
        added = ", ".join(f"{name} ({kind})" for name, kind in report.added_columns.items())
        out.print(
            f"added input columns: {added}; "
            "add them to the campaign's spec file too (an apply without them keeps them while they hold values)"
        )
    for run in report.runs:
        if run.events:
            print_report(run, False)


@app.command()
def export(
    campaign: CampaignOption = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default CAMPAIGN.FORMAT).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the name, else csv).")
    ] = None,
    where: Annotated[str | None, typer.Option(help="SQL condition over the campaign's columns.")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns (default: all).")] = None,
    with_state: Annotated[bool, typer.Option("--with-state", help="Add each step's status, error, credits.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="CSV: do not escape text that looks like a formula.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a campaign's values to a CSV or Parquet file, atomically (row_id first)."""

    def body() -> None:
        from engine import export_from_workspace

        chosen = fmt or (None if output is not None and output.suffix else "csv")
        wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
        options: dict[str, Any] = {"format": chosen, "columns": wanted, "where": where, "with_state": with_state}
        # DuckDB alone when it can answer (a second of imports less); the engine's way to the campaign otherwise
        report = export_from_workspace(workspace, campaign, output, escape=not raw, actor=actor, **options)
        if report is None:
            handle = open_campaign(workspace, campaign, actor=actor)
            report = handle.export(output or Path(f"{handle.name}.{chosen}"), escape=not raw, **options)
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "rows": report.rows,
                        "path": str(report.path),
                        "format": report.format,
                        "columns": report.columns,
                    }
                )
            )
        else:
            out.print(f"exported {report.rows} rows to {escape(str(report.path))}")

    guard(body)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT over the campaigns, cells, runs and activity.")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or parquet.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    timeout: Annotated[float, typer.Option(help="Stop the query after this many seconds.")] = 30.0,
    memory_limit: Annotated[str, typer.Option(help="Memory the query may use, e.g. 1GB.")] = "1GB",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
    raw: Annotated[bool, typer.Option("--raw", help="CSV: do not escape text that looks like a formula.")] = False,
) -> None:
    """Run read-only SQL in the sandbox: each campaign is a table named after it; `cells` has every step
    cell's status, error, credits and timing; `runs` and `activity` are the logs."""
    from engine import Workspace, frame_to_csv

    def body() -> None:
        if fmt not in FORMATS:
            raise QueryError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
        ws = Workspace(workspace, actor=actor)
        if output is not None and fmt in ("csv", "parquet"):
            rows = ws.query_to_file(sql, output, format=fmt, escape=not raw, timeout=timeout, memory_limit=memory_limit)
            out.print(f"wrote {rows} rows to {escape(str(output))}")
            return
        if fmt == "parquet":
            raise ExportError("parquet is written to a file", hint="add --output FILE.parquet")
        frame = ws.query(sql, timeout=timeout, memory_limit=memory_limit)
        if fmt == "table":
            _print_table(frame, limit)
            return
        text = (
            frame_to_csv(frame, escape=not raw)
            if fmt == "csv"
            else json.dumps(frame.to_dicts(), default=str, ensure_ascii=False)
        )
        if output is None:
            typer.echo(text, nl=fmt == "json")
            return
        temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, output)
        out.print(f"wrote {frame.height} rows to {escape(str(output))}")

    guard(body)


def _print_table(frame: Any, limit: int) -> None:
    table = Table(caption=f"{frame.height} rows" + (f", first {limit} shown" if frame.height > limit else ""))
    for name in frame.columns:
        table.add_column(escape(name), overflow="fold")
    for row in frame.head(limit).iter_rows():
        table.add_row(*["" if v is None else escape(str(v)) for v in row])
    out.print(table)
