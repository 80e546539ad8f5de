"""Rows of a file that cannot be imported: why, on which line, and where they go.

Two sources feed the `_problems` temp table: DuckDB's CSV reader (ragged rows, bad encoding, values of the
wrong type, over-long lines: its rejects table gives the line) and the importer's own checks on the staged
rows (a blank or repeated key, a key several campaign rows hold, a value its column cannot hold exactly).
Without a rejects file the import stops and nothing goes in; its error lists the problems (every kind found, by
line, up to SHOWN, then how many more); with one, they are written there and the other rows go in. A CSV whose
fast read fails on a bad line is read again keeping the lines the reader rejects, so one pass finds every kind.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from engine.errors import ImportError_
from engine.io.sniff import SIZE_HINT, FileShape
from engine.store.database import scalar
from engine.store.schema import literal, quote

SHOWN = 20  # problems an error lists; the rest are counted (`--rejects FILE` lists them all)
PROBLEMS_DDL = (
    "CREATE OR REPLACE TEMP TABLE _problems (n BIGINT, line BIGINT, kind VARCHAR, error VARCHAR, record VARCHAR)"
)
_CAST_VALUE = re.compile(r'Could not convert string "(.*)" to', re.DOTALL)
_LIMIT = re.compile(r"Maximum line size of (\d+) bytes")
_FOUND = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
HINTS = {
    "cast": "fix the values, or declare the column with a wider type (--type COLUMN=VARCHAR)",
    "fields": "fix those lines so each has as many fields as the header",
    "quote": "quote fields that contain quotes or delimiters, or pass --quote",
    "size": SIZE_HINT,
    "encoding": "save the file as UTF-8, or pass --encoding latin-1 if that is what it is",
    "key": "give every row a distinct, non-empty key",
    "campaign_key": "dedupe the campaign, or pick a key that is unique in it, such as row_id",
    "row": "use row ids that `runsheet show` lists, or import those rows without --key row_id",
    "parse": "check the file's format",
}


@dataclass(frozen=True)
class Problem:
    line: int
    kind: str
    error: str


def start_problems(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(PROBLEMS_DDL)


def collect_reader_rejects(
    con: duckdb.DuckDBPyConnection, types: dict[str, str], encoding: str, labels: dict[str, str] | None = None
) -> None:
    """Move the CSV reader's rejects (one per bad line, first error wins) into `_problems`. `types` are the
    reader's columns and the types it read them as; `labels` name them for people (campaign column names)."""
    names = labels or {}
    found = con.execute(
        "SELECT line, error_type::VARCHAR, column_name, error_message, csv_line FROM _reject_errors "
        "QUALIFY row_number() OVER (PARTITION BY line ORDER BY column_idx) = 1 ORDER BY line"
    ).fetchall()
    rows = [
        (None, line, *_describe_reject(kind, column, names.get(column, column), message, types, line, encoding), record)
        for line, kind, column, message, record in found
    ]
    if rows:
        con.executemany("INSERT INTO _problems VALUES (?, ?, ?, ?, ?)", rows)


def _describe_reject(
    kind: str, column: str | None, label: str | None, message: str, types: dict[str, str], line: int, encoding: str
) -> tuple[str, str]:
    if kind == "CAST":
        value = _CAST_VALUE.search(message or "")
        shown = f": {value.group(1)!r}" if value else ""
        return (
            "cast",
            f"column '{label}' has values that are not {types.get(column or '', 'valid')}{shown} on line {line}",
        )
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        counts = _FOUND.search(message or "")
        if counts:
            return (
                "fields",
                f"line {line} has {counts.group(2)} fields where the header has {counts.group(1)}",
            )
        return "fields", f"line {line} does not have as many fields as the header"
    if kind == "UNQUOTED VALUE":
        return "quote", f"line {line} has a quote inside an unquoted field"
    if kind == "LINE SIZE OVER MAXIMUM":
        limit = _LIMIT.search(message or "")
        allowed = f" ({int(limit.group(1)):,} bytes)" if limit else ""
        return "size", f"line {line} is longer than the longest line allowed{allowed}"
    if kind == "INVALID ENCODING":
        return "encoding", f"line {line} is not valid {encoding} text"
    return "parse", f"line {line} cannot be read: {(message or kind).splitlines()[0]}"


def add_row_problems(
    con: duckdb.DuckDBPyConnection, condition: str, kind: str, error_sql: str, *, source: str = "_staged"
) -> int:
    """Record every row of `source` (with `_n`) matching `condition`, with the error text `error_sql`; a
    `{line}` in the text becomes the row's line once lines are resolved."""
    before = int(scalar(con, "SELECT count(*) FROM _problems"))
    con.execute(
        f"INSERT INTO _problems SELECT _n, NULL, {literal(kind)}, {error_sql}, NULL FROM {source} WHERE {condition}"
    )
    return int(scalar(con, "SELECT count(*) FROM _problems")) - before


def count_problems(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "SELECT count(*) FROM _problems"))


def resolve_lines(con: duckdb.DuckDBPyConnection, shape: FileShape, text_columns: list[str]) -> None:
    """Give each staged-row problem its line in the file (for Parquet: its row number).

    A CSV record starts after the header, after every earlier record's embedded newlines (in `text_columns`
    of `_raw`), and after every line the reader rejected before it; JSON lines hold one record each.
    """
    if not scalar(con, "SELECT count(*) FROM _problems WHERE n IS NOT NULL"):
        return
    if shape.dialect is None:
        con.execute("UPDATE _problems SET line = n + 1 WHERE n IS NOT NULL")
        _name_lines(con)
        return
    first = 1 + shape.dialect.skip + (1 if shape.dialect.header else 0)
    newlines = (
        " + ".join(f"coalesce(length({quote(c)}) - length(replace({quote(c)}, chr(10), '')), 0)" for c in text_columns)
        or "0"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _lines AS SELECT _n, {first} + _n
            + coalesce(sum({newlines}) OVER (ORDER BY _n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
            AS line FROM _raw WHERE _n <= (SELECT max(n) FROM _problems)"""
    )
    estimates = con.execute("SELECT p.n, l.line FROM _problems p JOIN _lines l ON l._n = p.n ORDER BY p.n").fetchall()
    rejected = [r[0] for r in con.execute("SELECT line FROM _problems WHERE n IS NULL ORDER BY line").fetchall()]
    fixed = [(n, _shift_past(line, rejected)) for n, line in estimates]
    con.executemany("UPDATE _problems SET line = ? WHERE n = ?", [(line, n) for n, line in fixed])
    _name_lines(con)


def _name_lines(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("UPDATE _problems SET error = replace(error, '{line}', line::VARCHAR) WHERE n IS NOT NULL")


def _shift_past(line: int, rejected: list[int]) -> int:
    """The line of a good record, given its position among good lines and the sorted lines rejected."""
    shift = bisect.bisect_right(rejected, line)
    while shift and bisect.bisect_right(rejected, line + shift) != shift:
        shift = bisect.bisect_right(rejected, line + shift)
    return line + shift


def first_problems(con: duckdb.DuckDBPyConnection, file: str) -> ImportError_:
    """The error to raise when rows cannot be imported and there is no rejects file: the first problem of each
    kind, then the first others by line, up to SHOWN, in line order, and how many more there are."""
    total = count_problems(con)
    rows = int(scalar(con, "SELECT count(*) FROM (SELECT DISTINCT coalesce(n, -line) FROM _problems)"))
    shown = con.execute(
        f"""SELECT line, kind, error FROM (
                SELECT *, row_number() OVER (PARTITION BY kind ORDER BY line, error) AS _nth FROM _problems)
            ORDER BY _nth = 1 DESC, line, error LIMIT {SHOWN}"""
    ).fetchall()
    shown.sort(key=lambda found: (found[0], found[2]))
    more = f" (and {total - len(shown)} more)" if total > len(shown) else ""
    kinds = {kind for _, kind, _ in shown}
    hint = "; ".join(HINTS[k] for k in sorted(kinds))
    return ImportError_(
        f"{rows} row(s) of {file} cannot be imported: " + "; ".join(error for _, _, error in shown) + more,
        hint=f"{hint}; or pass --rejects FILE to import the other rows and write these there",
    )


def write_rejects(con: duckdb.DuckDBPyConnection, target: Path, columns: list[str]) -> None:
    """Write every problem as CSV (line, error, the record) to `target`, formula-escaped. The record holds
    `columns` as staged, or, for a value that did not cast exactly, as read."""
    from engine.io.exporter import formula_safe

    as_read = _record_sql([(c, f"to_json(r.{quote(c)})") for c in columns])
    as_staged = _record_sql([(c, f"coalesce(to_json(s.{quote(c)}), to_json(r.{quote(c)}))") for c in columns])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _reject_rows AS SELECT p.line, p.error,
            coalesce(p.record, (
                SELECT CASE WHEN p.kind = 'cast' THEN {as_read} ELSE {as_staged} END
                FROM _staged s JOIN _raw r USING (_n) WHERE s._n = p.n
            )) AS record
            FROM _problems p"""
    )
    con.execute(
        f"COPY (SELECT line, {formula_safe('error')} AS error, {formula_safe('record')} AS record "
        f"FROM _reject_rows ORDER BY line) TO {literal(str(target))} (FORMAT csv, HEADER)"
    )


def _record_sql(values: list[tuple[str, str]]) -> str:
    pairs = ", ".join(f"{literal(name)}, {value}" for name, value in values)
    return f"json_object({pairs})::VARCHAR" if pairs else "NULL"
