"""The `runsheet` command line, driven for real: a few end-to-end runs of `python -m engine.cli` in its own
process, the rest through typer's CliRunner (same commands, in this process, much faster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from typer.testing import CliRunner, Result

from engine import Workspace
from engine.cli import app
from engine.testing import PROBE_LEDGER
from tests.conftest import BASIC_SPEC, copy_workspace, snapshot

REPO = Path(__file__).resolve().parents[2]
CSV = "email,first,employees\nann@acme.com,Ann,40\nbob@globex.io,Bob,900\n"
OPENER_1 = "probe(Hi Ann at acme.com|probe(acme.com))"
# Rich sizes its output from these; a real user's shell usually has none of them set.
CONSOLE_ENV = (
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "RUNSHEET_DEBUG",
)


# ---- helpers -----------------------------------------------------------------------------------------------


def process_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONSOLE_ENV}
    env["RUNSHEET_WORKSPACE"] = str(workspace)
    return env


def runsheet(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`runsheet ARGS` in its own process, stdin/stdout/stderr not terminals (as in a script or CI)."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=REPO,
        env=process_env(workspace),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli(workspace: Path, *args: str) -> Result:
    """`runsheet ARGS` through CliRunner, with RUNSHEET_WORKSPACE set to `workspace`."""
    return CliRunner().invoke(app, list(args), env={"RUNSHEET_WORKSPACE": str(workspace), "USER": "tester"})


def ok(workspace: Path, *args: str) -> Result:
    result = cli(workspace, *args)
    assert result.exit_code == 0, f"runsheet {' '.join(args)}: {result.exit_code}\n{result.output}"
    assert result.stderr == ""
    return result


def ok_json(workspace: Path, *args: str) -> Any:
    return json.loads(click.unstyle(ok(workspace, *args, "--json").stdout))


def grid(workspace: Path, *args: str) -> dict[int, dict[str, dict[str, Any]]]:
    """`show --json` as {row_id: {column: {value, status, ...}}}."""
    shown = ok_json(workspace, "show", *args)
    return {row.pop("row_id"): row for row in shown["rows"]}


def files(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASIC_SPEC, encoding="utf-8")
    csv = tmp_path / "prospects.csv"
    csv.write_text(CSV, encoding="utf-8")
    return spec, csv


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Campaign `t` (conftest's BASIC_SPEC) with the two rows of CSV imported, and its snapshot."""
    folder = tmp_path_factory.mktemp("cli-template")
    spec, csv = files(folder)
    ws = Workspace.init(folder / "ws")
    ws.apply(spec)
    ws.campaign("t").import_file(csv)
    return folder / "ws", snapshot(ws)


@pytest.fixture
def wsp(template: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    """A fresh copy of the template workspace: its folder."""
    folder = tmp_path / "ws"
    copy_workspace(template[0], folder)
    return folder


AFTER_IMPORT_ROW_1 = {
    "email": {"value": "ann@acme.com", "status": "done"},
    "first": {"value": "Ann", "status": "done"},
    "employees": {"value": 40, "status": "done"},
    "domain": {"value": "acme.com", "status": "done"},
    "greet": {"value": "Hi Ann at acme.com", "status": "done"},
    "research": {"value": None, "status": "queued"},
    "opener": {"value": None, "status": "empty"},
    "opener_length": {"value": None, "status": "waiting", "waiting_on": "opener"},
}
AFTER_IMPORT_STATUS = {
    "domain": {"done": 2},
    "greet": {"done": 2},
    "research": {"queued": 2},
    "opener": {"empty": 2},
    "opener_length": {"waiting": 2},
}


# ---- end to end, in a real process -------------------------------------------------------------------------


def test_end_to_end_in_its_own_process(tmp_path: Path) -> None:
    spec, csv = files(tmp_path)
    workspace = tmp_path / "ws"

    done = runsheet(workspace, "init", str(workspace))
    assert (done.returncode, done.stderr) == (0, "")
    assert " ".join(done.stdout.split()) == f"workspace ready at {workspace}"  # rich wraps a long path
    assert (workspace / "runsheet.duckdb").is_file()

    done = runsheet(workspace, "apply", str(spec))
    assert (done.returncode, done.stdout, done.stderr) == (0, "campaign t created\n", "")

    done = runsheet(workspace, "import", str(csv), "--json")
    assert done.returncode == 0 and done.stderr == ""
    imported = json.loads(done.stdout)
    assert imported["rows"] == 2 and imported["first_row"] == 1 and isinstance(imported["run_id"], int)

    done = runsheet(workspace, "show", "--json")
    assert done.returncode == 0 and done.stderr == ""
    shown = json.loads(done.stdout)
    assert shown["total_rows"] == 2 and shown["offset"] == 0
    assert [row["row_id"] for row in shown["rows"]] == [1, 2]
    assert {k: v for k, v in shown["rows"][0].items() if k != "row_id"} == AFTER_IMPORT_ROW_1
    assert shown["rows"][1]["greet"] == {"value": "Hi Bob at globex.io", "status": "done"}


def test_help_imports_no_llm_or_ui_library() -> None:
    """`python -m engine.cli --help`, run through runpy (what `-m` does) under a recorder of import attempts:
    it sees an attempt to import litellm or streamlit even where they are not installed."""
    probe = r"""
import importlib.abc, json, runpy, sys, time
HEAVY = {"litellm", "streamlit", "openai", "anthropic", "ui"}
attempts = []
class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            attempts.append(name)
        return None
sys.meta_path.insert(0, Recorder())
sys.argv = ["runsheet", "--help"]
start = time.perf_counter()
try:
    runpy.run_module("engine.cli", run_name="__main__", alter_sys=True)
    code = "returned"
except SystemExit as exit:
    code = exit.code or 0
seconds = time.perf_counter() - start
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("RESULT " + json.dumps({"attempts": attempts, "loaded": loaded, "seconds": seconds, "code": code}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=process_env(REPO / "no-workspace"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    help_text, _, result_line = done.stdout.rpartition("RESULT ")
    result = json.loads(result_line)
    assert result["attempts"] == [] and result["loaded"] == []
    assert result["code"] == 0
    assert "Usage: python -m engine.cli [OPTIONS] COMMAND [ARGS]..." in help_text and done.stderr == ""
    for command in ("init", "apply", "import", "set", "run", "show", "status", "campaigns"):
        assert f" {command} " in help_text


# ---- user errors: exit 1, one line on stderr, naming the fix -----------------------------------------------

# (id, args, substring of the message, substring of the fix); {bad_spec} is a spec using an unknown function
ERROR_CASES = [
    ("bad-spec", ["apply", "{bad_spec}"], "column 'bad': invalid SQL expression", "fix the expression"),
    ("unknown-campaign", ["status", "--campaign", "nope"], "no campaign named 'nope'", "apply its spec first"),
    ("unknown-row", ["set", "t", "99", "first", "Zed"], "campaign 't' has no row 99", "runsheet show"),
    ("unknown-column", ["show", "--columns", "emial"], "campaign 't' has no column 'emial'", "use one of: email"),
    ("bad-value", ["set", "t", "1", "employees", "lots"], "'lots' is not a valid BIGINT", "give a BIGINT value"),
    ("bad-rows", ["run", "--rows", "1-x"], "--rows '1-x' is not a list of row ids", "write e.g. --rows 1,2,10-12"),
    ("missing-workspace", ["show"], "no workspace at", "create one with `runsheet init"),
]


# Runs `runsheet ARGS` for each case, one after the other, in one process whose stdin, stdout and stderr are
# not terminals (as in a script or CI): the entry point is the console script's `engine.cli:main`, with
# sys.argv and RUNSHEET_WORKSPACE set per case. One process instead of one per case keeps this file fast.
DRIVER = r"""
import contextlib, io, json, os, sys
import engine.cli
results = {}
for case in json.loads(sys.stdin.read()):
    os.environ["RUNSHEET_WORKSPACE"] = case["workspace"]
    sys.argv = ["runsheet", *case["args"]]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            engine.cli.main()
        except SystemExit as exit:
            code = exit.code or 0
    results[case["id"]] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def error_runs(template: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each error case on its own copy of the workspace; with the snapshot of that copy afterwards (None for
    the missing workspace, which must still be missing)."""
    base = tmp_path_factory.mktemp("cli-errors")
    bad_spec = base / "bad.yaml"
    bad_spec.write_text(
        BASIC_SPEC + '  - {name: bad, kind: formula, expression: "nosuchfn(email)"}\n', encoding="utf-8"
    )
    cases = []
    for case, args, _, _ in ERROR_CASES:
        workspace = base / case
        if case != "missing-workspace":
            copy_workspace(template[0], workspace)
        argv = [a.replace("{bad_spec}", str(bad_spec)) for a in args]
        cases.append({"id": case, "workspace": str(workspace), "args": argv})
    done = subprocess.run(
        [sys.executable, "-c", DRIVER],
        cwd=REPO,
        env=process_env(base),
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    return {
        case["id"]: (
            *results[case["id"]],
            snapshot(Workspace(case["workspace"])) if Path(case["workspace"]).exists() else None,
        )
        for case in cases
    }


@pytest.mark.parametrize(("case", "message", "fix"), [pytest.param(c, m, f, id=c) for c, _, m, f in ERROR_CASES])
def test_user_error_exits_1_with_the_reason_and_the_fix(
    error_runs: dict[str, Any], template: tuple[Path, dict[str, Any]], case: str, message: str, fix: str
) -> None:
    code, stdout, stderr, after = error_runs[case]
    assert code == 1, stderr
    assert stdout == ""
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    text = " ".join(stderr.split())  # the reason and the fix, however the terminal wrapped them
    assert message in text and fix in text
    if case == "missing-workspace":
        assert after is None  # not created as a side effect
    else:
        assert after == template[1]  # nothing changed


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c) for c, _, _, _ in ERROR_CASES],
)
def test_user_error_is_a_single_line(error_runs: dict[str, Any], case: str) -> None:
    _, _, stderr, _ = error_runs[case]
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)


# ---- commands, through CliRunner ---------------------------------------------------------------------------


def test_init_creates_a_workspace_and_keeps_an_existing_one(tmp_path: Path) -> None:
    spec, _ = files(tmp_path)
    workspace = tmp_path / "new" / "ws"
    assert " ".join(ok(workspace, "init", str(workspace)).stdout.split()) == f"workspace ready at {workspace}"
    assert (workspace / "runsheet.duckdb").is_file()
    assert ok_json(workspace, "campaigns") == []
    ok(workspace, "apply", str(spec))
    assert "workspace ready at" in ok(workspace, "init", str(workspace)).stdout
    assert [c["name"] for c in ok_json(workspace, "campaigns")] == ["t"]


def test_apply_reports_created_unchanged_and_updated(tmp_path: Path) -> None:
    spec, _ = files(tmp_path)
    workspace = tmp_path / "ws"
    ok(workspace, "init", str(workspace))
    assert ok(workspace, "apply", str(spec)).stdout == "campaign t created\n"
    assert ok(workspace, "apply", str(spec)).stdout == "campaign t unchanged\n"
    assert ok_json(workspace, "apply", str(spec)) == {
        "campaign": "t",
        "created": False,
        "added": [],
        "removed": [],
        "changed": [],
        "estimate": None,
        "needs_confirmation": False,
        "renamed": {},
        "kept": {},
        "pruned": {},
        "retyped": [],
        "refused": [],
        "dry_run": False,
        "paused": [],
        "paused_estimate": None,
    }
    spec.write_text(
        BASIC_SPEC.replace("split_part(email, '@', 2)", "upper(split_part(email, '@', 2))")
        + '  - {name: shout, kind: formula, expression: "upper(first)"}\n',
        encoding="utf-8",
    )
    updated = ok(workspace, "apply", str(spec)).stdout
    assert updated.startswith("campaign t updated\n")
    assert "  added: shout\n" in updated and "  changed: domain\n" in updated


def test_import_loads_rows_and_computes_only_free_steps(tmp_path: Path) -> None:
    spec, csv = files(tmp_path)
    workspace = tmp_path / "ws"
    ok(workspace, "init", str(workspace))
    ok(workspace, "apply", str(spec))
    assert ok(workspace, "import", str(csv)).stdout.startswith("imported 2 rows (rows 1-2)\n")
    assert PROBE_LEDGER.calls == []
    assert ok_json(workspace, "status") == {"campaign": "t", "rows": 2, "columns": AFTER_IMPORT_STATUS}
    again = ok_json(workspace, "import", str(csv), "--no-run")
    assert again["rows"] == 2 and again["first_row"] == 3
    status = ok_json(workspace, "status")
    assert status["rows"] == 4
    assert status["columns"]["domain"] == {"done": 2, "empty": 2}  # --no-run: loaded, not computed
    assert grid(workspace)[3]["email"] == {"value": "ann@acme.com", "status": "done"}


def test_show_json_gives_row_ids_values_and_states(wsp: Path) -> None:
    rows = grid(wsp)
    assert list(rows) == [1, 2]
    assert rows[1] == AFTER_IMPORT_ROW_1
    assert rows[2]["employees"] == {"value": 900, "status": "done"}
    assert rows[2]["opener"] == {"value": None, "status": "empty"}
    assert rows[2]["opener_length"]["waiting_on"] == "opener"
    assert grid(wsp, "--columns", "greet,opener", "--offset", "1", "--limit", "1") == {
        2: {
            "greet": {"value": "Hi Bob at globex.io", "status": "done"},
            "opener": {"value": None, "status": "empty"},
        }
    }


def test_show_text_offers_click_to_run_for_an_empty_manual_step(wsp: Path) -> None:
    shown = ok(wsp, "show", "--columns", "research,opener,opener_length").stdout
    assert "t: rows 1-2 of 2" in shown
    assert shown.count("Click to Run") == 2
    assert shown.count("waiting on opener") == 2
    assert shown.count("queued") == 2


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("[draft] hi", id="style-tag"),
        pytest.param("[/draft] hi", id="closing-tag"),
    ],
)
def test_show_text_prints_pinned_values_verbatim(wsp: Path, value: str) -> None:
    ok(wsp, "set", "t", "1", "opener", value)
    assert grid(wsp, "--columns", "opener")[1]["opener"] == {"value": value, "status": "pinned"}
    shown = ok(wsp, "show", "--columns", "opener").stdout
    assert f"{value} (edited)" in shown


def test_set_recomputes_the_downstream_formula(wsp: Path) -> None:
    assert ok_json(wsp, "set", "t", "1", "first", "Anna")["counts"] == {"greet": {"done": 1}}
    rows = grid(wsp)
    assert rows[1]["greet"] == {"value": "Hi Anna at acme.com", "status": "done"}
    assert rows[2]["greet"] == {"value": "Hi Bob at globex.io", "status": "done"}

    ok(wsp, "set", "t", "2", "email", "bob@hooli.com")  # the paid auto step runs too (no --no-run)
    rows = grid(wsp)
    assert rows[2]["domain"]["value"] == "hooli.com"
    assert rows[2]["greet"]["value"] == "Hi Bob at hooli.com"
    assert rows[2]["research"] == {"value": "probe(hooli.com)", "status": "done"}
    assert PROBE_LEDGER.calls == [("research", 2)]

    ok(wsp, "set", "t", "1", "domain", "pinned.example")  # editing a step cell pins it
    rows = grid(wsp)
    assert rows[1]["domain"] == {"value": "pinned.example", "status": "pinned"}
    assert rows[1]["greet"]["value"] == "Hi Anna at pinned.example"

    ok(wsp, "set", "t", "1", "first", "null")  # 'null' clears the cell
    row = grid(wsp, "--columns", "first,greet", "--limit", "1")[1]
    assert row == {"first": {"value": None, "status": "done"}, "greet": {"value": None, "status": "done"}}


def test_run_column_on_chosen_rows(wsp: Path) -> None:
    report = ok_json(wsp, "run", "--column", "opener", "--rows", "1")
    assert report["counts"] == {"research": {"done": 1}, "opener": {"done": 1}, "opener_length": {"done": 1}}
    assert PROBE_LEDGER.calls == [("research", 1), ("opener", 1)]
    rows = grid(wsp)
    assert rows[1]["opener"] == {"value": OPENER_1, "status": "done"}
    assert rows[1]["opener_length"] == {"value": len(OPENER_1), "status": "done"}
    assert rows[2]["opener"]["status"] == "empty" and rows[2]["research"]["status"] == "queued"


def test_run_stale_runs_only_stale_and_queued_cells(wsp: Path) -> None:
    ok(wsp, "run", "--column", "opener", "--rows", "1")
    ok(wsp, "set", "t", "1", "first", "Anna")
    assert grid(wsp)[1]["opener"] == {"value": OPENER_1, "status": "stale"}  # manual: stale, keeps its value
    PROBE_LEDGER.clear()

    ok(wsp, "run", "--stale")  # auto steps only: research of row 2 was queued
    assert PROBE_LEDGER.calls == [("research", 2)]
    assert grid(wsp)[1]["opener"]["status"] == "stale"
    PROBE_LEDGER.clear()

    ok(wsp, "run", "--stale", "--column", "opener")  # row 1 is stale, row 2 empty: only row 1 runs
    assert PROBE_LEDGER.calls == [("opener", 1)]
    rows = grid(wsp)
    assert rows[1]["opener"] == {"value": "probe(Hi Anna at acme.com|probe(acme.com))", "status": "done"}
    assert rows[2]["opener"]["status"] == "empty"
    PROBE_LEDGER.clear()
    assert ok(wsp, "run", "--stale").stdout.endswith("nothing to do, every cell is up to date\n")
    assert PROBE_LEDGER.calls == []


def test_run_force_recomputes_fresh_cells(wsp: Path) -> None:
    ok(wsp, "run")
    assert PROBE_LEDGER.per_column() == {"research": 2}
    PROBE_LEDGER.clear()
    ok(wsp, "run")
    assert PROBE_LEDGER.calls == []  # everything auto is fresh
    report = ok_json(wsp, "run", "--force")
    assert report["counts"]["research"] == {"done": 2}
    assert PROBE_LEDGER.per_column() == {"research": 2}  # manual opener is not run by a whole-campaign run
    PROBE_LEDGER.clear()
    ok(wsp, "run", "--force", "--column", "research", "--rows", "2")
    assert PROBE_LEDGER.calls == [("research", 2)]


def test_campaigns_lists_them_and_commands_need_one_named_when_several(wsp: Path, tmp_path: Path) -> None:
    assert [c["name"] for c in ok_json(wsp, "campaigns")] == ["t"]
    other = tmp_path / "other.yaml"
    other.write_text("campaign: u\ncolumns:\n  - {name: word, kind: input}\n", encoding="utf-8")
    ok(wsp, "apply", str(other))
    assert [c["name"] for c in ok_json(wsp, "campaigns")] == ["t", "u"]
    result = cli(wsp, "status")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: more than one campaign (name one with --campaign)\n"
    assert ok_json(wsp, "status", "--campaign", "u") == {"campaign": "u", "rows": 0, "columns": {}}
