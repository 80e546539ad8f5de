"""Edits by hand on one record, on an open transaction: typing an input, pinning a step cell, confirming a pin,
and Save to Record (a step's current value copied into a field of the record, so later steps read it).

Each function changes cells only; the caller runs the edit request that makes the row's downstream react
(`Campaign.set`, `Campaign.confirm`, `Campaign.save_to_record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from engine.errors import EditError
from engine.graph.fate import CURRENT
from engine.spec import NAME_PATTERN, RESERVED
from engine.store.catalog import CampaignTables, add_input_columns
from engine.store.database import scalar
from engine.store.schema import STEP_COLUMNS
from engine.types import Status

NOTES = "notes"  # the record's free-text field: Save to Record appends `<column>: <value>` lines to it
NOTES_TYPE = "VARCHAR"


@dataclass(frozen=True)
class SavedField:
    """What Save to Record wrote: the field, its new value, and whether the field was created for it."""

    field: str
    value: Any
    created: bool
    changed: bool  # False when the value was already there (the same line at the end of the notes)


# What DuckDB raises when a value cannot take a column's type (a bad cast, a Python object it cannot bind).
CAST_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.NotImplementedException)


def cast_value(con: duckdb.DuckDBPyConnection, value: Any, value_type: str, column: str) -> Any:
    """`value` as DuckDB's `value_type`, or EditError naming the column and the type to give."""
    try:
        return scalar(con, f"SELECT $1::{value_type}", [value])
    except duckdb.Error as err:
        raise _not_valid(value, value_type, column) from err


def _not_valid(value: Any, value_type: str, column: str) -> EditError:
    return EditError(f"{value!r} is not a valid {value_type} for column '{column}'", hint=f"give a {value_type} value")


def write_input(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, column: str, value: Any
) -> str | None:
    """Set one input cell, the value cast to the column's type (EditError if it cannot be); returns its new value
    as text (what `cell_text` reads back). Updated in place when the cell exists, else inserted: the cast and the
    write in one statement, as an edit makes few and each is a call into DuckDB."""
    spec = tables.column(column)
    table = tables.tables[column]
    typed = f"$1::{spec.value_type}"
    try:
        written = con.execute(
            f"UPDATE {table} SET value = {typed} WHERE row_id = {int(row_id)} RETURNING value::VARCHAR", [value]
        ).fetchall()
        if not written:
            written = con.execute(
                f"INSERT INTO {table} VALUES ({int(row_id)}, {typed}) RETURNING value::VARCHAR", [value]
            ).fetchall()
    except CAST_ERRORS as err:
        raise _not_valid(value, spec.value_type, column) from err
    return written[0][0]  # type: ignore[no-any-return]


def pin(con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, column: str, value: Any) -> None:
    """Replace a step cell with a value typed by hand: it becomes `pinned` (unconfirmed, even if it was
    confirmed before), and recompute never overwrites it."""
    spec = tables.column(column)
    typed = cast_value(con, value, spec.value_type, column)
    table = tables.tables[column]
    where = f"row_id = {int(row_id)}"
    if scalar(con, f"SELECT count(*) FROM {table} WHERE {where}"):  # in place: the table keeps its row order
        fields = [n for n in STEP_COLUMNS.split(", ") if n not in ("row_id", "value", "status", "finished_at")]
        con.execute(
            f"UPDATE {table} SET value = $1::{spec.value_type}, status = 'pinned', finished_at = now(), "
            f"{', '.join(f'{n} = NULL' for n in fields)} WHERE {where}",
            [typed],
        )
    else:
        con.execute(
            f"INSERT INTO {table} (row_id, value, status, finished_at) "
            f"VALUES ({int(row_id)}, $1::{spec.value_type}, 'pinned', now())",
            [typed],
        )


def confirm_pin(con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, column: str) -> bool:
    """Mark a pinned cell `confirmed` (still pinned: recompute never overwrites it, Run Again unpins it), so
    exports may send it. False if it was confirmed already; EditError if it is not a cell edited by hand."""
    spec = tables.column(column)
    if spec.is_input:
        raise EditError(
            f"'{column}' is an input column: only step cells edited by hand are confirmed",
            hint="confirm a step cell you edited (`runsheet set` pins it)",
        )
    status = scalar(con, f"SELECT status FROM {tables.tables[column]} WHERE row_id = ?", [int(row_id)])
    if status == Status.CONFIRMED.value:
        return False
    if status != Status.PINNED.value:
        raise EditError(
            f"row {row_id}'s {column} is {status or 'empty'}, not a value edited by hand",
            hint=f"edit it first with `runsheet set {tables.spec.name} {row_id} {column} VALUE`, then confirm it",
        )
    con.execute(
        f"UPDATE {tables.tables[column]} SET status = 'confirmed', finished_at = now() WHERE row_id = ?",
        [int(row_id)],
    )
    return True


def save_to_record(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    row_id: int,
    column: str,
    field: str = NOTES,
    actor: str | None = None,
) -> tuple[CampaignTables, SavedField]:
    """Copy the current value of step cell (`row_id`, `column`) into the record: into `notes` as an appended
    line `<column>: <value>`, or into the input column `field`. A missing field is created as an input column
    (a new table, nothing altered). Returns the campaign (anew, if a column was added) and what was written."""
    text = _current_text(con, tables, row_id, column)
    return save_text(con, tables, row_id, column, text, field, tables.column(column).value_type, actor)


def save_text(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    row_id: int,
    label: str,
    text: str,
    field: str = NOTES,
    value_type: str = NOTES_TYPE,
    actor: str | None = None,
) -> tuple[CampaignTables, SavedField]:
    """Save `text` into the record: into `notes` as an appended line `<label>: <text>`, or into the input column
    `field` (created as `value_type` when missing). Returns the campaign (anew, if a column was added) and what
    was written."""
    created = field not in tables.spec.names
    if created:
        _check_new_name(field, tables)
        added = {field: NOTES_TYPE if field == NOTES else value_type}
        tables = add_input_columns(con, tables, added, actor=actor, origin="edit")
    target = tables.column(field)
    if not target.is_input:
        raise EditError(
            f"'{field}' is a step ({target.kind}), not a field of the record",
            hint=f"save into {NOTES}, an input column, or a new field name",
        )
    if field != NOTES:
        value = cast_value(con, text, target.value_type, field)
        old = scalar(con, f"SELECT value FROM {tables.tables[field]} WHERE row_id = ?", [int(row_id)])
        changed = created or old != value
    else:
        line = f"{label}: {text}"
        old = scalar(con, f"SELECT value::VARCHAR FROM {tables.tables[field]} WHERE row_id = ?", [int(row_id)])
        changed = not (old or "").rstrip("\n").endswith(line)  # saving the same result twice adds it once
        value = (line if not old else old.rstrip("\n") + "\n" + line) if changed else old
    if changed:
        write_input(con, tables, row_id, field, value)
    return tables, SavedField(field, value, created, changed)


def log_edit(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    run_id: int,
    action: str,
    column: str,
    row_id: int,
    who: tuple[str, str],
    changed: bool = True,
    values: tuple[str | None, str | None] = (None, None),
    action_id: int | None = None,
) -> None:
    """One activity row for an edit made by hand (an edit, Save to Record, confirm), beside the run it caused;
    `who` is (actor, trigger), `values` the cell's old and new value as text, and an edit that found the value
    already there is logged as `unchanged`."""
    con.execute(
        "INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, logged_at, actor, "
        "trigger, old_value, new_value, action_id) VALUES (?, ?, ?, ?, 1, ?, ?, now(), ?, ?, ?, ?, ?)",
        [
            run_id,
            tables.campaign_id,
            column,
            int(row_id),
            action,
            "done" if changed else "unchanged",
            *who,
            *values,
            action_id,
        ],
    )


def cell_text(con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, column: str) -> str | None:
    """A cell's value as text (None when it holds none), as the activity log records an edit's old and new."""
    tables.column(column)  # NotFoundError for a column the campaign lacks
    return scalar(con, f"SELECT value::VARCHAR FROM {tables.tables[column]} WHERE row_id = ?", [int(row_id)])


def _current_text(con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_id: int, column: str) -> str:
    spec = tables.column(column)
    if spec.is_input:
        raise EditError(
            f"'{column}' is an input column: it is part of the record already",
            hint="save a step column's result",
        )
    found = con.execute(
        f"SELECT status, value::VARCHAR FROM {tables.tables[column]} WHERE row_id = ?", [int(row_id)]
    ).fetchall()
    status, text = found[0] if found else (Status.EMPTY.value, None)
    run = f"`runsheet run -c {tables.spec.name} --column {column} --rows {row_id}`"
    if status not in {s.value for s in CURRENT}:
        raise EditError(
            f"row {row_id}'s {column} is {status}: only a current value (done, or edited by hand) can be saved",
            hint=f"run it first with {run}, or edit it by hand",
        )
    if text is None:
        raise EditError(f"row {row_id}'s {column} has no value to save", hint=f"run it first with {run}")
    return str(text)


def _check_new_name(field: str, tables: CampaignTables) -> None:
    if not NAME_PATTERN.match(field) or field in RESERVED:
        raise EditError(
            f"{field!r} cannot name a field of campaign '{tables.spec.name}'",
            hint="use letters, digits and underscores, starting with a letter (not row_id or context)",
        )
