"""Issue 13, data in and out: an upsert touches only the rows its key names, an export comes back in unchanged,
and bad input is refused up front in one line that names the fix, with nothing written."""

from __future__ import annotations

import csv
import functools
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Campaign, ImportError_, Workspace
from engine.io.exporter import FORMULA_STARTS, formula_safe, formula_unescaped
from tests.cli.test_cli import cli, ok, ok_json
from tests.io.conftest import write

LEADS_SPEC = """
campaign: leads
columns:
  - {name: linkedin, kind: input}
  - {name: name, kind: input}
  - {name: company, kind: input}
  - {name: shout, kind: formula, expression: "upper(company)"}
"""
FOUNDERS = (
    "linkedin,name,company\n"
    "in/acme,Ann,Acme\n"
    "in/acme,Bob,Acme\n"
    "in/acme,Cy,Acme\n"
    "in/acme,Di,Acme\n"
    "in/globex,Eve,Globex\n"
)


@pytest.fixture
def leads(ws: Workspace, tmp_path: Path) -> Campaign:
    """Five founders; four of them share one company LinkedIn URL."""
    ws.apply(LEADS_SPEC)
    campaign = ws.campaign("leads")
    campaign.import_file(write(tmp_path, "founders.csv", FOUNDERS))
    return campaign


def rows_of(ws: Workspace, campaign: str) -> list[tuple[object, ...]]:
    return ws.query(f"SELECT * EXCLUDE (row_id) FROM {campaign} ORDER BY row_id").rows()


def cli_workspace(tmp_path: Path, spec: str, data: str) -> Path:
    """A workspace made through the CLI: `init`, `apply SPEC`, `import DATA`."""
    folder = tmp_path / "cli-ws"
    ok(folder, "init", str(folder))
    ok(folder, "apply", str(write(tmp_path, "spec.yaml", spec)))
    ok(folder, "import", str(write(tmp_path, "data.csv", data)))
    return folder


# ---- 1. an upsert never touches a row it was not meant for -------------------------------------------------


def test_upsert_refuses_a_key_repeated_in_the_campaign(leads: Campaign, ws: Workspace, tmp_path: Path) -> None:
    before = rows_of(ws, "leads")
    company = write(tmp_path, "company.csv", "linkedin,name,company\nin/acme,Acme Inc,Acme Inc\n")
    with pytest.raises(ImportError_) as refused:
        leads.import_file(company, key="linkedin")
    assert refused.value.message == (
        "1 row(s) of company.csv cannot be imported: key 'linkedin' value 'in/acme' on line 2 is held by "
        "4 rows of campaign 'leads' (rows 1, 2, 3, 4)"
    )
    assert "dedupe the campaign, or pick a key that is unique in it, such as row_id" in refused.value.hint
    assert rows_of(ws, "leads") == before


def test_upsert_rejects_records_whose_key_the_campaign_repeats_and_takes_the_rest(
    leads: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    update = write(
        tmp_path,
        "update.csv",
        "linkedin,name,company\nin/acme,Acme Inc,Acme Inc\nin/globex,Eve,Globex Corp\nin/initech,Peter,Initech\n",
    )
    rejects = tmp_path / "rejects.csv"
    report = leads.import_file(update, key="linkedin", rejects=rejects)
    assert (report.updated, report.unchanged, list(report.inserted), report.rejected) == (1, 0, [6], 1)
    assert [r[:3] for r in rows_of(ws, "leads")] == [
        ("in/acme", "Ann", "Acme"),
        ("in/acme", "Bob", "Acme"),
        ("in/acme", "Cy", "Acme"),
        ("in/acme", "Di", "Acme"),
        ("in/globex", "Eve", "Globex Corp"),
        ("in/initech", "Peter", "Initech"),
    ]
    with rejects.open(encoding="utf-8", newline="") as handle:
        found = list(csv.DictReader(handle))
    assert [(r["line"], r["error"]) for r in found] == [
        ("2", "key 'linkedin' value 'in/acme' on line 2 is held by 4 rows of campaign 'leads' (rows 1, 2, 3, 4)")
    ]
    assert json.loads(found[0]["record"]) == {"linkedin": "in/acme", "name": "Acme Inc", "company": "Acme Inc"}


def test_upsert_by_row_id_still_updates_rows_that_share_another_key(
    leads: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    report = leads.import_file(write(tmp_path, "ids.csv", "row_id,name\n2,Bobby\n4,Dina\n"), key="row_id")
    assert (report.updated, report.unchanged, len(report.inserted)) == (2, 0, 0)
    assert [r[1] for r in rows_of(ws, "leads")] == ["Ann", "Bobby", "Cy", "Dina", "Eve"]


def test_cli_upsert_refuses_a_key_repeated_in_the_campaign(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, LEADS_SPEC, FOUNDERS)
    company = write(tmp_path, "company.csv", "linkedin,company\nin/acme,Acme Inc\n")
    result = cli(folder, "import", str(company), "--key", "linkedin")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "error: 1 row(s) of company.csv cannot be imported: key 'linkedin' value 'in/acme' on line 2 is held "
        "by 4 rows of campaign 'leads' (rows 1, 2, 3, 4) (dedupe the campaign"
    )
    assert result.stderr.count("\n") == 1
    shown = ok_json(folder, "export", "-o", str(tmp_path / "after.csv"))
    assert shown["rows"] == 5
    assert "Acme Inc" not in (tmp_path / "after.csv").read_text(encoding="utf-8")


# ---- 4. round trips are lossless ---------------------------------------------------------------------------

CONTACTS_SPEC = """
campaign: contacts
columns:
  - {name: name, kind: input}
  - {name: handle, kind: input}
  - {name: phone, kind: input}
  - {name: delta, kind: input}
  - {name: note, kind: input}
  - {name: score, kind: input, type: BIGINT}
  - {name: tagged, kind: formula, expression: "handle || ' / ' || phone"}
"""
CONTACTS = [
    {"name": "Ann", "handle": "@ann", "phone": "+1 555 0100", "delta": "-5", "note": "'=already quoted", "score": -5},
    {"name": "Bob", "handle": "@bob", "phone": "+44 20 7946", "delta": "=1+1", "note": "'plain", "score": 7},
]


@pytest.fixture
def contacts(ws: Workspace) -> Campaign:
    ws.apply(CONTACTS_SPEC)
    campaign = ws.campaign("contacts")
    campaign.add_rows(CONTACTS)
    return campaign


def _edit_csv(path: Path, row: int, column: str, value: str) -> None:
    """What a person does in a spreadsheet: change one cell, save as CSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[row][column] = value
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_export_edit_import_by_row_id_keeps_formula_like_text(
    contacts: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    exported = contacts.export(tmp_path / "contacts.csv").path
    assert "'@ann" in exported.read_text(encoding="utf-8")  # the export is still escaped for spreadsheets
    _edit_csv(exported, 1, "name", "Bobby")
    report = contacts.import_file(exported, key="row_id", skip=("tagged",))
    assert (report.updated, report.unchanged, len(report.inserted)) == (1, 1, 0)
    assert ws.query("SELECT name, handle, phone, delta, note, score FROM contacts ORDER BY row_id").rows() == [
        ("Ann", "@ann", "+1 555 0100", "-5", "'=already quoted", -5),
        ("Bobby", "@bob", "+44 20 7946", "=1+1", "'plain", 7),
    ]


def test_cli_export_edit_import_keeps_formula_like_text(tmp_path: Path) -> None:
    data = "name,handle,phone,delta,note,score\nAnn,@ann,+1 555 0100,-5,=x,-5\n"
    folder = cli_workspace(tmp_path, CONTACTS_SPEC, data)
    exported = tmp_path / "out.csv"
    ok(folder, "export", "-o", str(exported), "--columns", "name,handle,phone,delta,note,score")
    assert exported.read_text(encoding="utf-8").splitlines()[1].startswith("1,Ann,'@ann,'+1 555 0100,'-5,'=x,-5")
    _edit_csv(exported, 0, "name", "Anna")
    assert ok_json(folder, "import", str(exported), "--key", "row_id")["updated"] == 1
    shown = json.loads(
        ok(folder, "query", "SELECT name, handle, phone, delta, note FROM contacts", "--format", "json").stdout
    )
    assert shown == [{"name": "Anna", "handle": "@ann", "phone": "+1 555 0100", "delta": "-5", "note": "=x"}]


def test_a_first_import_reads_an_exported_file_back_as_it_was(
    contacts: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    exported = contacts.export(tmp_path / "contacts.csv", columns=["handle", "phone", "delta", "note"]).path
    ws.apply("campaign: copy\ncolumns:\n  - {name: handle, kind: input}\n")
    ws.campaign("copy").import_file(exported, skip=("row_id",))
    assert ws.query("SELECT handle, phone, delta, note FROM copy ORDER BY row_id").rows() == [
        ("@ann", "+1 555 0100", "-5", "'=already quoted"),
        ("@bob", "+44 20 7946", "=1+1", "'plain"),
    ]


def test_raw_import_keeps_a_leading_apostrophe(ws: Workspace, tmp_path: Path) -> None:
    ws.apply("campaign: raw\ncolumns:\n  - {name: handle, kind: input}\n")
    ws.campaign("raw").import_file(write(tmp_path, "raw.csv", "handle\n'@ann\n"), unescape=False)
    assert ws.query("SELECT handle FROM raw").rows() == [("'@ann",)]


@functools.cache
def _scratch() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["'", "=", "+", "-", "@", "\t", "\r", "a", " ", "1"]), max_size=6))
def test_the_import_unescape_undoes_the_export_escape_for_any_text(text: str) -> None:
    escaped, back = _scratch().execute(
        f"SELECT {formula_safe('$1::VARCHAR')}, {formula_unescaped(formula_safe('$1::VARCHAR'))}", [text]
    ).fetchone() or (None, None)
    assert back == text
    assert not escaped[:1] or escaped[0] not in FORMULA_STARTS  # what a spreadsheet opens is never a formula


JSON_SPEC = """
campaign: scored
columns:
  - {name: company, kind: input}
  - {name: profile, kind: input, type: JSON}
  - {name: fit, kind: formula, expression: "json_object('company', company, 'score', length(company))"}
"""


def test_parquet_export_of_json_columns_reads_back_as_text_in_polars(ws: Workspace, tmp_path: Path) -> None:
    ws.apply(JSON_SPEC)
    scored = ws.campaign("scored")
    scored.add_rows([{"company": "Acme", "profile": '{"size": 40}'}, {"company": "Globex", "profile": "-5"}])
    frame = pl.read_parquet(scored.export(tmp_path / "scored.parquet").path)
    assert frame.schema["profile"] == pl.String and frame.schema["fit"] == pl.String
    assert [json.loads(v) for v in frame["fit"]] == [
        {"company": "Acme", "score": 4},
        {"company": "Globex", "score": 6},
    ]
    assert frame["profile"].to_list() == ['{"size": 40}', "-5"]
    ws.apply("campaign: again\ncolumns:\n  - {name: company, kind: input}\n")
    again = ws.campaign("again")
    report = again.import_file(tmp_path / "scored.parquet", skip=("row_id",))
    assert report.added_columns == {"profile": "JSON", "fit": "JSON"}
    assert ws.query("SELECT fit->>'score' AS s FROM again ORDER BY row_id")["s"].to_list() == ["4", "6"]


def test_cli_parquet_export_of_json_reads_back_as_text(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, JSON_SPEC, 'company,profile\nAcme,"{""size"": 40}"\n')
    ok(folder, "export", "-o", str(tmp_path / "out.parquet"))
    frame = pl.read_parquet(tmp_path / "out.parquet")
    assert frame.schema["fit"] == pl.String and json.loads(frame["fit"][0]) == {"company": "Acme", "score": 4}


# ---- 16. bad input is refused up front, in one line that names the fix, with nothing written --------------

PEOPLE = """
campaign: people
columns:
  - {name: Email, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: shout, kind: formula, expression: "upper(Email)"}
"""


@pytest.fixture
def people(ws: Workspace) -> Campaign:
    ws.apply(PEOPLE)
    campaign = ws.campaign("people")
    campaign.add_rows([{"Email": "ann@acme.com", "employees": 40}])
    return campaign


def state(campaign: Campaign) -> tuple[tuple[str, ...], int]:
    """The campaign's columns and row count: what a refused import must leave as it was."""
    return tuple(campaign.spec.names), campaign.row_count()


def test_a_header_that_folds_to_a_column_name_feeds_that_column(
    people: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    report = people.import_file(write(tmp_path, "a.csv", "EMAIL:,Employees\nbob@globex.io,900\n"))
    assert report.added_columns == {} and report.columns == {"EMAIL:": "Email", "Employees": "employees"}
    people.import_file(write(tmp_path, "b.csv", "email,employees\ncy@initech.com,3\n"))
    assert state(people) == (("Email", "employees", "shout"), 3)
    assert ws.query("SELECT shout FROM people ORDER BY row_id")["shout"].to_list() == [
        "ANN@ACME.COM",
        "BOB@GLOBEX.IO",
        "CY@INITECH.COM",
    ]


def test_two_headers_that_fold_to_one_name_are_refused(people: Campaign, tmp_path: Path) -> None:
    before = state(people)
    with pytest.raises(ImportError_, match="headers 'Email' and 'email' both map to column 'Email'") as refused:
        people.import_file(write(tmp_path, "two.csv", "Email,email\na@x.com,b@x.com\n"))
    assert "leave one out with --skip" in refused.value.hint
    assert state(people) == before


def test_cli_a_header_that_folds_to_a_column_name_feeds_that_column(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, PEOPLE, "Email,employees\nann@acme.com,40\n")
    added = ok_json(folder, "import", str(write(tmp_path, "more.csv", " email.\nbob@globex.io\n")))["added_columns"]
    assert added == {}
    result = cli(folder, "import", str(write(tmp_path, "two.csv", "EMAIL,email\na,b\n")))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: headers 'EMAIL' and 'email' both map to column 'Email'")


@pytest.mark.parametrize(
    ("name", "make", "added"),
    [
        ("rowid-csv", lambda d: write(d, "r.csv", "Email,rowid\nz@z.com,77\n"), {"rowid": "BIGINT"}),
        ("rowid-json", lambda d: write(d, "r.jsonl", '{"Email": "z@z.com", "rowid": 77}\n'), {"rowid": "BIGINT"}),
        ("reserved-key", lambda d: write(d, "k.csv", "Email,key\nz@z.com,77\n"), {"key_": "BIGINT"}),
        ("step-state", lambda d: write(d, "s.csv", "Email,s_shout\nz@z.com,77\n"), {"s_shout_": "BIGINT"}),
        ("parquet-row-number", lambda d: _parquet(d, {"Email": ["z@z.com"], "file_row_number": [77]}), None),
    ],
)
def test_a_column_named_like_an_internal_one_imports_and_exports(
    people: Campaign, ws: Workspace, tmp_path: Path, name: str, make: object, added: dict[str, str] | None
) -> None:
    report = people.import_file(make(tmp_path))  # type: ignore[operator]
    extra = next(iter(report.added_columns))
    if added is not None:
        assert report.added_columns == added
    assert ws.query(f"SELECT Email, {extra} FROM people WHERE row_id = 2").rows() == [("z@z.com", 77)]
    exported = pl.read_parquet(people.export(tmp_path / "out.parquet").path)
    assert exported.columns == ["row_id", "Email", "employees", "shout", extra]
    assert exported.filter(pl.col("row_id") == 2)[extra].to_list() == [77]


def _parquet(folder: Path, data: dict[str, list[object]]) -> Path:
    path = folder / "data.parquet"
    pl.DataFrame(data).write_parquet(path)
    return path


def test_a_row_id_column_without_the_key_is_refused(people: Campaign, tmp_path: Path) -> None:
    before = state(people)
    with pytest.raises(ImportError_, match="the file has a row_id column") as refused:
        people.import_file(write(tmp_path, "ids.csv", "row_id,Email\n1,x@x.com\n"))
    assert "--key row_id" in refused.value.hint and "--skip row_id" in refused.value.hint
    assert state(people) == before


def _long_line_file(folder: Path, field_bytes: int) -> Path:
    path = folder / "long.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("Email,blob\nann@x.com,short\nbob@x.com,")
        handle.write("x" * field_bytes)
        handle.write("\ncy@x.com,short\n")
    return path


def test_a_field_longer_than_the_reader_can_hold_is_refused_naming_the_limit(people: Campaign, tmp_path: Path) -> None:
    """Over 32 MB (16 times the longest line) DuckDB's reader dropped the line without a word: "imported 0
    rows", exit 0."""
    before = state(people)
    path = _long_line_file(tmp_path, 33_000_000)
    for rejects in (None, tmp_path / "rejects.csv"):
        with pytest.raises(ImportError_) as refused:
            people.import_file(path, rejects=rejects)
        assert refused.value.message == "line 3 of long.csv is longer than the longest line allowed (2,000,000 bytes)"
        assert refused.value.hint == "shorten that field, or allow longer lines with --max-line-size BYTES"
        assert state(people) == before
    assert not (tmp_path / "rejects.csv").exists()


def test_a_field_over_the_limit_names_the_limit(people: Campaign, tmp_path: Path) -> None:
    with pytest.raises(ImportError_, match=r"line 3 is longer than the longest line allowed \(2,000,000 bytes\)"):
        people.import_file(_long_line_file(tmp_path, 3_000_000))
    report = people.import_file(_long_line_file(tmp_path, 3_000_000), rejects=tmp_path / "rejects.csv")
    assert (len(report.inserted), report.rejected) == (2, 1)


def test_cli_a_field_longer_than_the_reader_can_hold_is_refused(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, PEOPLE, "Email,employees\nann@acme.com,40\n")
    result = cli(folder, "import", str(_long_line_file(tmp_path, 33_000_000)))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        "error: line 3 of long.csv is longer than the longest line allowed (2,000,000 bytes) "
        "(shorten that field, or allow longer lines with --max-line-size BYTES)\n"
    )


@pytest.mark.parametrize("given", ["NOTATYPE", "VARCHAR(", "BIGINT; DROP TABLE x"])
def test_an_impossible_type_is_refused_naming_the_valid_types(people: Campaign, tmp_path: Path, given: str) -> None:
    before = state(people)
    with pytest.raises(ImportError_) as refused:
        people.import_file(write(tmp_path, "z.csv", "Email,zip\na@x.com,02134\n"), types={"zip": given})
    assert refused.value.message == f"--type zip={given} is not a type"
    assert refused.value.hint.startswith("use a DuckDB type such as VARCHAR, BIGINT, DOUBLE")
    assert state(people) == before


@pytest.mark.parametrize(
    ("data", "types", "message"),
    [
        (
            "Email,size\na@x.com,1.5\n",
            {"size": "BIGINT"},
            "column 'size' has values that are not BIGINT: '1.5' on line 2",
        ),
        (
            "Email,seen\na@x.com,2024-05-01 10:30:00\n",
            {"seen": "DATE"},
            "column 'seen' has values that are not DATE: '2024-05-01 10:30:00' on line 2",
        ),
        ("Email,price\na@x.com,1.555\n", {"price": "DECIMAL(9,2)"}, "not DECIMAL(9,2): '1.555' on line 2"),
        ("Email,employees\na@x.com,12.5\n", {}, "column 'employees' has values that are not BIGINT: '12.5'"),
    ],
)
def test_a_type_that_would_change_the_values_is_refused(
    people: Campaign, tmp_path: Path, data: str, types: dict[str, str], message: str
) -> None:
    before = state(people)
    with pytest.raises(ImportError_, match=re.escape(message)):
        people.import_file(write(tmp_path, "t.csv", data), types=types)
    assert state(people) == before


def test_a_parquet_value_its_column_cannot_hold_goes_to_rejects(
    people: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    path = _parquet(tmp_path, {"Email": ["a@x.com", "b@x.com"], "employees": [1.5, 2.0]})
    with pytest.raises(ImportError_, match="column 'employees' has values that are not BIGINT: '1.5' on row 1"):
        people.import_file(path)
    report = people.import_file(path, rejects=tmp_path / "rejects.csv")
    assert (len(report.inserted), report.rejected) == (1, 1)
    assert ws.query("SELECT employees FROM people WHERE row_id = 2").rows() == [(2,)]
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as handle:
        found = list(csv.DictReader(handle))
    assert [json.loads(r["record"]) for r in found] == [{"Email": "a@x.com", "employees": 1.5}]


def test_cli_an_impossible_type_is_refused(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, PEOPLE, "Email,employees\nann@acme.com,40\n")
    result = cli(
        folder, "import", str(write(tmp_path, "z.csv", "Email,zip\na@x.com,02134\n")), "--type", "zip=NOTATYPE"
    )
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: --type zip=NOTATYPE is not a type (use a DuckDB type such as VARCHAR")
    assert ok_json(folder, "export", "-o", str(tmp_path / "o.csv"))["columns"] == [
        "row_id",
        "Email",
        "employees",
        "shout",
    ]


def _wide_csv(folder: Path, columns: int) -> Path:
    names = ",".join(f"c{i}" for i in range(columns))
    return write(folder, "wide.csv", names + "\n" + ",".join("1" for _ in range(columns)) + "\n")


def test_a_file_with_more_columns_than_an_import_takes_is_refused(people: Campaign, tmp_path: Path) -> None:
    before = state(people)
    with pytest.raises(ImportError_) as refused:
        people.import_file(_wide_csv(tmp_path, 10_000))
    assert refused.value.message == "wide.csv has 10,000 columns; an import takes at most 1,000"
    assert refused.value.hint.startswith("keep only the columns you need")
    with pytest.raises(ImportError_, match="data.parquet has 1,001 columns; an import takes at most 1,000"):
        people.import_file(_parquet(tmp_path, {f"c{i}": [i] for i in range(1_001)}))
    assert state(people) == before


def test_cli_a_file_with_more_columns_than_an_import_takes_is_refused(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, PEOPLE, "Email,employees\nann@acme.com,40\n")
    result = cli(folder, "import", str(_wide_csv(tmp_path, 10_000)))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: wide.csv has 10,000 columns; an import takes at most 1,000 (keep")


def test_a_wide_json_record_is_columns_not_one_map(people: Campaign, tmp_path: Path) -> None:
    """DuckDB reads a record of more than 200 keys as one MAP column named `json`, unless told not to."""
    record = {"Email": "z@z.com"} | {f"f{i}": i for i in range(300)}
    report = people.import_file(write(tmp_path, "wide.jsonl", json.dumps(record) + "\n"))
    assert len(report.added_columns) == 300 and "json" not in report.added_columns
    too_wide = {f"f{i}": i for i in range(1_001)}
    with pytest.raises(ImportError_, match="has 1,001 columns; an import takes at most 1,000"):
        people.import_file(write(tmp_path, "wider.jsonl", json.dumps(too_wide) + "\n"))


def test_a_json_record_over_the_reader_limit_names_the_fix(people: Campaign, tmp_path: Path) -> None:
    path = write(tmp_path, "big.jsonl", json.dumps({"Email": "z@z.com", "blob": "x" * 40_000_000}) + "\n")
    with pytest.raises(ImportError_, match="maximum_object_size") as refused:
        people.import_file(path)
    assert refused.value.hint == "shorten that record, or import the data as CSV or Parquet"
