"""Every bad spec and every bad edit gives its clear error (the culprit, what is wrong, the fix), and the
workspace is unchanged afterwards: compared table by table with `snapshot(ws)` before and after."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import Campaign, CycleError, EditError, ImportError_, NotFoundError, RunsheetError, SpecError, Workspace
from engine.testing import PROBE_LEDGER
from tests.conftest import BASIC_ROWS, BASIC_SPEC, copy_workspace, snapshot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def _basic_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The `basic` campaign (conftest's BASIC_SPEC and BASIC_ROWS) built once, with its snapshot."""
    folder = tmp_path_factory.mktemp("template") / "ws"
    ws = Workspace.init(folder)
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    assert ws.campaign("t").row_count() == 3
    return folder, snapshot(ws)


@pytest.fixture
def basic_ws(
    _basic_template: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    """A byte-for-byte copy of the `basic` workspace (building it per test is 5x slower)."""
    monkeypatch.chdir(REPO)  # python steps import `campaigns.outbound_steps` from the folder runsheet runs in
    folder = tmp_path / "ws"
    copy_workspace(_basic_template[0], folder)
    return Workspace(folder)


@pytest.fixture
def before(_basic_template: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """`snapshot()` of every `basic_ws` before the test touches it (the copies are identical)."""
    return _basic_template[1]


def spec_with(*columns: str) -> str:
    """The basic spec with extra columns appended, so a bad spec is always an update of a live campaign."""
    return BASIC_SPEC + "".join(f"  - {column}\n" for column in columns)


CYCLE_2 = spec_with('{name: a, kind: formula, expression: "b"}', '{name: b, kind: formula, expression: "a"}')
CYCLE_3 = spec_with(
    '{name: a, kind: formula, expression: "b || first"}',
    '{name: b, kind: formula, expression: "upper(c)"}',
    '{name: c, kind: formula, expression: "a || email"}',
)

Culprit = str | tuple[str, ...] | None


def case(
    id: str,
    spec: str,
    column: Culprit,
    expected: str,
    *,
    bug: str | None = None,
    raises: type[BaseException] | None = None,
) -> Any:
    """One bad spec: the column the error must name (None: not about one column; a tuple: any of those)
    and a substring of str(err). `bug` marks a known engine bug (strict xfail)."""
    marks = [pytest.mark.xfail(strict=True, reason=f"engine bug: {bug}", raises=raises)] if bug else []
    return pytest.param(spec, column, expected, id=id, marks=marks)


BAD = "{name: bad, kind: formula, expression: "
SPEC_CASES = [
    case("unknown-reference", spec_with(BAD + '"upper(emial)"}'), "bad", "unknown column reference 'emial'"),
    case(
        "unknown-reference-in-an-existing-column",
        BASIC_SPEC.replace("split_part(email, '@', 2)", "split_part(emial, '@', 2)"),
        "domain",
        "unknown column reference 'emial'",
    ),
    case(
        "unknown-reference-in-run_if",
        spec_with(BAD + '"1", run_if: "size > 3"}'),
        "bad",
        "unknown column reference 'size'",
    ),
    case(
        "unknown-input",
        spec_with("{name: bad, kind: probe, inputs: [domain, nope]}"),
        "bad",
        "unknown column reference 'nope'",
    ),
    case(
        "unknown-required",
        spec_with("{name: bad, kind: probe, inputs: [domain], required: [emial]}"),
        "bad",
        "unknown column reference 'emial'",
    ),
    case("duplicate-name", spec_with("{name: domain, kind: input}"), "domain", "duplicate column name"),
    case("cycle-self", spec_with('{name: a, kind: formula, expression: "a || email"}'), "a", "dependency cycle a -> a"),
    case("cycle-2", CYCLE_2, ("a", "b"), "dependency cycle"),
    case("cycle-3", CYCLE_3, ("a", "b", "c"), "dependency cycle"),
    case("sql-syntax", spec_with(BAD + '"split_part(email,"}'), "bad", "invalid SQL expression"),
    case("sql-volatile", spec_with(BAD + '"email || random()"}'), "bad", "calls a volatile function"),
    case("sql-empty", spec_with(BAD + '""}'), "bad", "the expression is empty"),
    case("sql-unknown-function", spec_with(BAD + '"nosuchfn(email)"}'), "bad", "nosuchfn does not exist"),
    case("sql-type-error", spec_with(BAD + '"email + 1"}'), "bad", "Binder Error"),
    case("sql-type-error-in-run_if", spec_with(BAD + '"1", run_if: "employees + [1]"}'), "bad", "invalid SQL run_if"),
    case(
        "sql-several-statements", spec_with(BAD + '"1; DROP TABLE x"}'), "bad", "one expression, not several statements"
    ),
    case("sql-subquery", spec_with(BAD + '"(SELECT count(*) FROM campaigns)"}'), "bad", "no statements or subqueries"),
    case("unknown-kind", spec_with("{name: bad, kind: llm, inputs: [email]}"), "bad", "unknown kind 'llm'"),
    case("bad-option-value", spec_with(BAD + '"1", run: sometimes}'), "bad", "bad value for option 'run'"),
    case(
        "bad-option-type",
        spec_with("{name: bad, kind: probe, inputs: [email], credits: lots}"),
        "bad",
        "bad value for option 'credits'",
    ),
    case("unknown-option", spec_with(BAD + '"1", colour: red}'), "bad", "unknown option 'colour' for kind formula"),
    case("misspelled-option", spec_with('{name: bad, kind: formula, expresion: "upper(email)"}'), "bad", "expresion"),
    case(
        "missing-option", spec_with("{name: bad, kind: formula}"), "bad", "missing option 'expression' for kind formula"
    ),
    case(
        "bad-input-type",
        spec_with("{name: bad, kind: input, type: NOTATYPE}"),
        "bad",
        "'NOTATYPE' is not a DuckDB type",
    ),
    case(
        "input-type-with-sql",
        spec_with('{name: bad, kind: input, type: "VARCHAR; SELECT 1"}'),
        "bad",
        "is not a DuckDB type",
    ),
    case("name-with-space", spec_with("{name: first name, kind: input}"), None, "invalid name 'first name'"),
    case("reserved-name", spec_with("{name: row_id, kind: input}"), None, "reserved name 'row_id'"),
    # issue 13, item 16: names DuckDB folds together, and names a run uses for its own fields
    case("reserved-name-in-other-case", spec_with("{name: Row_ID, kind: input}"), None, "reserved name 'Row_ID'"),
    case("reserved-internal-name", spec_with("{name: key, kind: input}"), None, "reserved name 'key'"),
    case(
        "name-of-a-steps-status",
        spec_with("{name: s_research, kind: input}"),
        "s_research",
        "how a run reads the state of step 'research'",
    ),
    case(
        "names-differing-only-in-case",
        spec_with("{name: Email, kind: input}"),
        "Email",
        "differs from 'email' only in case",
    ),
    case(
        "nested-too-deep-for-the-yaml-parser",
        spec_with("{name: bad, kind: input, description: " + "[" * 5000 + "]" * 5000 + "}"),
        None,
        "nests lists or mappings more than 64 levels deep",
    ),
    case(
        "nested-too-deep",
        spec_with("{name: bad, kind: input, description: " + "[" * 65 + "]" * 65 + "}"),
        None,
        "nests lists or mappings more than 64 levels deep",
    ),
    case(
        "renamed-from-a-name-still-there",
        spec_with("{name: mail, kind: input, renamed_from: email}"),
        "mail",
        "renamed_from 'email', a name the spec still has",
    ),
    case(
        "lossy-retype",
        BASIC_SPEC.replace("type: BIGINT", "type: BOOLEAN"),
        "employees",
        "changing BIGINT to BOOLEAN would change 3 stored value(s), e.g. 40 -> true",
    ),
    case(
        "python-no-such-function",
        spec_with("{name: bad, kind: python, function: 'campaigns.outbound_steps:nope', inputs: [email]}"),
        "bad",
        "module 'campaigns.outbound_steps' has no function 'nope'",
    ),
    case(
        "python-no-such-module",
        spec_with("{name: bad, kind: python, function: 'campaigns.no_such_module:f', inputs: [email]}"),
        "bad",
        "cannot import module 'campaigns.no_such_module'",
    ),
    case(
        "python-bad-reference",
        spec_with("{name: bad, kind: python, function: just_a_name, inputs: [email]}"),
        "bad",
        "is not of the form package.module:function",
    ),
    case("step-without-inputs", spec_with("{name: bad, kind: probe}"), "bad", "a probe step needs 'inputs'"),
    case("yaml-syntax", BASIC_SPEC + "  - {name: bad, kind: formula, expression: [\n", None, "not valid YAML at line"),
    case("top-level-key", BASIC_SPEC + "colums: []\n", None, "unknown top-level key(s): colums"),
    case("not-a-mapping", "- campaign: t\n", None, "a spec must be a mapping"),
    case("bad-campaign-name", BASIC_SPEC.replace("campaign: t", "campaign: my campaign"), None, "'my campaign'"),
    case("no-columns", "campaign: t\ncolumns: []\n", None, "'columns' must be a non-empty list"),
    case("column-not-a-mapping", spec_with("just_a_name"), None, "column #9 is not a mapping"),
    # refused only against the stored data, after the store started updating the campaign: must roll back
    case(
        "retype-input-holding-text",
        BASIC_SPEC.replace("{name: first, kind: input}", "{name: first, kind: input, type: BIGINT}"),
        "first",
        "3 stored value(s) cannot become BIGINT, e.g. 'Ann'",
    ),
    case(
        "input-holding-data-becomes-step",
        BASIC_SPEC.replace("{name: first, kind: input}", '{name: first, kind: formula, expression: "1"}'),
        "first",
        "the input column holds 3 value(s)",
    ),
]


@pytest.mark.parametrize(("spec", "column", "expected"), SPEC_CASES)
def test_bad_spec_is_refused_whole_and_names_the_culprit(
    basic_ws: Workspace, before: dict[str, Any], spec: str, column: Culprit, expected: str
) -> None:
    with pytest.raises(SpecError) as caught:
        basic_ws.apply(spec)
    err = caught.value
    if isinstance(column, tuple):
        assert err.column in column, str(err)
    else:
        assert err.column == column, str(err)
    assert expected in str(err)
    assert err.hint.strip(), f"no hint: {err}"
    assert str(err).endswith(f"({err.hint})") and "\n" not in str(err)
    if column is not None and not isinstance(column, tuple):
        assert str(err).startswith(f"column '{column}': ")
    assert snapshot(basic_ws) == before
    assert basic_ws.campaign("t").spec.names == [
        "email",
        "first",
        "employees",
        "domain",
        "greet",
        "research",
        "opener",
        "opener_length",
    ]
    assert PROBE_LEDGER.calls == []


@pytest.mark.parametrize(
    ("spec", "members"),
    [
        pytest.param(spec_with('{name: a, kind: formula, expression: "a || email"}'), {"a"}, id="self"),
        pytest.param(CYCLE_2, {"a", "b"}, id="2"),
        pytest.param(CYCLE_3, {"a", "b", "c"}, id="3"),
    ],
)
def test_cycle_error_walks_the_loop(basic_ws: Workspace, before: dict[str, Any], spec: str, members: set[str]) -> None:
    with pytest.raises(CycleError) as caught:
        basic_ws.apply(spec)
    err = caught.value
    assert err.path[0] == err.path[-1]
    assert set(err.path) == members and len(err.path) == len(members) + 1
    assert err.column == err.path[1]  # the column whose inputs the hint says to change
    assert " -> ".join(err.path) in str(err)
    assert "remove" in err.hint
    assert snapshot(basic_ws) == before


# What each cycle column reads, as written in CYCLE_2 and CYCLE_3.
READS = {"2": {"a": {"b"}, "b": {"a"}}, "3": {"a": {"b", "first"}, "b": {"c"}, "c": {"a", "email"}}}


@pytest.mark.parametrize(
    ("spec", "reads"),
    [
        pytest.param(CYCLE_2, READS["2"], id="2"),
        pytest.param(
            CYCLE_3,
            READS["3"],
            id="3",
        ),
    ],
)
def test_cycle_hint_names_an_input_the_column_really_has(
    basic_ws: Workspace, spec: str, reads: dict[str, set[str]]
) -> None:
    with pytest.raises(CycleError) as caught:
        basic_ws.apply(spec)
    found = re.fullmatch(r"remove (\w+) from the inputs of (\w+)", caught.value.hint)
    assert found, caught.value.hint
    removed, reader = found.groups()
    assert removed in reads[reader], f"{caught.value}: {reader} reads only {sorted(reads[reader])}"


# ---- bad edits ---------------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


Edit = Callable[[Workspace, Campaign, Path], object]

# (id, the edit, the error type, a substring of str(err), a substring of the hint)
EDIT_CASES: list[tuple[str, Edit, type[RunsheetError], str, str]] = [
    (
        "set-bigint-to-text",
        lambda ws, c, tmp: c.set(1, "employees", "lots"),
        EditError,
        "'lots' is not a valid BIGINT for column 'employees'",
        "give a BIGINT value",
    ),
    (
        "pin-step-with-wrong-type",
        lambda ws, c, tmp: c.set(1, "opener_length", "long"),
        EditError,
        "'long' is not a valid BIGINT for column 'opener_length'",
        "BIGINT",
    ),
    (
        "set-unknown-column",
        lambda ws, c, tmp: c.set(1, "emial", "x@y.com"),
        NotFoundError,
        "campaign 't' has no column 'emial'",
        "email",
    ),
    (
        "set-unknown-row",
        lambda ws, c, tmp: c.set(999, "email", "x@y.com"),
        NotFoundError,
        "campaign 't' has no row 999",
        "runsheet show",
    ),
    ("unknown-campaign", lambda ws, c, tmp: ws.campaign("nope"), NotFoundError, "no campaign named 'nope'", "known: t"),
    (
        "run-an-input-column",
        lambda ws, c, tmp: c.run(["email"]),
        EditError,
        "'email' is an input column",
        "run a step column instead",
    ),
    (
        "run-unknown-column",
        lambda ws, c, tmp: c.run(["researh"]),
        NotFoundError,
        "campaign 't' has no column 'researh'",
        "research",
    ),
    (
        "run-valid-and-unknown-rows",
        lambda ws, c, tmp: c.run(["opener"], rows=[1, 999]),
        NotFoundError,
        "campaign 't' has no row 999",
        "runsheet show",
    ),
    (
        "pull-unknown-row",
        lambda ws, c, tmp: c.cell(999, "research", compute=True),
        NotFoundError,
        "campaign 't' has no row 999",
        "runsheet show",
    ),
    (
        "page-unknown-column",
        lambda ws, c, tmp: c.page(columns=["email", "nope"]),
        NotFoundError,
        "campaign 't' has no column 'nope'",
        "email",
    ),
    (
        "import-csv-with-extra-column-refused",
        lambda ws, c, tmp: c.import_file(
            _write(tmp, "extra.csv", "email,first,employees,phone\nzed@zeta.com,Zed,5,555-0100\n"), add_columns=False
        ),
        ImportError_,
        "column(s) phone are not input columns of campaign 't'",
        "kind: input",
    ),
    (
        "import-csv-with-step-column",
        lambda ws, c, tmp: c.import_file(_write(tmp, "steps.csv", "email,first,domain\nzed@zeta.com,Zed,zeta.com\n")),
        ImportError_,
        "column(s) domain are step columns of campaign 't'",
        "--skip domain",
    ),
    (
        "import-csv-with-non-integer",
        lambda ws, c, tmp: c.import_file(
            _write(tmp, "bad.csv", "email,first,employees\nzed@zeta.com,Zed,5\nyan@yotta.com,Yan,many\n")
        ),
        ImportError_,
        "column 'employees' has values that are not BIGINT",
        "fix the values",
    ),
    (
        "import-missing-file",
        lambda ws, c, tmp: c.import_file(tmp / "nowhere.csv"),
        ImportError_,
        "no file at",
        "check the path",
    ),
    (
        "import-unknown-format",
        lambda ws, c, tmp: c.import_file(_write(tmp, "rows.txt", "email\na@b.c\n")),
        ImportError_,
        "cannot import rows.txt",
        ".csv or .parquet",
    ),
    (
        "add-rows-with-unknown-column",
        lambda ws, c, tmp: c.add_rows([{"email": "z@z.com", "phone": "1"}]),
        ImportError_,
        "column(s) phone are not input columns",
        "kind: input",
    ),
    (
        "apply-missing-file",
        lambda ws, c, tmp: ws.apply(tmp / "missing.yaml"),
        SpecError,
        "cannot read",
        "check the path",
    ),
    (
        "open-missing-workspace",
        lambda ws, c, tmp: Workspace(tmp / "elsewhere"),
        NotFoundError,
        "no workspace at",
        "runsheet init",
    ),
]


@pytest.mark.parametrize(
    ("edit", "error", "expected", "hint"), [pytest.param(*case[1:], id=case[0]) for case in EDIT_CASES]
)
def test_bad_edit_gives_its_error_and_changes_nothing(
    basic_ws: Workspace,
    before: dict[str, Any],
    tmp_path: Path,
    edit: Edit,
    error: type[RunsheetError],
    expected: str,
    hint: str,
) -> None:
    campaign = basic_ws.campaign("t")
    with pytest.raises(RunsheetError) as caught:
        edit(basic_ws, campaign, tmp_path)
    err = caught.value
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert expected in str(err)
    assert err.hint.strip() and hint in err.hint
    assert "\n" not in str(err)
    assert snapshot(basic_ws) == before
    assert campaign.row_count() == 3
    assert PROBE_LEDGER.calls == []


def test_a_good_edit_after_refused_ones_still_works(basic_ws: Workspace, tmp_path: Path) -> None:
    """The refusals above leave nothing half-done behind: the same workspace takes the corrected edits."""
    campaign = basic_ws.campaign("t")
    with pytest.raises(ImportError_):
        campaign.import_file(_write(tmp_path, "bad.csv", "email,first,employees\nzed@zeta.com,Zed,many\n"))
    with pytest.raises(EditError):
        campaign.set(2, "employees", "lots")
    ids = campaign.import_file(_write(tmp_path, "good.csv", "email,first,employees\nzed@zeta.com,Zed,7\n")).inserted
    assert list(ids) == [4]  # the refused import did not use up row ids
    campaign.set(2, "employees", "901")
    assert campaign.cell(4, "greet").value == "Hi Zed at zeta.com"
    assert campaign.cell(2, "employees").value == 901
    basic_ws.apply(spec_with('{name: shout, kind: formula, expression: "upper(first)"}'))
    assert campaign.cell(4, "shout").value == "ZED"
