"""The file, as DuckDB reads it, exposed to the importer as the temp views `_raw` and `_staged`.

Both have `_n` (the record's position in the file, from 0) and one column per mapped file column, named after
its campaign column. `_raw` holds the values as read (for CSV: text where casts.py decides the type, with the
export's formula escape taken off); `_staged` holds them cast to their campaign column's type. A value whose cast
fails or changes it is a problem of its row (problems.py). The file is read by DuckDB, never row by row in
Python: CSV and JSON into a temp table once; Parquet is scanned in place, column by column, as each statement
needs it. The temp table names its columns `#0`, `#1`... so that no header, whatever it is called, can hide the
`rowid` that numbers the records.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from engine.io.casts import cast_sql, changed_sql, reads_as_text
from engine.io.exporter import formula_unescaped
from engine.io.names import ColumnMap
from engine.io.problems import collect_reader_rejects, first_problems, start_problems
from engine.io.sniff import FileShape, first_line
from engine.store.database import scalar
from engine.store.schema import literal, quote

PARQUET_ORDINAL = "file_row_number"  # the column read_parquet adds to number the rows


class ReadFailed(Exception):
    """DuckDB refused the file on the fast path; the transaction is lost, so the caller diagnoses it
    afresh."""

    def __init__(self, error: duckdb.Error) -> None:
        super().__init__(first_line(error))
        self.error = error


@dataclass(frozen=True)
class Staged:
    """What was staged: the target columns with their types, how many records the file held, and the `_raw`
    columns read as text (their embedded newlines move later CSV records down)."""

    types: dict[str, str]  # campaign column -> DuckDB type, in file order (row_id included when present)
    records: int  # records in the file, including those the reader rejected
    text_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsvColumn:
    """One column of a CSV file: the reader's name for it, the campaign column it feeds (None when skipped),
    the type the reader reads it as and the type it is cast to."""

    reader: str
    column: str | None
    label: str  # how messages name it: the campaign column, or the skipped header
    read_as: str
    target: str


def csv_columns(shape: FileShape, mapping: ColumnMap, types: dict[str, str]) -> list[CsvColumn]:
    """How each column of a CSV file is read (casts.py decides which are read as text)."""
    found = []
    for i, header in enumerate(shape.headers):
        column = mapping.columns.get(header)
        target = types[column] if column is not None else "VARCHAR"
        read_as = "VARCHAR" if reads_as_text(target) else target
        found.append(CsvColumn(f"#{i}", column, column or header, read_as, target))
    return found


def stage(
    con: duckdb.DuckDBPyConnection,
    shape: FileShape,
    mapping: ColumnMap,
    types: dict[str, str],
    *,
    keep_rejects: bool,
    max_line_size: int | None,
    unescape: bool = True,
) -> Staged:
    """Read the file and create `_raw` and `_staged`. `types` gives each target column's type. With
    `keep_rejects`, bad CSV lines go to `_problems` instead of failing the read; values that do not cast are
    always recorded there. `unescape` takes the export's formula escape off CSV text."""
    if shape.dialect is not None:
        return _stage_csv(
            con, shape, mapping, types, keep_rejects=keep_rejects, max_line_size=max_line_size, unescape=unescape
        )
    pairs = list(mapping.columns.items())
    if shape.format == "parquet" and PARQUET_ORDINAL not in shape.headers:
        base = f"read_parquet({literal(str(shape.path))}, file_row_number=true)"
        raw = [f"{PARQUET_ORDINAL} AS _n"] + [f"{quote(h)} AS {quote(c)}" for h, c in pairs]
    else:
        copied = [f"{quote(h)} AS {quote(f'#{i}')}" for i, (h, _) in enumerate(pairs)] or ["NULL AS _none"]
        _run_read(con, f"CREATE OR REPLACE TEMP TABLE _import AS SELECT {', '.join(copied)} FROM {shape.reader_sql()}")
        base = "_import"
        raw = ["rowid AS _n"] + [f"{quote(f'#{i}')} AS {quote(c)}" for i, (_, c) in enumerate(pairs)]
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT {', '.join(raw)} FROM {base}")
    found = {c: shape.types[h] for h, c in pairs}
    _create_staged(con, {c: (found[c], types[c]) for c in found}, _unit(shape), None)
    records = int(scalar(con, "SELECT count(*) FROM _raw"))
    return Staged({c: types[c] for c in found}, records)


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    shape: FileShape,
    mapping: ColumnMap,
    types: dict[str, str],
    *,
    keep_rejects: bool,
    max_line_size: int | None,
    unescape: bool,
) -> Staged:
    assert shape.dialect is not None
    columns = csv_columns(shape, mapping, types)
    read = {c.reader: c.read_as for c in columns}
    reader = shape.dialect.reader_sql(shape.path, read, rejects=keep_rejects, max_line_size=max_line_size)
    _run_read(con, f"CREATE OR REPLACE TEMP TABLE _import AS SELECT * FROM {reader}")
    rejected = 0
    if keep_rejects:
        collect_reader_rejects(con, read, shape.dialect.encoding, {c.reader: c.label for c in columns})
        rejected = int(scalar(con, "SELECT count(*) FROM _problems WHERE n IS NULL"))
    raw = ["rowid AS _n"]
    for c in columns:
        value = quote(c.reader)
        if c.column is not None and unescape and c.read_as == "VARCHAR":
            value = formula_unescaped(value)
        raw.append(f"{value} AS {quote(c.column or c.reader)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT {', '.join(raw)} FROM _import")
    kept = {c.column: (c.read_as, c.target) for c in columns if c.column is not None}
    _create_staged(con, kept, "line", shape.dialect.date_format)
    records = int(scalar(con, "SELECT count(*) FROM _import")) + rejected
    text = tuple(c.column or c.reader for c in columns if c.read_as == "VARCHAR")
    return Staged({c: target for c, (_, target) in kept.items()}, records, text)


def _create_staged(
    con: duckdb.DuckDBPyConnection, columns: dict[str, tuple[str, str]], unit: str, date_format: str | None
) -> None:
    """`_staged` over `_raw`: each column (read as the first type) cast to its target type (the second), and
    each value that does not cast exactly recorded as a problem of its row (the first such column names it).

    With casts, `_staged` reads a table of the cast values (`_cast`): later statements read it once per column,
    and a view of the casts would be planned again each time (measured: 300 cast columns, 26 s to append). The
    columns read as they stay are read from `_raw`, lined up by position."""
    selects, errors, cast = ["_n"], [], []
    for column, (found, wanted) in columns.items():
        value = quote(column)
        if found == wanted:
            selects.append(value)
            continue
        cast.append(f"{cast_sql(value, wanted, date_format=date_format)} AS {value}")
        selects.append(cast[-1])
        shown = f"{literal(chr(39))} || {value}::VARCHAR || {literal(chr(39))}"
        errors.append(
            f"CASE WHEN {value} IS NOT NULL AND {changed_sql(value, wanted, date_format=date_format)} "
            f"THEN {literal(f'column {column!r} has values that are not {wanted}: ')} || {shown} "
            f"|| {literal(f' on {unit} {{line}}')} END"
        )
    if not errors:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT {', '.join(selects)} FROM _raw")
        return
    error = quote("#error")  # a name no campaign column can have
    if not scalar(con, "SELECT current_setting('preserve_insertion_order')"):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _cast AS SELECT {', '.join(selects)}, coalesce({', '.join(errors)}) "
            f"AS {error} FROM _raw ORDER BY _n"
        )
        con.execute(
            f"INSERT INTO _problems SELECT _n, NULL, 'cast', {error}, NULL FROM _cast WHERE {error} IS NOT NULL"
        )
        con.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT * EXCLUDE ({error}) FROM _cast")
        return
    # DuckDB preserves insertion order (its default): `_cast` comes out in `_raw`'s order, and holds only the
    # cast columns, lined up with `_raw` by position for the others (sorting and copying every column again
    # cost a sixth of an import's CPU time at a million records).
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cast AS SELECT _n, {', '.join(cast)}, coalesce({', '.join(errors)}) "
        f"AS {error} FROM _raw"
    )
    con.execute(f"INSERT INTO _problems SELECT _n, NULL, 'cast', {error}, NULL FROM _cast WHERE {error} IS NOT NULL")
    staged = ["r._n"] + [
        f"c.{quote(column)}" if found != wanted else f"r.{quote(column)}" for column, (found, wanted) in columns.items()
    ]
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW _staged AS SELECT {', '.join(staged)} FROM _raw r POSITIONAL JOIN "
        f"(SELECT * EXCLUDE ({error}) FROM _cast) c"
    )


def _run_read(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as err:
        raise ReadFailed(err) from err


def _unit(shape: FileShape) -> str:
    return "row" if shape.format == "parquet" else "line"


def diagnose_csv(shape: FileShape, mapping: ColumnMap, types: dict[str, str], max_line_size: int | None) -> None:
    """After the fast read failed: read again in a scratch database, keeping rejects, to name the bad
    lines."""
    assert shape.dialect is not None
    columns = csv_columns(shape, mapping, types)
    read = {c.reader: c.read_as for c in columns}
    with duckdb.connect(":memory:") as scratch:
        start_problems(scratch)
        reader = shape.dialect.reader_sql(shape.path, read, rejects=True, max_line_size=max_line_size)
        scratch.execute(f"CREATE TABLE _every_field AS SELECT * FROM {reader}")  # count(*) would parse none
        collect_reader_rejects(scratch, read, shape.dialect.encoding, {c.reader: c.label for c in columns})
        if scalar(scratch, "SELECT count(*) FROM _problems"):
            raise first_problems(scratch, shape.path.name)
