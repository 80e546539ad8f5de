"""Commands import what they use (issue 16): `import engine`, importing the CLI and `runsheet --help` load no data
library, and `runsheet status` loads DuckDB alone. Each check runs in a fresh interpreter and reads
`sys.modules` (what was loaded, not how long it took: timings are bench/startup.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Workspace
from tests.conftest import BASIC_ROWS, BASIC_SPEC

ROOT = Path(__file__).resolve().parents[2]
# What a command pays for before it does anything: pandas alone costs 0.2 s, litellm seconds. (pydantic is not
# here: typer 0.29 loads it to coerce a command's parameters, `run --help` included.)
HEAVY = ["pandas", "litellm", "networkx", "polars", "pyarrow", "duckdb", "numpy", "sqlglot", "jinja2"]
REPORT = "\nLOADED "


def loaded_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the HEAVY modules it left in sys.modules."""
    script = (
        f"{code}\nimport sys\nprint({REPORT!r} + __import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert REPORT.strip() in done.stdout, done.stderr[-2000:]
    return list(json.loads(done.stdout.rsplit(REPORT.strip(), 1)[1]))


def cli(*args: str) -> str:
    """The CLI in-process with these arguments (a command's normal exit is fine)."""
    return (
        "from engine.cli import app\n"
        "try:\n"
        f"    app({list(args)!r}, prog_name='runsheet', standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
    )


def script(*args: str) -> str:
    """The `runsheet` script (engine.cli.main) in-process with these arguments."""
    return (
        "import sys\n"
        "import engine.cli\n"
        f"sys.argv = ['runsheet', *{list(args)!r}]\n"
        "try:\n"
        "    engine.cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )


def test_importing_engine_loads_no_data_library() -> None:
    assert loaded_after("import engine") == []


def test_importing_the_cli_loads_no_data_library() -> None:
    assert loaded_after("import engine.cli") == []


def test_help_loads_no_data_library() -> None:
    assert loaded_after(cli("--help")) == []
    assert loaded_after(cli("run", "--help")) == []


def test_a_public_name_still_imports_its_module_on_first_use() -> None:
    assert "duckdb" in loaded_after("import engine\nengine.Workspace")
    assert loaded_after("from engine import RunsheetError, Status") == []


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    ws.release()
    return tmp_path / "ws"


def test_status_loads_duckdb_alone(workspace: Path) -> None:
    """`status` reads the catalog and counts with DuckDB alone (engine/status.py): no polars or pyarrow (0.35 s),
    no spec parser (sqlglot, jinja2), no graph library."""
    assert loaded_after(script("status", "-w", str(workspace), "--json")) == ["duckdb"]
    assert loaded_after(script("status", "-w", str(workspace))) == ["duckdb"]
    assert loaded_after(cli("status", "-w", str(workspace))) == ["duckdb"]  # with every command registered


def test_a_command_registers_its_own_module_alone(workspace: Path) -> None:
    code = (
        script("campaigns", "-w", str(workspace))
        + "print('CLI', sorted(m for m in sys.modules if m.startswith('engine.cli')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    loaded = [
        "engine.cli",
        "engine.cli.basics",
        "engine.cli.campaigns",
        "engine.cli.common",
        "engine.cli.status_command",
    ]
    assert f"CLI {loaded}" in done.stdout, done.stderr[-2000:]


def test_each_command_is_mapped_to_the_module_that_registers_it() -> None:
    """engine/cli/__init__.py's COMMANDS, against what each module registers when imported alone, in turn."""
    code = (
        "import importlib, json\n"
        "from engine.cli import MODULES, common\n"
        "def names():\n"
        "    app = common.app\n"
        "    found = [c.name or c.callback.__name__.replace('_', '-') for c in app.registered_commands]\n"
        "    return found + [g.name for g in app.registered_groups]\n"
        "found = {}\n"
        "for module in MODULES:\n"
        "    before = set(names())\n"
        "    importlib.import_module('engine.cli.' + module)\n"
        "    found.update({name: module for name in names() if name not in before})\n"
        "print('FOUND', json.dumps(found))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "FOUND " in done.stdout, done.stderr[-2000:]
    from engine.cli import COMMANDS

    assert json.loads(done.stdout.split("FOUND ", 1)[1]) == COMMANDS


def frameworks_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the command-line frameworks it left in sys.modules."""
    report = (
        "print('FRAMEWORKS', __import__('json').dumps([m for m in ('pydantic', 'rich', 'typer') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "FRAMEWORKS " in done.stdout, done.stderr[-2000:]
    return list(json.loads(done.stdout.rsplit("FRAMEWORKS ", 1)[1]))


def test_the_script_draws_help_without_typer_or_rich() -> None:
    """engine/cli/overview.py: `runsheet --help` and `runsheet` alone (typer and rich cost 0.25 s of them)."""
    assert frameworks_after(script("--help")) == []
    assert frameworks_after(script()) == []
    assert frameworks_after(script("run", "--help")) == ["pydantic", "rich", "typer"]  # a command's help: typer's


def test_a_plain_status_loads_neither_typer_nor_pydantic(workspace: Path) -> None:
    """engine/cli/status_command.py: rich alone prints the table (typer and pydantic cost 0.2 s)."""
    assert frameworks_after(script("status", "-w", str(workspace))) == ["rich"]
    assert frameworks_after(script("status", "-w", str(workspace), "--json")) == ["rich"]


def test_export_loads_duckdb_and_the_sql_parser_alone(workspace: Path, tmp_path: Path) -> None:
    """`runsheet export` writes with DuckDB (engine/io/exporter.py's `export_from_workspace`): no polars, pyarrow,
    spec parser or graph library; sqlglot reads the --where filter."""
    for name in ("out.csv", "out.parquet"):
        target = str(tmp_path / name)
        assert loaded_after(script("export", "-w", str(workspace), "-c", "t", "-o", target)) == ["duckdb", "sqlglot"]
