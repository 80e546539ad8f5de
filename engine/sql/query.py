"""Users' queries: one read-only SELECT over the workspace's views, its result in memory (written to a file, it is
an export: engine/io/exporter.py's `export_query`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.sql.sandbox import Limits, open_sandbox


def run_query(db_path: Path, sql: str, *, limits: Limits | None = None, busy_timeout: float = 30.0) -> pl.DataFrame:
    """The result of `sql` as a polars DataFrame (see engine/sql/views.py for the tables it can read)."""
    with open_sandbox(db_path, limits=limits, busy_timeout=busy_timeout, query=sql) as box:
        table = box.query(sql)
    result = pl.from_arrow(table)
    assert isinstance(result, pl.DataFrame)
    return result
