"""Types on the way in: which names are types, and which values a column's type holds exactly.

DuckDB casts `'1.5'` to BIGINT as 2 and `'2024-05-01 10:30'` to DATE as 2024-05-01, and its CSV reader does the
same. An import must not change a value silently, so the columns whose type can round (integers, decimals,
dates) or must parse (JSON) are read as text and cast here, and a value the cast would change or lose is a
problem of its row, like a value that does not cast at all.
"""

from __future__ import annotations

import re

import duckdb

from engine.errors import ImportError_
from engine.spec import TYPE_PATTERN
from engine.store.schema import literal

COMMON_TYPES = "VARCHAR, BIGINT, DOUBLE, DECIMAL(18,2), BOOLEAN, DATE, TIMESTAMP or JSON"
_EXACT_NUMBER = re.compile(
    r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|INT[1248]?|SHORT|LONG|(DECIMAL|NUMERIC)(\(.*\))?)$"
)


def check_type(con: duckdb.DuckDBPyConnection, column: str, type_name: str) -> str:
    """`type_name` in upper case, if DuckDB has such a type; otherwise refuse, naming the common types."""
    cleaned = type_name.strip()
    try:
        if not TYPE_PATTERN.match(cleaned):
            raise ValueError(cleaned)
        con.execute(f"SELECT NULL::{cleaned}")
    except (duckdb.Error, ValueError) as err:
        raise ImportError_(
            f"--type {column}={type_name} is not a type",
            hint=f"use a DuckDB type such as {COMMON_TYPES}",
        ) from err
    return cleaned.upper()


def reads_as_text(target: str) -> bool:
    """Whether a CSV column of type `target` is read as text and cast by `cast_sql` (see the module
    docstring)."""
    return target in ("VARCHAR", "JSON", "DATE") or bool(_EXACT_NUMBER.match(target))


def cast_sql(expr: str, target: str, *, date_format: str | None = None) -> str:
    """SQL for `expr` cast to `target`, NULL where it does not cast (a date in the file's sniffed format
    too)."""
    if target == "VARCHAR":
        return f"{expr}::VARCHAR"
    cast = f"TRY_CAST({expr} AS {target})"
    if target == "DATE" and date_format:
        return f"coalesce(TRY_CAST(try_strptime({expr}::VARCHAR, {literal(date_format)}) AS DATE), {cast})"
    return cast


def changed_sql(expr: str, target: str, *, date_format: str | None = None) -> str:
    """SQL that is true where `expr` (not NULL) does not cast to `target`, or casts to another value: 1.5 to
    an integer, a time of day to a date."""
    cast = cast_sql(expr, target, date_format=date_format)
    if _EXACT_NUMBER.match(target):
        lost = f"TRY_CAST({cast} AS DOUBLE) IS DISTINCT FROM TRY_CAST({expr} AS DOUBLE)"
    elif target == "DATE":
        lost = (
            f"TRY_CAST({expr} AS TIMESTAMP) IS NOT NULL "
            f"AND TRY_CAST({expr} AS TIMESTAMP) IS DISTINCT FROM {cast}::TIMESTAMP"
        )
    else:
        lost = "false"
    return f"({cast} IS NULL OR {lost})"
