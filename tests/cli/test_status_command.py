"""`runsheet status` read without typer when its command line is plain (engine/cli/status_command.py): the same
options as typer's command, the same output and exit code as typer's path, and typer's path for anything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from engine import Workspace
from engine.cli import app
from engine.cli.basics import DEFAULT_WORKSPACE, WORKSPACE_VARIABLE
from engine.cli.status_command import FLAGS, VALUED, parse
from tests.conftest import BASIC_ROWS, BASIC_SPEC

ROOT = Path(__file__).resolve().parents[2]
# The `runsheet` script, reporting at exit whether typer was imported.
SCRIPT = (
    "import sys\nsys.argv = ['runsheet', *sys.argv[1:]]\nfrom engine.cli import main\n"
    "try:\n    main()\nfinally:\n    print('TYPER', 'typer' in sys.modules, 'pydantic' in sys.modules)\n"
)
TYPER = "import sys\nfrom engine.cli import app\napp(sys.argv[1:], prog_name='runsheet')\n"


def test_the_options_read_without_typer_are_status_options() -> None:
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group, info_name="runsheet"), "status")
    assert command is not None
    params = [p for p in command.params if p.name != "help"]
    assert {opt: p.name for p in params if not p.is_flag for opt in p.opts} == VALUED  # type: ignore[attr-defined]
    assert {opt: p.name for p in params if p.is_flag for opt in p.opts} == FLAGS  # type: ignore[attr-defined]
    assert all(not p.secondary_opts and not p.multiple for p in params)
    workspace = next(p for p in params if p.name == "workspace")
    assert (workspace.envvar, workspace.default) == (WORKSPACE_VARIABLE, DEFAULT_WORKSPACE)


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], {}),
        (["-w", "ws", "-c", "t"], {"workspace": "ws", "campaign": "t"}),
        (
            ["--workspace=ws", "--campaign", "t", "--json", "--as", "ann"],
            {"workspace": "ws", "campaign": "t", "as_json": True, "actor": "ann"},
        ),
        (["-c", "a=b"], {"campaign": "a=b"}),
        (["--campaign=a=b"], {"campaign": "a=b"}),
        # Typer's to read (and report): help, other options, repeated ones, dashes, empty or missing values.
        (["--help"], None),
        (["--rows", "1"], None),
        (["extra"], None),
        (["-c", "a", "-c", "b"], None),
        (["-c", "-w"], None),
        (["-c"], None),
        (["--campaign="], None),
        (["-ct"], None),
        (["-c=t"], None),
        (["--json=yes"], None),
        (["--", "-c", "t"], None),
    ],
)
def test_parse(args: list[str], options: dict[str, object] | None) -> None:
    assert parse(args) == options


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(BASIC_SPEC)
    ws.apply(BASIC_SPEC.replace("campaign: t", "campaign: other"))
    ws.campaign("t").add_rows(BASIC_ROWS)
    ws.pause("t", "research")
    ws.release()
    return tmp_path / "ws"


def run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != WORKSPACE_VARIABLE}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_plain_status_prints_what_typer_prints_without_typer(workspace: Path) -> None:
    printed = []
    for args, env in [
        (["-w", str(workspace), "-c", "t"], {}),
        (["--campaign=t", "--json", "--workspace", str(workspace)], {}),
        (["-c", "other", "--as", "nobody"], {WORKSPACE_VARIABLE: str(workspace)}),
    ]:
        ours, theirs = run(SCRIPT, "status", *args, **env), run(TYPER, "status", *args, **env)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, ""), args
        assert ours.stdout == theirs.stdout + "TYPER False False\n", args
        printed.append(ours.stdout)
    assert "research is paused: start it with `runsheet resume -c t --column research`" in printed[0]
    assert '"campaign": "t"' in printed[1] and "other: 0 rows" in printed[2]


def test_typer_answers_what_is_not_plain(workspace: Path) -> None:
    for args in [
        ["-w", str(workspace)],  # more than one campaign: typer's path says so
        ["-w", str(workspace), "-c", "nosuch"],
        ["-w", str(workspace / "nowhere"), "-c", "t"],
        ["-w", str(workspace), "-c", "t", "--rows", "1"],
        ["-w", str(workspace), "-c", "t", "--help"],
    ]:
        ours, theirs = run(SCRIPT, "status", *args), run(TYPER, "status", *args)
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr), args
        assert ours.returncode != 0 or "Usage:" in ours.stdout, args
        assert ours.stdout == theirs.stdout + "TYPER True True\n", args
