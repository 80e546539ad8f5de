"""Deciding, before a file is read: its shape (format, dialect, header), which campaign column each of its
columns feeds, the key to match records on, and the type each column is read as."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb

from engine.errors import ImportError_
from engine.io.casts import check_type
from engine.io.names import ROW_ID, ColumnMap, check_headers, map_columns
from engine.io.sniff import FileShape, check_column_count, check_line_lengths, describe, sniff_csv
from engine.spec import TYPE_PATTERN
from engine.store.catalog import CampaignTables


@dataclass(frozen=True)
class ImportOptions:
    """How to read and apply a file. Unset dialect fields are sniffed; `types` names a type per column (new
    columns only: existing ones keep theirs); `key` names the column that identifies a record (upsert).
    `run=False` only leaves new rows uncomputed: changed inputs always follow the edit rules, so no cell claims
    to be fresh when it is not. `unescape=False` keeps a CSV export's formula escape (a leading `'`) as data."""

    key: str | None = None
    format: str | None = None
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    encoding: str | None = None
    header: bool | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    rejects: Path | None = None
    max_line_size: int | None = None
    add_columns: bool = True
    run: bool = True
    unescape: bool = True


def plan_import(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, path: Path, fmt: str, options: ImportOptions
) -> tuple[FileShape, ColumnMap, str | None, dict[str, str]]:
    """Sniff the file and decide, before reading it: which column each file column feeds, the key, the
    types."""
    shape = _shape(con, path, fmt, options)
    if shape.dialect is not None and not shape.dialect.header:
        inputs = [c.name for c in tables.spec.columns if c.is_input]
        if len(shape.headers) > len(inputs):
            raise ImportError_(
                f"{path.name} has no header row and {len(shape.headers)} columns; campaign "
                f"'{tables.spec.name}' has {len(inputs)} input columns to fill in order",
                hint="add a header row naming the columns",
            )
        names = tuple(inputs[: len(shape.headers)])
        shape = replace(shape, headers=names, types=dict(zip(names, shape.types.values(), strict=True)))
    check_headers(shape.headers, path.name)
    check_column_count(len(shape.headers), path.name)
    mapping = map_columns(shape.headers, tables.spec, skip=options.skip, add_columns=options.add_columns)
    key = _key_column(options.key, mapping, shape)
    return shape, mapping, key, _target_types(con, tables, shape, mapping, options.types)


def _shape(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, options: ImportOptions) -> FileShape:
    if fmt == "csv":
        check_line_lengths(path, options.max_line_size)  # before the sniffer, which takes long over such a line
        return sniff_csv(
            con,
            path,
            delimiter=options.delimiter,
            quote_char=options.quote,
            escape=options.escape,
            header=options.header,
            encoding=options.encoding,
        )
    return describe(con, FileShape(path, fmt, ()))  # type: ignore[arg-type]


def _key_column(key: str | None, mapping: ColumnMap, shape: FileShape) -> str | None:
    if key is None:
        if ROW_ID in mapping.columns.values():
            raise ImportError_(
                "the file has a row_id column",
                hint="update those rows with --key row_id, or add them as new rows with --skip row_id",
            )
        return None
    if key in mapping.columns:
        return mapping.columns[key]
    if key in mapping.columns.values():
        return key
    raise ImportError_(
        f"the file has no column '{key}' to match records on",
        hint=f"name one of the file's columns with --key: {', '.join(shape.headers)}",
    )


def _target_types(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    shape: FileShape,
    mapping: ColumnMap,
    given: Mapping[str, str],
) -> dict[str, str]:
    """Each target column's type: an existing column's own; for a new one, the type given for it (by header or
    column name), else DuckDB's inference (nested types become JSON, and so do columns an export marked)."""
    by_column = {mapping.columns.get(name, name): check_type(con, name, t) for name, t in given.items()}
    unknown = set(by_column) - set(mapping.columns.values())
    if unknown:
        raise ImportError_(
            f"--type names {', '.join(sorted(unknown))}, which the file does not have",
            hint=f"the file's columns are: {', '.join(shape.headers)}",
        )
    types: dict[str, str] = {}
    for header, column in mapping.columns.items():
        if column == ROW_ID:
            types[column] = "BIGINT"
        elif column in tables.spec.names:
            own = tables.spec.column(column).value_type
            if column in by_column and by_column[column] != own:
                raise ImportError_(
                    f"column '{column}' is {own} in campaign '{tables.spec.name}', not {by_column[column]}",
                    hint=f"change its type in the spec (type: {by_column[column]}) and apply it, then import",
                )
            types[column] = own
        else:
            marked = "JSON" if header in shape.json_columns else None
            inferred = by_column.get(column) or marked or shape.types.get(header, "VARCHAR")
            if not TYPE_PATTERN.match(inferred):
                inferred = "JSON"
            types[column] = inferred
    return types
