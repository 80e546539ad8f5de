"""Import: formats and dialects, header mapping, new columns, and every kind of malformed file refused by line
(or, with a rejects file, set aside while the good rows go in)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine import Campaign, ImportError_, Workspace
from tests.conftest import snapshot
from tests.io.conftest import people_csv, write


def rows_of(campaign: Campaign, *columns: str) -> list[tuple[Any, ...]]:
    frame = campaign.values().select(["row_id", *columns])
    return [tuple(r) for r in frame.iter_rows()]


# ---- formats and dialects ----------------------------------------------------------------------------------


@dataclass
class Dialect:
    name: str
    content: bytes
    options: dict[str, Any] = field(default_factory=dict)


NAMES = [("c1", "zoë@example.com", "Zoë"), ("c2", "li@example.cn", "李"), ("c3", "ann@x.io", 'Ann, "Annie"')]


def _csv(delimiter: str = ",", encoding: str = "utf-8", bom: bytes = b"") -> bytes:
    lines = [delimiter.join(["crm_id", "email", "first"])]
    for crm_id, email, first in NAMES:
        quoted = '"' + first.replace('"', '""') + '"' if (delimiter in first or '"' in first) else first
        lines.append(delimiter.join([crm_id, email, quoted]))
    return bom + ("\n".join(lines) + "\n").encode(encoding)


DIALECTS = [
    Dialect("comma", _csv()),
    Dialect("semicolon", _csv(";")),
    Dialect("tab", _csv("\t")),
    Dialect("utf8-bom", _csv(bom=codecs.BOM_UTF8)),
    Dialect("crlf", _csv().replace(b"\n", b"\r\n")),
    Dialect("pipe-given", _csv("|"), {"delimiter": "|"}),
]


@pytest.mark.parametrize("case", DIALECTS, ids=[d.name for d in DIALECTS])
def test_csv_dialects_are_sniffed_or_given(people: Campaign, tmp_path: Path, case: Dialect) -> None:
    report = people.import_file(write(tmp_path, "in.csv", case.content), **case.options)
    assert list(report.inserted) == [1, 2, 3] and report.added_columns == {}
    assert rows_of(people, "crm_id", "email", "first", "domain") == [
        (1, "c1", "zoë@example.com", "Zoë", "example.com"),
        (2, "c2", "li@example.cn", "李", "example.cn"),
        (3, "c3", "ann@x.io", 'Ann, "Annie"', "x.io"),
    ]


def test_latin1_and_utf16_files_are_recognised(people: Campaign, tmp_path: Path) -> None:
    latin = "crm_id,email,first\nc1,jose@x.es,José\nc2,francois@x.fr,François\n".encode("latin-1")
    people.import_file(write(tmp_path, "latin.csv", latin))
    utf16 = "crm_id,email,first\nc3,ake@x.se,Åke\n".encode("utf-16")
    people.import_file(write(tmp_path, "wide.csv", utf16))
    assert rows_of(people, "first") == [(1, "José"), (2, "François"), (3, "Åke")]


def test_parquet_and_json_lines_keep_their_types(ws: Workspace, tmp_path: Path) -> None:
    ws.apply("campaign: typed\ncolumns:\n  - {name: name, kind: input}\n")
    typed = ws.campaign("typed")
    parquet = tmp_path / "in.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (SELECT * FROM (VALUES ('a', 10::BIGINT, DATE '2024-02-29', 1.5::DOUBLE, true),
                ('b', NULL, DATE '1999-12-31', -2.25, false)) t(name, size, since, score, active))
                TO '{parquet}' (FORMAT parquet)"""
        )
    report = typed.import_file(parquet)
    assert report.added_columns == {"size": "BIGINT", "since": "DATE", "score": "DOUBLE", "active": "BOOLEAN"}
    jsonl = write(tmp_path, "more.jsonl", '{"name": "c", "size": 7, "score": 0.5}\n{"name": "d"}\n')
    typed.import_file(jsonl)
    assert rows_of(typed, "name", "size", "since", "score", "active") == [
        (1, "a", 10, dt.date(2024, 2, 29), 1.5, True),
        (2, "b", None, dt.date(1999, 12, 31), -2.25, False),
        (3, "c", 7, None, 0.5, None),
        (4, "d", None, None, None, None),
    ]


def test_no_header_fills_input_columns_in_order(people: Campaign, tmp_path: Path) -> None:
    people.import_file(write(tmp_path, "bare.csv", "c1,a@b.com,Ann\nc2,c@d.com,Cy\n"), header=False)
    assert rows_of(people, "crm_id", "email", "first") == [
        (1, "c1", "a@b.com", "Ann"),
        (2, "c2", "c@d.com", "Cy"),
    ]


# ---- columns -----------------------------------------------------------------------------------------------


def test_new_columns_join_the_spec_with_inferred_or_given_types(
    ws: Workspace, people: Campaign, tmp_path: Path
) -> None:
    text = "crm_id,Email,Phone Number,Zip,Founded,Seats\nc1,a@b.com,555-0100,02134,2001-02-03,12\n"
    report = people.import_file(write(tmp_path, "new.csv", text), types={"Seats": "INTEGER"})
    assert report.columns == {
        "crm_id": "crm_id",
        "Email": "email",
        "Phone Number": "phone_number",
        "Zip": "zip",
        "Founded": "founded",
        "Seats": "seats",
    }
    assert report.added_columns == {
        "phone_number": "VARCHAR",
        "zip": "VARCHAR",
        "founded": "DATE",
        "seats": "INTEGER",
    }
    spec = ws.campaign("people").spec
    assert spec.names[-4:] == ["phone_number", "zip", "founded", "seats"]
    assert [spec.column(c).is_input for c in spec.names[-4:]] == [True] * 4
    assert rows_of(people, "email", "zip", "founded", "seats", "domain") == [
        (1, "a@b.com", "02134", dt.date(2001, 2, 3), 12, "b.com")
    ]
    # The grown spec is stored like an applied one: applying it again changes nothing.
    assert ws.apply(spec).changes.nothing


def test_a_hostile_header_is_just_a_name(ws: Workspace, people: Campaign, tmp_path: Path) -> None:
    header = 'x"; DROP TABLE cells; --'
    text = f'crm_id,"{header.replace(chr(34), chr(34) * 2)}"\nc1,boom\n'
    report = people.import_file(write(tmp_path, "evil.csv", text))
    assert report.columns[header] == "x_drop_table_cells"
    assert rows_of(people, "x_drop_table_cells") == [(1, "boom")]
    found = ws.query("SELECT x_drop_table_cells, (SELECT count(*) FROM cells) AS cells FROM people")
    assert found.rows() == [("boom", 4)]


def test_type_given_for_an_existing_column_must_match(people: Campaign, tmp_path: Path) -> None:
    with pytest.raises(ImportError_) as caught:
        people.import_file(write(tmp_path, "t.csv", "crm_id,employees\nc1,5\n"), types={"employees": "VARCHAR"})
    assert "column 'employees' is BIGINT in campaign 'people', not VARCHAR" in str(caught.value)


# ---- malformed files: refused whole, by line ---------------------------------------------------------------


def _truncated_parquet(folder: Path) -> Path:
    path = folder / "cut.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT range AS crm_id FROM range(1000)) TO '{path}' (FORMAT parquet)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@dataclass
class Bad:
    name: str
    make: Callable[[Path], Path]
    message: list[str]
    hint: str
    options: dict[str, Any] = field(default_factory=dict)


HEAD = "crm_id,email,first,employees\n"
BAD_FILES = [
    Bad(
        "ragged-row",
        lambda d: write(d, "r.csv", HEAD + "c1,a@x.com,Ann,1\nc2,b@x.com,Bob,2,surplus\n"),
        ["line 3 has 5 fields where the header has 4"],
        "as many fields as the header",
    ),
    Bad(
        "bad-encoding",
        lambda d: write(d, "e.csv", (HEAD + "c1,a@x.com,Zoë,1\nc2,b@x.com,Bo").encode() + b"\xff\xfe" + b",2\n"),
        ["line 3 is not valid utf-8 text"],
        "save the file as UTF-8",
    ),
    Bad(
        "wrong-type",
        lambda d: write(d, "t.csv", HEAD + "c1,a@x.com,Ann,1\nc2,b@x.com,Bob,lots\n"),
        ["column 'employees' has values that are not BIGINT: 'lots' on line 3"],
        "fix the values",
    ),
    Bad(
        "ten-megabyte-field",
        lambda d: write(
            d, "big.csv", HEAD + "c1,a@x.com,Ann,1\nc2,b@x.com," + "x" * 10_000_000 + ",2\nc3,c@x.com,Cy,3\n"
        ),
        ["line 3 is longer than the longest line allowed"],
        "--max-line-size",
    ),
    Bad(
        "duplicate-header",
        lambda d: write(d, "d.csv", "crm_id,email,email\nc1,a@x.com,b@x.com\n"),
        ["d.csv has two columns named 'email' (columns 2 and 3)"],
        "rename one",
    ),
    Bad(
        "empty-header",
        lambda d: write(d, "h.csv", "crm_id,,first\nc1,x,Ann\n"),
        ["column 2 of h.csv has an empty header"],
        "give every column a name",
    ),
    Bad(
        "duplicate-key",
        lambda d: write(d, "k.csv", HEAD + "c1,a@x.com,Ann,1\nc2,b@x.com,Bob,2\nc1,c@x.com,Cy,3\n"),
        [
            "2 row(s) of k.csv cannot be imported",
            "key column 'crm_id' repeats c1 on line 2",
            "repeats c1 on line 4",
        ],
        "distinct, non-empty key",
        {"key": "crm_id"},
    ),
    Bad(
        "blank-key",
        lambda d: write(d, "b.csv", HEAD + "c1,a@x.com,Ann,1\n,b@x.com,Bob,2\n"),
        ["key column 'crm_id' is empty on line 3"],
        "distinct, non-empty key",
        {"key": "crm_id"},
    ),
    Bad(
        "key-not-in-file",
        lambda d: write(d, "n.csv", "email\na@x.com\n"),
        ["the file has no column 'crm_id' to match records on"],
        "--key",
        {"key": "crm_id"},
    ),
    Bad("truncated-parquet", _truncated_parquet, ["cannot read cut.parquet"], "truncated"),
    Bad("empty-file", lambda d: write(d, "empty.csv", ""), ["empty.csv is empty"], "header row"),
    Bad(
        "unknown-format",
        lambda d: write(d, "rows.xlsx", "x"),
        ["cannot import rows.xlsx"],
        ".csv or .parquet",
    ),
    Bad(
        "row-id-without-key",
        lambda d: write(d, "ids.csv", "row_id,first\n1,Ann\n"),
        ["the file has a row_id column"],
        "--key row_id",
    ),
]


@pytest.mark.parametrize("case", BAD_FILES, ids=[b.name for b in BAD_FILES])
def test_malformed_file_is_refused_whole_naming_the_line(
    ws: Workspace, people: Campaign, tmp_path: Path, case: Bad
) -> None:
    people.import_file(write(tmp_path, "seed.csv", people_csv(2)))
    before = snapshot(ws)
    with pytest.raises(ImportError_) as caught:
        people.import_file(case.make(tmp_path), **case.options)
    text = str(caught.value)
    for part in case.message:
        assert part in text
    assert case.hint in caught.value.hint and "\n" not in text
    assert snapshot(ws) == before


def test_line_numbers_count_multiline_fields(people: Campaign, tmp_path: Path) -> None:
    text = HEAD + 'c1,a@x.com,"Ann\nwith\nnewlines",1\nc2,b@x.com,Bob,2\nc2,c@x.com,Cy,3\n'
    with pytest.raises(ImportError_) as caught:
        people.import_file(write(tmp_path, "m.csv", text), key="crm_id")
    assert "repeats c2 on line 5" in str(caught.value) and "repeats c2 on line 6" in str(caught.value)


# ---- rejects -----------------------------------------------------------------------------------------------


def test_rejects_file_takes_bad_rows_and_good_ones_go_in(people: Campaign, tmp_path: Path) -> None:
    text = (
        HEAD + "c1,a@x.com,Ann,1\n"  # line 2: good
        "=c2,b@x.com,Bob,2,surplus\n"  # line 3: ragged (and formula-like: escaped in the rejects file)
        "c3,c@x.com,Cy,many\n"  # line 4: not a number
        "c4,d@x.com,Di,4\n"  # line 5: good
        "c5,e@x.com,=cmd(),5\n"  # line 6: repeated key (with line 7)
        "c5,f@x.com,Fay,6\n"
        ",g@x.com,Gus,7\n"  # line 8: blank key
        "c9,h@x.com,Hal,9\n"
    )  # line 9: good
    rejects = tmp_path / "rejects.csv"
    report = people.import_file(write(tmp_path, "mixed.csv", text), key="crm_id", rejects=rejects)
    assert (report.records, len(report.inserted), report.rejected, report.rejects_file) == (8, 3, 5, rejects)
    assert rows_of(people, "crm_id", "first") == [(1, "c1", "Ann"), (2, "c4", "Di"), (3, "c9", "Hal")]
    with rejects.open(encoding="utf-8", newline="") as handle:
        found = list(csv.DictReader(handle))
    assert [int(r["line"]) for r in found] == [3, 4, 6, 7, 8]
    assert found[0]["error"] == "line 3 has 5 fields where the header has 4"
    assert found[0]["record"] == "'=c2,b@x.com,Bob,2,surplus"
    assert "not BIGINT: 'many' on line 4" in found[1]["error"]
    assert found[2]["error"] == "key column 'crm_id' repeats c5 on line 6 and other(s)"
    assert json.loads(found[2]["record"]) == {
        "crm_id": "c5",
        "email": "e@x.com",
        "first": "=cmd()",
        "employees": 5,
    }
    assert found[4]["error"] == "key column 'crm_id' is empty on line 8"
    assert not list(tmp_path.glob(".rejects.csv.*"))


def test_no_rejects_file_is_left_when_every_row_is_good(people: Campaign, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    report = people.import_file(write(tmp_path, "ok.csv", people_csv(3)), rejects=rejects)
    assert (report.rejected, report.rejects_file, len(report.inserted)) == (0, None, 3)
    assert not rejects.exists() and not list(tmp_path.glob(".rejects*"))


def test_a_bad_file_lists_every_kind_of_problem_in_one_pass(ws: Workspace, people: Campaign, tmp_path: Path) -> None:
    """Issue 15: ragged lines, bad encoding, repeated and blank keys and values of the wrong type are all named,
    by line, in one refusal (the first of each kind, then the first others, up to 20, then how many more), and
    nothing is imported."""
    people.import_file(write(tmp_path, "seed.csv", people_csv(2)))
    before = snapshot(ws)
    lines = [
        "c1,a@x.com,Zoë,1",  # line 2
        "c2,b@x.com,Bob,many",  # 3: not a BIGINT
        "c3,c@x.com,Cy",  # 4: ragged
        "c1,d@x.com,Di,4",  # 5: repeats the key of line 2
        ",e@x.com,Eve,5",  # 6: blank key
    ]
    lines += [f"c{i},x{i}@x.com,X,lots" for i in range(10, 40)]  # lines 7-36: 30 more values of the wrong type
    content = (HEAD + "\n".join(lines) + "\n").encode() + b"c9,f@x.com,F\xff\xfe,9\n"  # line 37: not UTF-8
    with pytest.raises(ImportError_) as caught:
        people.import_file(write(tmp_path, "bad.csv", content), key="crm_id")
    text = caught.value.message
    assert text.startswith("36 row(s) of bad.csv cannot be imported: "), text
    for named in (
        "key column 'crm_id' repeats c1 on line 2",
        "column 'employees' has values that are not BIGINT: 'many' on line 3",
        "line 4 has 3 fields where the header has 4",
        "key column 'crm_id' repeats c1 on line 5",
        "key column 'crm_id' is empty on line 6",
        "line 37 is not valid utf-8 text",
    ):
        assert named in text, named
    listed = text.split(": ", 1)[1].split("; ")
    assert len(listed) == 20 and text.endswith(" (and 16 more)")  # 36 bad lines
    lines_named = [int(re.search(r"\bline (\d+)", part).group(1)) for part in listed]  # type: ignore[union-attr]
    assert lines_named == sorted(lines_named)  # in line order, the encoding error among them though it is last
    for hint in ("as many fields as the header", "distinct, non-empty key", "--type COLUMN=VARCHAR", "UTF-8"):
        assert hint in caught.value.hint
    assert snapshot(ws) == before
