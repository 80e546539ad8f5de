"""Import: a CSV, Parquet or JSON-lines file into a campaign, as one transaction.

The importer decides how to read the file (plan.py), reads it with DuckDB into `_staged` (staging.py), checks
it (types, key), adds the input columns the file brings through the campaign's spec, then writes (writer.py):
new records are appended and computed like `Campaign.add_rows`; with a key, records that match change only the
cells whose value differs, and those edits drive the reactivity rules exactly like `Campaign.set` (free steps
recompute, paid ones queue, manual ones go stale). Those runs are the caller's (`Campaign.import_file`): it
passes `after_write`, which the importer calls inside the same transaction once the records are written, so io
needs neither the campaign nor the run package. Anything that fails, including a killed process, leaves the
campaign as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from engine.errors import ImportError_
from engine.io.names import ROW_ID
from engine.io.plan import ImportOptions, plan_import
from engine.io.problems import (
    add_row_problems,
    count_problems,
    first_problems,
    resolve_lines,
    start_problems,
    write_rejects,
)
from engine.io.sniff import file_format
from engine.io.staging import ReadFailed, diagnose_csv, stage
from engine.io.writer import Changes, append_rows, match_rows, update_matched
from engine.store.catalog import CampaignTables, add_input_columns, load_campaign
from engine.store.database import Database
from engine.store.schema import literal, quote

Progress = Callable[[str], None]
SHOWN_ROWS = 5  # campaign rows named per repeated key
STAGES = ("reading", "checking", "writing", "computing", "committing")
Followed = TypeVar("Followed")


@dataclass(frozen=True)
class Written:
    """The records an import wrote, handed to `after_write`: the new row ids, with a key the matched rows whose
    inputs changed (None when nothing matched), and the input columns it created."""

    tables: CampaignTables
    inserted: range
    changes: Changes | None
    added: tuple[str, ...] = ()  # input columns the import created


@dataclass(frozen=True)
class ImportedFile:
    """What an import did to the records. `inserted` are the new row ids; `updated` rows had at least one changed
    input. The runs it set off are the caller's (engine/campaign.py's ImportReport adds them)."""

    campaign: str
    file: str
    format: str
    records: int
    inserted: range
    updated: int
    unchanged: int
    rejected: int
    rejects_file: Path | None
    added_columns: dict[str, str]
    columns: dict[str, str]
    updated_rows: tuple[int, ...]  # the rows counted in `updated`


def import_file(
    db: Database,
    campaign: str,
    path: str | Path,
    options: ImportOptions,
    after_write: Callable[[duckdb.DuckDBPyConnection, Written], Followed],
    progress: Progress | None = None,
) -> tuple[ImportedFile, Followed]:
    """Import `path` into `campaign` in one transaction; `after_write` runs in it once the records are written,
    and what it returns comes back beside the ImportedFile. See the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"no file at {path}", hint="check the path")
    fmt = file_format(path, options.format)
    step = progress or (lambda stage_name: None)
    rejects_tmp = _temporary(options.rejects) if options.rejects else None
    try:
        with db.transaction() as con:
            report, followed = _import(con, campaign, path, fmt, options, after_write, step, rejects_tmp)
    except ReadFailed as failed:
        listed = None if options.rejects is not None else _every_problem(db, campaign, path, fmt, options)
        raise (listed or _read_error(db, campaign, path, fmt, options, failed)) from failed.error
    except BaseException:
        if rejects_tmp is not None:
            rejects_tmp.unlink(missing_ok=True)
        raise
    if rejects_tmp is not None and options.rejects is not None:
        if report.rejected:
            os.replace(rejects_tmp, options.rejects)
        else:
            rejects_tmp.unlink(missing_ok=True)
    return report, followed


def _every_problem(db: Database, campaign: str, path: Path, fmt: str, options: ImportOptions) -> ImportError_ | None:
    """After the fast read failed on a bad line: read the file again keeping the lines the reader rejects, so the
    error lists every kind of problem in one pass (ragged lines, encoding, values of the wrong type, blank or
    repeated keys), by line. Nothing is written (the transaction is rolled back); None if nothing was found."""
    try:
        with db.transaction(commit=False) as con:
            _import(con, campaign, path, fmt, options, _nothing, lambda stage_name: None, None, check_only=True)
    except ImportError_ as listed:
        return listed
    except ReadFailed:
        return None
    return None


def _nothing(con: duckdb.DuckDBPyConnection, written: Written) -> None:
    return None


def _import(
    con: duckdb.DuckDBPyConnection,
    campaign: str,
    path: Path,
    fmt: str,
    options: ImportOptions,
    after_write: Callable[[duckdb.DuckDBPyConnection, Written], Followed],
    step: Progress,
    rejects_tmp: Path | None,
    *,
    check_only: bool = False,
) -> tuple[ImportedFile, Followed]:
    """The import on `con`; with `check_only`, the bad lines are kept to be listed and nothing is written."""
    step("reading")
    # The file is staged before the transaction begins: rows of a table created inside a transaction carry
    # provisional row ids, and a staged record's position in the file is its temp table row id.
    con.execute("COMMIT")
    try:
        tables = load_campaign(con, campaign)
        shape, mapping, key, types = plan_import(con, tables, path, fmt, options)
        start_problems(con)
        staged = stage(
            con,
            shape,
            mapping,
            types,
            keep_rejects=options.rejects is not None or check_only,
            max_line_size=options.max_line_size,
            unescape=options.unescape,
        )
    finally:
        con.execute("BEGIN TRANSACTION")
    step("checking")
    current = load_campaign(con, campaign)
    if current.spec.source != tables.spec.source:
        raise ImportError_(
            f"campaign '{campaign}' changed while {path.name} was being read",
            hint="import the file again",
        )
    _check_rows(con, tables, key, "row" if fmt == "parquet" else "line")
    rejected = count_problems(con)
    if rejected:
        resolve_lines(con, shape, list(staged.text_columns))
        if options.rejects is None:
            raise first_problems(con, path.name)
        con.execute("CREATE OR REPLACE TEMP TABLE _excluded AS SELECT n AS _n FROM _problems WHERE n IS NOT NULL")
    if check_only:
        raise ReadFailed(duckdb.Error("the lines the reader refused were not found again"))
    added = {c: staged.types[c] for c in mapping.new}
    if added:
        tables = add_input_columns(con, tables, added)
    step("writing")
    excluded = "_excluded" if rejected else None
    matched = match_rows(con, tables, key, excluded) if key else 0
    changes = update_matched(con, tables, [c for c in staged.types if c not in (key, ROW_ID)]) if matched else None
    inserted = append_rows(
        con, tables, [c for c in staged.types if c != ROW_ID], excluded=excluded, matched=matched > 0
    )
    step("computing")
    followed = after_write(con, Written(tables, inserted, changes, tuple(added)))
    if rejects_tmp is not None and rejected:
        write_rejects(con, rejects_tmp, list(staged.types))
    step("committing")
    updated = len(changes.rows) if changes is not None else 0
    imported = ImportedFile(
        campaign=campaign,
        file=str(path),
        format=fmt,
        records=staged.records,
        inserted=inserted,
        updated=updated,
        unchanged=matched - updated,
        rejected=rejected,
        rejects_file=options.rejects if rejected else None,
        added_columns=added,
        columns={h: c for h, c in mapping.columns.items()},
        updated_rows=tuple(changes.rows) if changes is not None else (),
    )
    return imported, followed


def _check_rows(con: duckdb.DuckDBPyConnection, tables: CampaignTables, key: str | None, unit: str) -> None:
    """Record the staged rows that cannot go in: a blank or repeated key, or a row id the campaign lacks."""
    if key is None:
        return
    k = quote(key)
    add_row_problems(
        con,
        f"{k} IS NULL OR trim({k}::VARCHAR) = ''",
        "key",
        f"'key column ''{key}'' is empty on {unit} {{line}}'",
    )
    add_row_problems(
        con,
        f"{k} IN (SELECT {k} FROM _staged WHERE {k} IS NOT NULL GROUP BY {k} HAVING count(*) > 1)",
        "key",
        f"'key column ''{key}'' repeats ' || {k}::VARCHAR || ' on {unit} {{line}} and other(s)'",
    )
    if key == ROW_ID:
        add_row_problems(
            con,
            f"{k} IS NOT NULL AND {k} NOT IN (SELECT row_id FROM {tables.rows_table})",
            "row",
            f"'campaign ''{tables.spec.name}'' has no row ' || {k}::VARCHAR || ' (on {unit} {{line}})'",
        )
    elif key in tables.tables:
        _check_campaign_key(con, tables, key, unit)


def _check_campaign_key(con: duckdb.DuckDBPyConnection, tables: CampaignTables, key: str, unit: str) -> None:
    """Record the staged rows whose key several campaign rows hold: an upsert touches only the row its key
    names, so such a record can go nowhere."""
    k = quote(key)
    table = tables.tables[key]
    con.execute(  # the repeated values first: listing every value's rows costs a million lists
        f"""CREATE OR REPLACE TEMP TABLE _key_repeats AS
            SELECT value AS _value, count(*) AS _count,
                   array_to_string(list(row_id ORDER BY row_id)[1:{SHOWN_ROWS}], ', ') AS _rows
            FROM {table}
            WHERE value IN (SELECT value FROM {table} GROUP BY value HAVING count(*) > 1)
              AND value IN (SELECT {k} FROM _staged)
            GROUP BY value"""
    )
    more = f"CASE WHEN r._count > {SHOWN_ROWS} THEN ', ...' ELSE '' END"
    error = (
        f"'key ''{key}'' value ' || {literal(chr(39))} || r._value::VARCHAR || {literal(chr(39))} "
        f"|| ' on {unit} {{line}} is held by ' || r._count || ' rows of campaign ''{tables.spec.name}'' "
        f"(rows ' || r._rows || {more} || ')'"
    )
    add_row_problems(
        con,
        f"_staged.{k} IN (SELECT _value FROM _key_repeats) AND _n NOT IN (SELECT n FROM _problems WHERE n IS NOT NULL)",
        "campaign_key",
        f"(SELECT {error} FROM _key_repeats r WHERE r._value = _staged.{k})",
    )


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _read_error(
    db: Database, campaign: str, path: Path, fmt: str, options: ImportOptions, failed: ReadFailed
) -> ImportError_:
    """Name the lines that made the fast read fail (read again, keeping rejects), or pass DuckDB's reason
    on."""
    with db.transaction() as con:
        tables = load_campaign(con, campaign)
    with duckdb.connect(":memory:") as scratch:
        shape, mapping, _, types = plan_import(scratch, tables, path, fmt, options)
    if shape.dialect is not None:
        try:
            diagnose_csv(shape, mapping, types, options.max_line_size)
        except ImportError_ as named:
            return named
    return ImportError_(f"cannot read {path.name}: {failed}", hint="check the file's format")


__all__ = ["STAGES", "ImportOptions", "ImportedFile", "Written", "import_file"]
