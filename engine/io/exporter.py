"""Export: a campaign's values (and, on request, each step's state), or a user's query result, to CSV or Parquet,
written atomically.

The rows are produced inside the SQL sandbox, so a `--where` filter is user SQL under the same rules as a
query; the sandbox may write exactly one file, a temporary one beside the target, which replaces the target
only when complete. In CSV, text a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return) is written with a leading apostrophe, and so is text that already starts with apostrophes before
such a character: import takes exactly one apostrophe off such text (`formula_unescaped`), so a round trip gives
back every value. Parquet keeps every value and its type, except that JSON is written as text (every Parquet
reader reads it as a string), its columns named in the file's metadata so that import reads them as JSON again.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb

from engine.errors import ExportError, NotFoundError, QueryError
from engine.sql.needs import Needs, needs_of
from engine.sql.sandbox import Limits, Sandbox, open_sandbox
from engine.sql.views import ordered, wide_sql
from engine.store.database import DB_FILE, Database
from engine.store.schema import literal, metadata_current, quote
from engine.types import current_user

if TYPE_CHECKING:
    import polars as pl

ExportFormat = Literal["csv", "parquet"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The same, as a regular expression class: DuckDB takes seconds to plan a few hundred CASE ... IN (...)
# expressions (measured: 100 columns 0.74 s, 400 columns 19.5 s; as regexp_replace, 0.004 s and 0.014 s).
FORMULA_START = "[" + "".join("\\" + c if c in "-+" else c for c in FORMULA_STARTS) + "]"
TEXT_TYPES = ("VARCHAR", "JSON")
JSON_COLUMNS_KEY = "runsheet_json_columns"  # Parquet metadata: the text columns that hold JSON
EXPORT_LIMITS = Limits(timeout=600.0, memory_limit="4GB")


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    campaign: str
    path: Path
    format: ExportFormat
    rows: int
    columns: list[str]


def formula_safe(expr: str) -> str:
    """SQL for the text `expr` with an apostrophe in front when a spreadsheet would read it as a formula, or when
    it is apostrophes before such a start (so that `formula_unescaped` gives back exactly `expr`)."""
    escaped = f"regexp_replace({expr}, '^(''*{FORMULA_START})', '''\\1')"
    first = literal("".join(FORMULA_STARTS) + "'")
    return f"CASE WHEN contains({first}, left({expr}, 1)) THEN {escaped} ELSE {expr} END"  # fewer regexps


def formula_unescaped(expr: str) -> str:
    """SQL for the text `expr` without the apostrophe `formula_safe` adds: one apostrophe comes off text that
    starts with apostrophes before = + - @, a tab or a carriage return."""
    unescaped = f"regexp_replace({expr}, '^''(''*{FORMULA_START})', '\\1')"
    return f"CASE WHEN starts_with({expr}, chr(39)) THEN {unescaped} ELSE {expr} END"  # skips the regexp: 2x faster


def frame_to_csv(frame: pl.DataFrame, *, escape: bool = True) -> str:
    """A DataFrame as CSV text (nulls empty, empty strings quoted), formula-escaped unless `escape` is
    False."""
    import polars as pl  # here: an export to a file needs no polars (a whole process: issue 16)

    if escape:
        pattern = "^'*" + FORMULA_START
        frame = frame.with_columns(
            pl.when(pl.col(name).str.contains(pattern))
            .then(pl.lit("'") + pl.col(name))
            .otherwise(pl.col(name))
            .alias(name)
            for name, dtype in frame.schema.items()
            if dtype == pl.String
        )
    return frame.write_csv()


def export_format(path: Path, given: str | None) -> ExportFormat:
    chosen = given or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(path.suffix.lower())
    if chosen not in ("csv", "parquet"):
        raise ExportError(f"cannot tell the format of {path.name}", hint="pass --format csv or --format parquet")
    return chosen  # type: ignore[return-value]


def export_campaign(
    db_path: Path,
    campaign: str,
    path: str | Path,
    *,
    format: str | None = None,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    with_state: bool = False,
    escape: bool = True,
    limits: Limits = EXPORT_LIMITS,
    busy_timeout: float = 30.0,
    reader: str | None = None,
) -> ExportReport:
    """Write `campaign` (row_id first, then `columns` or every column, in spec order) to `path`. `where` sees the
    actions `reader` may see (engine/sql/views.py)."""
    target = Path(path)
    fmt = export_format(target, format)
    check_target(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        filtered = needs_of(f"SELECT 1 WHERE {where}") if where else Needs(frozenset())
        needs = Needs(filtered.tables).plus_tables(campaign)  # every column of the campaign
        with open_sandbox(
            db_path, limits=limits, busy_timeout=busy_timeout, writable=temporary, needs=needs, reader=reader
        ) as box:
            layout = box.layout(campaign)
            names = list(columns) if columns else [c.name for c in layout.columns]
            known = [c.name for c in layout.columns]
            for name in names:
                if name not in known:
                    raise NotFoundError(
                        f"campaign '{campaign}' has no column '{name}'",
                        hint=f"use one of: {', '.join(known)}",
                    )
            select = wide_sql(layout, names, with_state=with_state)
            if where:  # the filter may read any column, exported or not
                wide = wide_sql(layout, known, with_state=with_state)
                box.check(f"SELECT * FROM campaign.{quote(campaign)} w WHERE ({where}\n)", what="--where filter")
                chosen = ", ".join(quote(name) for name in box.describe(select))
                select = f"SELECT {chosen} FROM ({wide}) w WHERE ({where}\n)"
                names = known
            if not ordered(layout, names):
                select = f"SELECT * FROM ({select}) w ORDER BY row_id"
            rows, header = write_select(box, select, temporary, fmt, escape=escape)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportReport(campaign, target, fmt, rows, header)


def export_from_workspace(
    workspace: str | Path,
    campaign: str | None,
    path: str | Path | None,
    *,
    format: str | None = None,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    with_state: bool = False,
    escape: bool = True,
    actor: str | None = None,
) -> ExportReport | None:
    """`Campaign.export` (to `path`, or CAMPAIGN.FORMAT) without the engine's way to a campaign: `runsheet
    export` is a whole process, and the Workspace and Campaign classes cost a second of imports (the spec's parser,
    every step kind, polars) before the first row is read. Writes through `export_campaign` as that method does;
    None, having written nothing, when only the engine's path can answer: no workspace, no campaign of that name
    (`campaign` None: not exactly one), or a workspace an older version made (the engine upgrades it first).
    `actor` (default: who runs this process) is who asks, as for a Workspace."""
    db_path = Path(workspace) / DB_FILE
    if not db_path.exists():
        return None
    try:
        with Database(db_path).snapshot() as con:
            if not metadata_current(con) or _value_types_outdated(con):
                return None
            names = [str(row[0]) for row in con.execute("SELECT name FROM campaigns ORDER BY name").fetchall()]
    except duckdb.CatalogException:
        return None
    picked = [n for n in names if n == campaign] if campaign is not None else names
    if len(picked) != 1:
        return None
    target = Path(path) if path is not None else Path(f"{picked[0]}.{format or 'csv'}")
    reader = actor or current_user()
    return export_campaign(
        db_path,
        picked[0],
        target,
        format=format,
        columns=columns,
        where=where,
        with_state=with_state,
        escape=escape,
        reader=reader,
    )


def _value_types_outdated(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a step table waits for the type change `Workspace` makes on opening (store/changes.py's
    `upgrade_value_types`: an http step with a `path` stored as JSON)."""
    return bool(con.execute("SELECT 1 FROM columns WHERE kind = 'http' AND value_type = 'JSON' LIMIT 1").fetchall())


def export_query(
    db_path: Path,
    sql: str,
    path: str | Path,
    *,
    format: str,
    escape: bool = True,
    limits: Limits | None = None,
    busy_timeout: float = 30.0,
    reader: str | None = None,
) -> int:
    """Write the result of the SELECT `sql` to `path` (csv or parquet) atomically; returns the row count.
    `reader` sees the actions the action library shows them."""
    target = Path(path)
    fmt = export_format(target, format)
    check_target(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open_sandbox(
            db_path, limits=limits, busy_timeout=busy_timeout, writable=temporary, query=sql, reader=reader
        ) as box:
            text = box.check(sql)
            if text.lstrip()[:7].upper() == "EXPLAIN":
                raise QueryError("an EXPLAIN cannot be written to a file", hint="print it with --format table")
            rows, _ = write_select(box, f"SELECT * FROM (\n{text}\n) q", temporary, fmt, escape=escape)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return rows


def write_select(box: Sandbox, select: str, target: Path, fmt: ExportFormat, *, escape: bool) -> tuple[int, list[str]]:
    """Run `select` in the sandbox and write its rows to `target` (which the sandbox was opened to allow).
    Returns the row count and the column names."""
    described = box.describe(select)
    header = list(described)
    options = "FORMAT csv, HEADER"
    if fmt == "csv" and escape:
        outer = ", ".join(
            (formula_safe(f"{quote(name)}::VARCHAR") if kind in TEXT_TYPES else quote(name)) + f" AS {quote(name)}"
            for name, kind in described.items()
        )
        select = f"SELECT {outer} FROM ({select}) q"
    elif fmt == "parquet":
        # DuckDB writes JSON as Parquet's JSON logical type, which polars and pandas read as bytes.
        json_columns = [name for name, kind in described.items() if kind == "JSON"]
        outer = ", ".join(
            (f"{quote(name)}::VARCHAR" if name in json_columns else quote(name)) + f" AS {quote(name)}"
            for name in described
        )
        select = f"SELECT {outer} FROM ({select}) q"
        options = "FORMAT parquet"
        if json_columns:
            options += f", KV_METADATA {{{JSON_COLUMNS_KEY}: {literal(json.dumps(json_columns))}}}"
    copied = box.run(f"COPY ({select}) TO {literal(str(target))} ({options})")
    return int(str(copied[0][0])) if copied else 0, header


def check_target(target: Path) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"no folder {folder} to write {target.name} in", hint="create the folder first")
    if target.is_dir():
        raise ExportError(f"{target} is a folder", hint="give a file name, e.g. out.csv")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"cannot write to {folder}", hint="choose a folder you can write to")
