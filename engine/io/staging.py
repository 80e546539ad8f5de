"""The file, as DuckDB reads it, exposed to the importer as the temp view `_staged`.

`_staged` has `_n` (the record's position in the file, from 0) and one column per mapped file column, named
after its campaign column and already of that column's type. The file is read by DuckDB, never row by row in
Python: CSV and JSON into a temp table once; Parquet is scanned in place, column by column, as each statement
needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from engine.io.names import ColumnMap
from engine.io.problems import add_row_problems, collect_reader_rejects, first_problems, start_problems
from engine.io.sniff import FileShape, first_line
from engine.store.database import scalar
from engine.store.schema import literal, quote


class ReadFailed(Exception):
    """DuckDB refused the file on the fast path; the transaction is lost, so the caller diagnoses it
    afresh."""

    def __init__(self, error: duckdb.Error) -> None:
        super().__init__(first_line(error))
        self.error = error


@dataclass(frozen=True)
class Staged:
    """What was staged: the target columns with their types, and how many records the file held."""

    types: dict[str, str]  # campaign column -> DuckDB type, in file order (row_id included when present)
    records: int  # records in the file, including those the reader rejected


def stage(
    con: duckdb.DuckDBPyConnection,
    shape: FileShape,
    mapping: ColumnMap,
    types: dict[str, str],
    *,
    keep_rejects: bool,
    max_line_size: int | None,
) -> Staged:
    """Read the file and create `_staged`. `types` gives each target column's type. With `keep_rejects`, bad
    CSV lines go to `_problems` instead of failing the read; cast failures of Parquet and JSON values always
    do."""
    if shape.dialect is not None:
        return _stage_csv(con, shape, mapping, types, keep_rejects=keep_rejects, max_line_size=max_line_size)
    source = shape.reader_sql()
    if shape.format == "parquet":
        base = f"read_parquet({literal(str(shape.path))}, file_row_number=true)"
        raw = f"SELECT file_row_number AS _n, * EXCLUDE (file_row_number) FROM {base}"
        ordinal = "file_row_number"
    else:
        _run_read(con, f"CREATE OR REPLACE TEMP TABLE _import AS SELECT * FROM {source}")
        base, raw, ordinal = "_import", "SELECT rowid AS _n, * FROM _import", "rowid"
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS {raw}")
    selects = [f"{ordinal} AS _n"]
    for header, column in mapping.columns.items():
        wanted, found = types[column], shape.types[header]
        selects.append(
            (quote(header) if wanted == found else f"TRY_CAST({quote(header)} AS {wanted})")
            + f" AS {quote(column)}"
        )
        if wanted != found:
            add_row_problems(
                con,
                f"{quote(header)} IS NOT NULL AND TRY_CAST({quote(header)} AS {wanted}) IS NULL",
                "cast",
                f"'column ''{column}'' has values that are not {wanted}: ' || {quote(header)}::VARCHAR "
                f"|| ' on {_unit(shape)} {{line}}'",
                source="_raw",
            )
    con.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT {', '.join(selects)} FROM {base}")
    records = int(scalar(con, f"SELECT count(*) FROM {base}"))
    return Staged({c: types[c] for c in mapping.columns.values()}, records)


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    shape: FileShape,
    mapping: ColumnMap,
    types: dict[str, str],
    *,
    keep_rejects: bool,
    max_line_size: int | None,
) -> Staged:
    assert shape.dialect is not None
    names, forced = [], {}
    for i, header in enumerate(shape.headers):
        column = mapping.columns.get(header)
        name = column if column is not None else f"_skipped_{i}"
        names.append(name)
        forced[name] = types[column] if column is not None else "VARCHAR"
    reader = shape.dialect.reader_sql(shape.path, forced, rejects=keep_rejects, max_line_size=max_line_size)
    _run_read(con, f"CREATE OR REPLACE TEMP TABLE _import AS SELECT * FROM {reader}")
    rejected = 0
    if keep_rejects:
        collect_reader_rejects(con, forced, shape.dialect.encoding)
        rejected = int(scalar(con, "SELECT count(*) FROM _problems WHERE n IS NULL"))
    columns = [c for c in names if not c.startswith("_skipped_")]
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT rowid AS _n, {', '.join(quote(c) for c in columns)} "
        "FROM _import"
    )
    records = int(scalar(con, "SELECT count(*) FROM _import")) + rejected
    return Staged({c: forced[c] for c in columns}, records)


def _run_read(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as err:
        raise ReadFailed(err) from err


def _unit(shape: FileShape) -> str:
    return "row" if shape.format == "parquet" else "line"


def diagnose_csv(shape: FileShape, types: dict[str, str], max_line_size: int | None) -> None:
    """After the fast read failed: read again in a scratch database, keeping rejects, to name the bad
    lines."""
    assert shape.dialect is not None
    with duckdb.connect(":memory:") as scratch:
        start_problems(scratch)
        reader = shape.dialect.reader_sql(shape.path, types, rejects=True, max_line_size=max_line_size)
        scratch.execute(f"CREATE TABLE _every_field AS SELECT * FROM {reader}")  # count(*) would parse none
        collect_reader_rejects(scratch, types, shape.dialect.encoding)
        if scalar(scratch, "SELECT count(*) FROM _problems"):
            raise first_problems(scratch, shape.path.name)
