"""People on the command line: the README's user example run line by line on a fresh workspace, the first admin
bootstrapping roles, `users password` (prompted without echo, or from stdin), and refusals that name the fix on
each face (`--as` / RUNSHEET_USER on the CLI, a token on the API)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from engine import LoginError, Workspace
from engine.api import create_app
from engine.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture()
def fresh(tmp_path: Path) -> Path:
    Workspace.init(tmp_path / "ws")
    return tmp_path / "ws"


def env_for(workspace: Path, os_user: str = "root") -> dict[str, str | None]:
    """The environment of someone at a shell: their login name in $USER, no RUNSHEET_USER yet."""
    return {"RUNSHEET_WORKSPACE": str(workspace), "USER": os_user, "RUNSHEET_USER": None, "COLUMNS": "200"}


def invoke(args: list[str], env: dict[str, str | None], stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env, input=stdin)


def readme_user_lines() -> list[str]:
    """The README's user example: its commands from `runsheet users set ada admin` to `runsheet token create max`,
    comments dropped, `;` splitting a line."""
    text = README.read_text(encoding="utf-8")
    first = text.index("runsheet users set ada admin")
    last = text.index("\n", text.index("runsheet token create max", first))
    block = text[text.rindex("\n", 0, first) + 1 : last]
    commands = []
    for line in block.splitlines():
        code = re.split(r"\s+#", line, maxsplit=1)[0]
        commands += [part.strip() for part in code.split(";") if part.strip()]
    return commands


def test_the_readmes_user_example_works_as_written_on_a_fresh_workspace(fresh: Path) -> None:
    commands = readme_user_lines()
    assert commands[0] == "runsheet users set ada admin" and commands[-1] == "runsheet token create max"
    assert any(c.startswith("runsheet users set max member") for c in commands)
    env = env_for(fresh, os_user="someone-else")  # the OS user is not ada: the first admin bootstraps anyway
    printed = ""
    for command in commands:
        words = shlex.split(command)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            continue
        assert words[0] == "runsheet", command
        stdin = "max-password\nmax-password\n" if words[1:3] == ["users", "password"] else None
        result = invoke(words[1:], env, stdin)
        assert result.exit_code == 0, (command, result.output)
        printed = result.stdout
    ws = Workspace(fresh, actor="ada")
    assert [(u["name"], u["role"], u["created_by"]) for u in ws.users()] == [
        ("ada", "admin", "someone-else"),
        ("max", "member", "ada"),
    ]
    assert ws.user_for_token(printed.strip()) == "max"  # the token printed once, acting as max
    if any(c.startswith("runsheet users password max") for c in commands):
        assert ws.log_in("max", "max-password").user == "max"


def test_the_first_admin_bootstraps_roles_and_the_next_change_needs_an_admin_actor(fresh: Path) -> None:
    env = env_for(fresh)
    first = invoke(["users", "set", "ada", "admin"], env)
    assert first.exit_code == 0, first.output
    assert "ada is an admin" in first.output
    assert "act as ada with `--as ada` or `export RUNSHEET_USER=ada`" in first.output
    refused = invoke(["users", "set", "max", "member"], env)
    assert refused.exit_code == 1
    line = " ".join(refused.output.split())
    assert "root is a viewer (not a user of this workspace) and may not manage users (that needs admin)" in line
    assert "`--as ada` or RUNSHEET_USER=ada" in line
    assert [u["name"] for u in Workspace(fresh).users()] == ["ada"]  # nothing changed
    assert invoke(["users", "set", "max", "member", "--as", "ada"], env).exit_code == 0
    assert invoke(["users", "set", "vic", "viewer"], {**env, "RUNSHEET_USER": "ada"}).exit_code == 0
    assert [u["name"] for u in Workspace(fresh).users()] == ["ada", "max", "vic"]


def test_the_first_user_must_be_an_admin(fresh: Path) -> None:
    refused = invoke(["users", "set", "max", "member"], env_for(fresh))
    assert refused.exit_code == 1 and "the first user must be an admin" in refused.output
    assert Workspace(fresh).users() == []


@pytest.fixture()
def people(fresh: Path) -> dict[str, str | None]:
    env = env_for(fresh)
    assert invoke(["users", "set", "ada", "admin"], env).exit_code == 0
    env["RUNSHEET_USER"] = "ada"
    assert invoke(["users", "set", "max", "member"], env).exit_code == 0
    return env


def test_users_password_asks_twice_without_echo(fresh: Path, people: dict[str, str | None]) -> None:
    result = invoke(["users", "password", "max"], people, "max-password\nmax-password\n")
    assert result.exit_code == 0, result.output
    assert "max-password" not in result.output  # hidden input is not echoed
    assert result.output.count("Password for max") == 1 and "Repeat for confirmation" in result.output
    assert "max's password is set" in result.output
    assert Workspace(fresh).log_in("max", "max-password").user == "max"
    listed = invoke(["users", "list", "--json"], people)
    assert '"password": true' in listed.output


def test_users_password_with_two_different_entries_sets_nothing(fresh: Path, people: dict[str, str | None]) -> None:
    result = invoke(["users", "password", "max"], people, "max-password\nmax-passw0rd\n")
    assert result.exit_code == 1
    assert "the two passwords differed" in result.output
    assert [u["password"] for u in Workspace(fresh).users()] == [False, False]


def test_users_password_from_stdin_for_scripts(fresh: Path, people: dict[str, str | None]) -> None:
    result = invoke(["users", "password", "max", "--password-stdin"], people, "from-a-script\n")
    assert result.exit_code == 0, result.output
    assert "Password" not in result.output  # no prompt
    assert Workspace(fresh).log_in("max", "from-a-script").user == "max"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "password", "max", "--password-stdin"], "short\n", "a password needs at least 8 characters"),
        (["users", "password", "nobody", "--password-stdin"], "long-enough\n", "no user 'nobody'"),
        (
            ["users", "password", "ada", "--password-stdin", "--as", "max"],
            "taken-over!\n",
            "max is a member and may not manage users",
        ),
    ],
)
def test_a_refused_password_is_one_line_and_changes_nothing(
    fresh: Path, people: dict[str, str | None], args: list[str], stdin: str, message: str
) -> None:
    result = invoke(args, people, stdin)
    assert result.exit_code == 1
    assert result.output.startswith("error: " + message) and result.output.count("\n") == 1, result.output
    assert [u["password"] for u in Workspace(fresh).users()] == [False, False]
    with pytest.raises(LoginError):
        Workspace(fresh).log_in("max", stdin.strip())


def test_a_refusal_names_the_fix_for_the_face_it_came_through(fresh: Path, people: dict[str, str | None]) -> None:
    cli = invoke(["settings", "concurrency", "8"], {**people, "RUNSHEET_USER": "max"})
    assert cli.exit_code == 1
    assert " ".join(cli.output.split()) == (
        "error: max is a member and may not edit settings (that needs admin) (act as a user who may (ada): "
        "`--as ada` or RUNSHEET_USER=ada; or have an admin make max an admin: `runsheet users set max admin "
        "--as ada`)"
    )
    admin = Workspace(fresh, actor="ada")
    admin.apply("campaign: r\ncolumns:\n  - {name: company, kind: input}\n", actor="ada")
    admin.set_role("vic", "viewer")
    viewer_token = admin.create_token("vic")
    with TestClient(create_app(fresh)) as client:
        denied = client.post(
            "/campaigns/r/records",
            headers={"Authorization": f"Bearer {viewer_token}"},
            json={"records": [{"company": "initech"}]},
        )
    assert denied.status_code == 403
    assert denied.json() == {
        "error": "vic is a viewer and may not add records (that needs member)",
        "hint": "send the token of a user who may (ada, max): `runsheet token create ada`; or have an admin make "
        "vic a member: `runsheet users set vic member`",
    }
    assert Workspace(fresh).campaign("r").row_count() == 0
    assert Workspace(fresh).settings().concurrency != 8
