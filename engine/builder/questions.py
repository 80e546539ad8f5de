"""The facts a question about an action is answered from: its spec and description, and for each record the
question names (`row 12`) the provenance of what the action gave it (its results on the record; with a campaign,
the cell of the column made from it, and for a skipped one its run_if with the values it read)."""

from __future__ import annotations

import re
from typing import Any

import duckdb

from engine.builder.proposal import spec_text
from engine.cells.base import StepOptions
from engine.errors import RunsheetError
from engine.graph.references import sql_references
from engine.run.adhoc import read_record
from engine.store.actions import StoredAction, read_results
from engine.store.catalog import CampaignTables

ROW = re.compile(r"\b(?:row|record)\s*#?\s*(\d+)", re.IGNORECASE)
MAX_ROWS = 5  # records named in one question that are looked up


def facts_about(
    con: duckdb.DuckDBPyConnection, action: StoredAction, tables: CampaignTables | None, question: str
) -> str:
    lines = [
        f"Action '{action.name}' ({action.kind} step, {'active' if action.active else 'paused'}).",
        f"Description: {action.description}",
        "Spec:",
        spec_text(action.kind, action.options, action.description).rstrip(),
    ]
    column = None if tables is None else column_of(tables, action)
    rows = [int(r) for r in ROW.findall(question)][:MAX_ROWS]
    for row_id in rows:
        lines.append(f"Record {row_id}:")
        found = read_results(con, action_id=action.action_id, row_id=row_id, limit=3)
        for result in found:
            lines.append(f"  an ad hoc run ({result['started_at']}): {_outcome(result)}")
        if column is not None and tables is not None:
            lines += _cell_facts(con, tables, column, row_id)
        if not found and column is None:
            lines.append("  the action has no result on this record")
    if not rows:
        counts = con.execute(
            "SELECT status, count(*) FROM action_results WHERE action_id = ? GROUP BY ALL ORDER BY ALL",
            [action.action_id],
        ).fetchall()
        if counts:
            lines.append("Its ad hoc results: " + ", ".join(f"{n} {status}" for status, n in counts))
    return "\n".join(lines)


def column_of(tables: CampaignTables, action: StoredAction) -> str | None:
    """The campaign column made from the action (`from_action`), or named as it is; None when there is none."""
    for column in tables.spec.source.get("columns", []):
        if column.get("from_action") == action.action_id or str(column.get("name", "")).lower() == action.name.lower():
            return str(column["name"])
    return None


def _outcome(found: dict[str, Any]) -> str:
    text = str(found.get("status"))
    if found.get("error_code"):
        text += f" ({found['error_code']}: {found.get('error_message') or ''})"
    elif found.get("error_message"):
        text += f" ({found['error_message']})"
    if found.get("value") is not None:
        value = str(found["value"])
        text += f", value: {value[:200]}"
    return text


def _cell_facts(con: duckdb.DuckDBPyConnection, tables: CampaignTables, column: str, row_id: int) -> list[str]:
    cell = con.execute(
        f"SELECT status, value, waiting_on, error_code, error_message FROM {tables.tables[column]} WHERE row_id = ?",
        [row_id],
    ).fetchall()
    if not cell:
        return [f"  column '{column}' of campaign '{tables.spec.name}': no cell (the record or its cell is missing)"]
    status, value, waiting_on, code, message = cell[0]
    found = {"status": status, "value": value, "error_code": code, "error_message": message}
    lines = [f"  column '{column}' of campaign '{tables.spec.name}': {_outcome(found)}"]
    if waiting_on:
        lines.append(f"  it waits on column '{waiting_on}'")
    options = tables.column(column).options
    if not isinstance(options, StepOptions):  # a column of the action is a step; an input has nothing more to say
        return lines
    run_if = options.run_if
    if status == "skipped" and run_if:
        try:
            read = sorted(sql_references(run_if) & set(tables.spec.names))
            values = read_record(con, tables, row_id, read).values
        except RunsheetError:
            values = {}
        shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        lines.append(f"  skipped because its run_if `{run_if}` is false for this record ({shown})")
    if options.required:
        lines.append(f"  required fields (an empty one gives missing_required_field): {', '.join(options.required)}")
    return lines
