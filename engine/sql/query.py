"""Users' queries: one read-only SELECT over the workspace's views, its result in memory or written to a
file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import polars as pl

from engine.errors import QueryError
from engine.sql.sandbox import Limits, open_sandbox


def run_query(db_path: Path, sql: str, *, limits: Limits | None = None, busy_timeout: float = 30.0) -> pl.DataFrame:
    """The result of `sql` as a polars DataFrame (see engine/sql/views.py for the tables it can read)."""
    with open_sandbox(db_path, limits=limits, busy_timeout=busy_timeout, query=sql) as box:
        table = box.query(sql)
    result = pl.from_arrow(table)
    assert isinstance(result, pl.DataFrame)
    return result


def query_to_file(
    db_path: Path,
    sql: str,
    path: str | Path,
    *,
    format: str,
    escape: bool = True,
    limits: Limits | None = None,
    busy_timeout: float = 30.0,
) -> int:
    """Write the result of the SELECT `sql` to `path` (csv or parquet) atomically; returns the row count."""
    from engine.io.exporter import check_target, export_format, write_select

    target = Path(path)
    fmt = export_format(target, format)
    check_target(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open_sandbox(db_path, limits=limits, busy_timeout=busy_timeout, writable=temporary, query=sql) as box:
            text = box.check(sql)
            if text.lstrip()[:7].upper() == "EXPLAIN":
                raise QueryError("an EXPLAIN cannot be written to a file", hint="print it with --format table")
            rows, _ = write_select(box, f"SELECT * FROM (\n{text}\n) q", temporary, fmt, escape=escape)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return rows
