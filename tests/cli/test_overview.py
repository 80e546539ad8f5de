"""`runsheet --help` without typer (engine/cli/overview.py) is typer's help: the same commands and help lines, and
at every width the same characters in the same colours. Each side is drawn in its own fresh interpreter."""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from engine.cli import COMMANDS
from engine.cli.overview import LISTED, MIN_WIDTH, RICH_ENVIRONMENT, SUMMARY, render

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = range(MIN_WIDTH, 221)
TYPER_HELP = """
import contextlib, io, json, os, sys
from engine.cli import app
import typer
command = typer.main.get_command(app)
found = {}
for width in json.loads(sys.argv[1]):
    os.environ["COLUMNS"] = str(width)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        command.main(["--help"], prog_name="runsheet", standalone_mode=False)
    found[width] = buffer.getvalue()
print(json.dumps(found))
"""
SCRIPT = "import sys\nsys.argv = ['runsheet', *sys.argv[1:]]\nfrom engine.cli import main\nmain()\n"
TYPER = "import sys\nfrom engine.cli import app\napp(sys.argv[1:], prog_name='runsheet')\n"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def environment(**extra: str) -> dict[str, str]:
    """This environment without the variables that change how rich draws (CI sets GITHUB_ACTIONS)."""
    found = {name: value for name, value in os.environ.items() if name not in (*RICH_ENVIRONMENT, "COLUMNS", "TERM")}
    return {**found, "TERM": "xterm-256color", **extra}


def styled(text: str) -> tuple[str, list[tuple[str, str]]]:
    """ANSI text as its plain text and, for each visible character that is not a space, its SGR codes."""
    plain, styles, codes, position = [], [], "", 0
    for match in SGR.finditer(text + "\x1b[0m"):
        for char in text[position : match.start()]:
            plain.append(char)
            if not char.isspace():
                styles.append((char, codes))
        codes = "" if match.group(1) in ("", "0") else match.group(1)
        position = match.end()
    return "".join(plain), styles


def test_listed_is_what_typer_lists() -> None:
    import typer

    from engine.cli import app

    group = typer.main.get_command(app)
    context = typer.Context(group, info_name="runsheet")
    shown = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None and not command.hidden and not command.deprecated
        shown.append((name, inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip()))
    assert list(LISTED) == shown
    assert {name for name, _ in LISTED} == set(COMMANDS)
    assert group.help == SUMMARY
    assert [param.opts for param in group.get_params(context)] == [["--help"]]


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_the_overview_is_typers_help_at_every_width(colour: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TYPER_HELP, json.dumps(list(WIDTHS))],
        cwd=ROOT,
        env=environment(**({"FORCE_COLOR": "1"} if colour else {})),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    typers = {int(width): text for width, text in json.loads(done.stdout).items()}
    assert list(typers) == list(WIDTHS)
    for width, theirs in typers.items():
        ours = render(width, colour=colour) + "\n"
        if colour:
            assert styled(ours) == styled(theirs), f"at {width} columns"
            assert ours != theirs.replace("\x1b", "")  # both are coloured
        else:
            assert ours == theirs, f"at {width} columns"


def run(code: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=environment(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "alone"])
def test_the_script_prints_typers_help_without_importing_typer(args: list[str]) -> None:
    report = SCRIPT.replace(
        "main()\n", "try:\n    main()\nfinally:\n    print(sorted({'typer', 'rich'} & set(sys.modules)))\n"
    )
    ours, theirs = run(report, *args, COLUMNS="100"), run(TYPER, *args, COLUMNS="100")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0 if args else 2, "")
    assert ours.stdout == theirs.stdout + "[]\n"
    assert "╭─ Commands" in ours.stdout


def test_typer_draws_what_is_not_the_ordinary_case() -> None:
    """Narrower than MIN_WIDTH, a variable rich reads, or arguments beside --help: typer's help, as before."""
    for args, extra in [
        (["--help"], {"COLUMNS": str(MIN_WIDTH - 1)}),
        (["--help"], {"COLUMNS": "100", "NO_COLOR": "1"}),
        (["--help", "status"], {"COLUMNS": "100"}),
    ]:
        ours = run(SCRIPT, *args, **extra)
        theirs = run(TYPER, *args, **extra)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
        assert "Usage: runsheet" in ours.stdout


def in_terminal(code: str, columns: int) -> str:
    """What `code` writes to a terminal `columns` wide (a pseudo-terminal as its standard streams)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--help"],
        cwd=ROOT,
        env=environment(),
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0
    return output.decode().replace("\r\n", "\n")


def test_in_a_terminal_the_overview_has_typers_width_and_colours() -> None:
    ours, theirs = in_terminal(SCRIPT, 97), in_terminal(TYPER, 97)
    assert styled(ours) == styled(theirs)
    assert "\x1b[1;36m" in ours and max(len(line) for line in styled(ours)[0].splitlines()) == 97
