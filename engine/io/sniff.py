"""What a file is before anything is read from it: its format, and for CSV its encoding, dialect and raw
header.

DuckDB's sniffer finds the dialect and the column types; the header row is then read here exactly as written,
because DuckDB quietly renames duplicate (`a_1`) and empty (`column2`) headers, and those must be refused.
"""

from __future__ import annotations

import codecs
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from engine.errors import ImportError_
from engine.io.exporter import JSON_COLUMNS_KEY
from engine.store.schema import literal

FileFormat = Literal["csv", "parquet", "json"]
FORMATS: tuple[FileFormat, ...] = ("csv", "parquet", "json")
SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-16": "utf-16",
    "utf16": "utf-16",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
}
SAMPLE_BYTES = 1 << 16
SNIFF_LINE_BYTES = 100_000_000
MAX_LINE_BYTES = 2_000_000  # the longest CSV line read unless --max-line-size allows more (DuckDB's default)
BUFFER_LINES = 16  # the reader's buffer holds this many of the longest lines; a longer line it drops unseen
SCAN_CHUNK = 1 << 22
MAX_COLUMNS = 1_000  # columns a file may bring: each becomes a table, and a wider file is a mistake (or a pivot)
CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
SIZE_HINT = "shorten that field, or allow longer lines with --max-line-size BYTES"
EMPTY = "(empty)"  # how sniff_csv reports "none"


@dataclass(frozen=True)
class CsvDialect:
    """How to read a CSV file; every field is either sniffed or given by the user."""

    delimiter: str
    quote: str
    escape: str
    skip: int
    header: bool
    encoding: str
    date_format: str | None = None
    timestamp_format: str | None = None

    def reader_sql(self, path: Path, columns: dict[str, str], *, rejects: bool, max_line_size: int | None) -> str:
        """A read_csv(...) call that reads every field of the file into `columns` (name -> type, in file
        order). Nothing is sniffed again: the dialect and types are settled, and the sniffer would stop at
        the first over-long line instead of reporting it."""
        args = [
            literal(str(path)),
            f"delim={literal(self.delimiter)}",
            f"quote={literal(self.quote)}",
            f"escape={literal(self.escape)}",
            f"skip={self.skip}",
            f"header={str(self.header).lower()}",
            f"encoding={literal(self.encoding)}",
            "allow_quoted_nulls=false",
            "auto_detect=false",
            "columns={" + ", ".join(f"{literal(n)}: {literal(t)}" for n, t in columns.items()) + "}",
        ]
        if self.date_format:
            args.append(f"dateformat={literal(self.date_format)}")
        if self.timestamp_format:
            args.append(f"timestampformat={literal(self.timestamp_format)}")
        if rejects:
            args += ["store_rejects=true", "rejects_table='_reject_errors'", "rejects_scan='_reject_scans'"]
        longest = line_limit(max_line_size)
        args += [f"max_line_size={longest}", f"buffer_size={longest * BUFFER_LINES}"]
        return f"read_csv({', '.join(args)})"


@dataclass(frozen=True)
class FileShape:
    """A file's format, its columns as written (`headers`) with DuckDB's inferred types, and its CSV
    dialect."""

    path: Path
    format: FileFormat
    headers: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict)
    dialect: CsvDialect | None = None
    json_columns: frozenset[str] = frozenset()  # text columns an export marked as JSON (Parquet metadata)

    def reader_sql(self) -> str:
        """The table function that reads a Parquet or JSON file (CSV goes through its dialect)."""
        if self.format == "parquet":
            return f"read_parquet({literal(str(self.path))})"
        shape = "newline_delimited" if self.path.suffix.lower() in (".jsonl", ".ndjson") else "auto"
        # Without map_inference_threshold=-1, records of more than 200 keys become one MAP column named `json`.
        return f"read_json({literal(str(self.path))}, format={literal(shape)}, map_inference_threshold=-1)"


def file_format(path: Path, given: str | None) -> FileFormat:
    if given is not None:
        if given not in FORMATS:
            raise ImportError_(f"unknown format {given!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return given  # type: ignore[return-value]
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ImportError_(
            f"cannot import {path.name}: unknown file type",
            hint="give a .csv or .parquet file (or .jsonl), or name its format with --format",
        )
    return found


def sniff_encoding(path: Path) -> str:
    """utf-16 or utf-8 by their byte-order marks; otherwise utf-8 unless the start of the file is not UTF-8
    and holds no UTF-8 text at all (then latin-1, what spreadsheets on Windows write). A UTF-8 file with a bad
    byte stays utf-8, so the bad line is reported instead of the whole file being misread."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        salvaged = sample.decode("utf-8", errors="ignore")
        return "utf-8" if any(ord(ch) > 127 for ch in salvaged) else "latin-1"


def sniff_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    delimiter: str | None = None,
    quote_char: str | None = None,
    escape: str | None = None,
    header: bool | None = None,
    encoding: str | None = None,
) -> FileShape:
    """Find the dialect (given options win), the column types DuckDB infers, and the header as written."""
    if path.stat().st_size == 0:
        raise ImportError_(f"{path.name} is empty", hint="export the file again, with a header row")
    chosen = encoding.lower() if encoding else sniff_encoding(path)
    if chosen not in ENCODINGS:
        raise ImportError_(f"unsupported encoding {encoding!r}", hint="use utf-8, utf-16 or latin-1")
    chosen = ENCODINGS[chosen]
    _refuse_wide_header(path, delimiter, chosen)
    # The sniffer reads whole lines: a generous limit here lets the read itself name an over-long line.
    args = [
        literal(str(path)),
        "ignore_errors=true",
        f"encoding={literal(chosen)}",
        f"max_line_size={SNIFF_LINE_BYTES}",
    ]
    for name, value in (("delim", delimiter), ("quote", quote_char), ("escape", escape)):
        if value is not None:
            args.append(f"{name}={literal(value)}")
    if header is not None:
        args.append(f"header={str(header).lower()}")
    try:
        found = con.execute(
            "SELECT Delimiter, Quote, Escape, SkipRows, HasHeader, Columns, DateFormat, TimestampFormat "
            f"FROM sniff_csv({', '.join(args)})"
        ).fetchall()[0]
    except duckdb.Error as err:
        raise ImportError_(f"cannot read {path.name}: {first_line(err)}", hint="check the file's format") from err
    sniffed_delim, sniffed_quote, sniffed_escape, skip, has_header, columns, date_format, timestamp_format = found
    # Quotes not seen in the sniffer's sample may still come later: read standard CSV quoting unless told not
    # to.
    quote_used = quote_char if quote_char is not None else (sniffed_quote if sniffed_quote != EMPTY else '"')
    escape_used = escape if escape is not None else (sniffed_escape if sniffed_escape != EMPTY else quote_used)
    dialect = CsvDialect(
        delimiter=delimiter if delimiter is not None else sniffed_delim,
        quote=quote_used,
        escape=escape_used,
        skip=int(skip),
        header=bool(has_header) if header is None else header,
        encoding=chosen,
        date_format=date_format or None,
        timestamp_format=timestamp_format or None,
    )
    types = [str(c["type"]) for c in columns]
    headers = _read_header(path, dialect) if dialect.header else tuple(f"column{i}" for i in range(len(types)))
    if len(headers) != len(types):  # the sniffer and the header disagree: trust the header, type as text
        types = ["VARCHAR"] * len(headers)
    return FileShape(path, "csv", headers, dict(zip(headers, types, strict=False)), dialect)


def _read_header(path: Path, dialect: CsvDialect) -> tuple[str, ...]:
    encoding = "utf-8-sig" if dialect.encoding == "utf-8" else dialect.encoding
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        for _ in range(dialect.skip):
            handle.readline()
        reader = csv.reader(
            handle,
            delimiter=dialect.delimiter,
            quotechar=dialect.quote or None,
            quoting=csv.QUOTE_MINIMAL if dialect.quote else csv.QUOTE_NONE,
            doublequote=dialect.escape == dialect.quote,
            escapechar=None if dialect.escape in ("", dialect.quote) else dialect.escape,
        )
        try:
            return tuple(next(reader))
        except (StopIteration, csv.Error) as err:
            raise ImportError_(f"cannot read the header row of {path.name}", hint="check the file's format") from err


def describe(con: duckdb.DuckDBPyConnection, shape: FileShape) -> FileShape:
    """Fill in the columns and types of a Parquet or JSON file; a truncated or malformed file is refused."""
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {shape.reader_sql()}").fetchall()
    except duckdb.Error as err:
        hint = (
            "the file looks truncated or is not Parquet: export it again"
            if shape.format == "parquet"
            else "shorten that record, or import the data as CSV or Parquet"
            if "maximum_object_size" in str(err)
            else "check that each line is one JSON object"
        )
        raise ImportError_(f"cannot read {shape.path.name}: {first_line(err)}", hint=hint) from err
    headers = tuple(str(row[0]) for row in described)
    check_column_count(len(headers), shape.path.name)
    types = {str(r[0]): str(r[1]) for r in described}
    return FileShape(shape.path, shape.format, headers, types, json_columns=_json_columns(con, shape))


def _json_columns(con: duckdb.DuckDBPyConnection, shape: FileShape) -> frozenset[str]:
    """The columns a Runsheet export wrote as text that hold JSON (named in the Parquet file's metadata)."""
    if shape.format != "parquet":
        return frozenset()
    try:
        found = con.execute(
            f"SELECT decode(value) FROM parquet_kv_metadata({literal(str(shape.path))}) "
            f"WHERE key = encode({literal(JSON_COLUMNS_KEY)})"
        ).fetchall()
        names = json.loads(found[0][0]) if found else []
    except (duckdb.Error, ValueError):  # another tool's metadata: no marks
        return frozenset()
    return frozenset(n for n in names if isinstance(n, str))


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def line_limit(max_line_size: int | None) -> int:
    return int(max_line_size) if max_line_size else MAX_LINE_BYTES


def check_line_lengths(path: Path, max_line_size: int | None) -> None:
    """Refuse a file with a line longer than the CSV reader's buffer, which the reader would skip without a word
    (measured with DuckDB 2.0: a 64 MB field gave "imported 0 rows"). Lines up to the buffer's size that are
    over the limit the reader reports itself, by line. Only files larger than the buffer are scanned."""
    longest = line_limit(max_line_size)
    buffer = longest * BUFFER_LINES
    if path.stat().st_size <= buffer:
        return
    run, offset = 0, 0  # bytes since the last newline, and bytes of the file before the chunk read
    with path.open("rb") as handle:
        # a chunk no longer than the buffer: a line too long cannot hide between two newlines of one chunk
        while chunk := handle.read(min(SCAN_CHUNK, buffer)):
            first = chunk.find(b"\n")
            if first < 0:
                run += len(chunk)
                if run > buffer:
                    break
                offset += len(chunk)
                continue
            if run + first > buffer:
                break
            run = len(chunk) - chunk.rfind(b"\n") - 1
            offset += len(chunk)
        else:
            return
    line = _lines_within(path, offset)
    raise ImportError_(
        f"line {line} of {path.name} is longer than the longest line allowed ({longest:,} bytes)",
        hint=SIZE_HINT,
    )


def _lines_within(path: Path, size: int) -> int:
    """The line that byte `size` of the file is on (counted only when a line is refused: counting every newline
    of a large file costs a tenth of a second a hundred megabytes)."""
    lines = 1
    with path.open("rb") as handle:
        while size > 0 and (chunk := handle.read(min(SCAN_CHUNK, size))):
            lines += chunk.count(b"\n")
            size -= len(chunk)
    return lines


def check_column_count(count: int, file: str) -> None:
    """Refuse a file with more columns than an import takes (MAX_COLUMNS)."""
    if count > MAX_COLUMNS:
        raise ImportError_(
            f"{file} has {count:,} columns; an import takes at most {MAX_COLUMNS:,}",
            hint="keep only the columns you need in the file (or split it into files of fewer columns)",
        )


def _refuse_wide_header(path: Path, delimiter: str | None, encoding: str) -> None:
    """Count the first line's fields before the sniffer reads a very wide file (10,000 columns: seconds, and
    much longer afterwards). The delimiter is not known yet, so each likely one is tried: a header that has
    more than MAX_COLUMNS fields for any of them is refused."""
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES * 16)
    text = head.decode("utf-8-sig" if encoding == "utf-8" else encoding, errors="replace").splitlines()
    if not text:
        return
    for candidate in (delimiter,) if delimiter else CANDIDATE_DELIMITERS:
        try:
            count = len(next(csv.reader([text[0]], delimiter=candidate), []))
        except (csv.Error, TypeError):  # a delimiter of several characters: count them
            count = text[0].count(candidate) + 1
        check_column_count(count, path.name)
