"""Acting as someone on the command line: a refusal's advice (`--as ada` or RUNSHEET_USER=ada) works on every
command that acts on a workspace; `token create` refuses a name that is no user; `users password` with two
different entries ends in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from engine import Workspace
from engine.cli import app

# acting as someone makes no sense for these: `init` creates the folder, `serve` acts as each request's token
# user, `ui` as whoever logs in (or $RUNSHEET_USER in an open workspace)
NOT_ACTING = {"init", "serve", "ui", "action templates"}  # `action templates` lists built-ins: no workspace


def commands() -> Iterator[tuple[list[str], Any]]:
    """Every command of `runsheet`, with the group callbacks that take a workspace (`runsheet credits`)."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        if hasattr(command, "commands"):
            if path and any(p.name == "workspace" for p in command.params):
                yield path, command
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), [])


ALL = [path for path, _ in commands()]


def test_the_walk_finds_the_commands() -> None:
    names = {" ".join(path) for path in ALL}
    assert {"set", "import", "apply", "settings", "credits add", "users list", "token revoke", "spec export"} <= names
    assert len(names) > 30


@pytest.mark.parametrize("path", [p for p in ALL if " ".join(p) not in NOT_ACTING], ids=" ".join)
def test_every_command_on_a_workspace_takes_as(path: list[str]) -> None:
    command = dict((" ".join(p), c) for p, c in commands())[" ".join(path)]
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    assert "--workspace" in options and "--as" in options
    parsed = CliRunner().invoke(app, [*path, "--as", "ada", "--help"])
    assert parsed.exit_code == 0 and "No such option" not in parsed.output, parsed.output


SPEC = (
    "campaign: r\ncolumns:\n  - {name: company, kind: input}\n"
    "  - {name: shout, kind: formula, expression: 'upper(company)'}\n"
)


@pytest.fixture()
def team(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    """ada admin, max member, vic viewer, campaign r with one row; the shell acts as vic."""
    folder = tmp_path / "ws"
    Workspace.init(folder)
    admin = Workspace(folder, actor="ada")
    admin.set_role("ada", "admin")
    admin.set_role("max", "member")
    admin.set_role("vic", "viewer")
    (tmp_path / "r.yaml").write_text(SPEC)
    admin.apply(tmp_path / "r.yaml", actor="ada")
    (tmp_path / "in.csv").write_text("company\ninitech\n")
    admin.campaign("r", actor="ada").import_file(tmp_path / "in.csv")
    env = {"RUNSHEET_WORKSPACE": str(folder), "RUNSHEET_USER": "vic", "USER": "root", "COLUMNS": "200"}
    return tmp_path, env


REFUSED = [
    ["set", "r", "1", "company", "hooli"],
    ["import", "{dir}/in.csv", "-c", "r"],
    ["apply", "{dir}/r.yaml", "--force"],
    ["settings", "concurrency", "8"],
    ["credits", "add", "5"],
    ["context", "set", "icp", "mid-market"],
    ["run", "-c", "r"],
    ["pause", "-c", "r"],
    ["schedule", "add", "-c", "r", "--every", "1h"],
    ["token", "create", "max"],
    ["token", "revoke", "max"],
    ["users", "set", "bob", "member"],
    ["users", "remove", "max"],
]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_a_refused_command_succeeds_with_the_as_its_refusal_names(
    team: tuple[Path, dict[str, str | None]], args: list[str]
) -> None:
    folder, env = team
    argv = [a.replace("{dir}", str(folder)) for a in args]
    refused = CliRunner().invoke(app, argv, env=env)
    assert refused.exit_code == 1 and "`--as ada` or RUNSHEET_USER=ada" in refused.output, refused.output
    acted = CliRunner().invoke(app, [*argv, "--as", "ada"], env=env)
    assert acted.exit_code == 0, acted.output


def test_token_create_refuses_a_name_that_is_no_user(team: tuple[Path, dict[str, str | None]]) -> None:
    _, env = team
    result = CliRunner().invoke(app, ["token", "create", "bob", "--as", "ada"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("error: no user 'bob'") and result.output.count("\n") == 1, result.output
    assert "`runsheet users set bob ROLE`" in result.output and "rs_" not in result.output
    assert [u["tokens"] for u in Workspace(env["RUNSHEET_WORKSPACE"] or "").users()] == [0, 0, 0]


def test_token_create_refuses_a_name_that_is_no_user_in_an_open_workspace(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws")
    env = {"RUNSHEET_WORKSPACE": str(tmp_path / "ws"), "RUNSHEET_USER": "ada", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["token", "create", "bob"], env=env)
    assert result.exit_code == 1 and "rs_" not in result.output
    assert "no user 'bob'" in result.output and "`runsheet users set bob admin`" in result.output
    ws = Workspace(tmp_path / "ws", actor="ada")
    assert ws.users() == []
    ws.set_role("bob", "admin")  # the hint's command, then the token is made
    bob = Workspace(tmp_path / "ws", actor="bob")
    assert bob.user_for_token(bob.create_token("bob")) == "bob"


def password(env: dict[str, str | None], stdin: str) -> Result:
    return CliRunner().invoke(app, ["users", "password", "max", "--as", "ada"], env=env, input=stdin)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("abcdefgh1\nabcdefgh2\n", "error: the two passwords differed"),
        ("abcdefgh1\n", "error: no password was typed"),
        ("", "error: no password was typed"),
    ],
)
def test_users_password_with_differing_entries_or_no_input_is_one_line(
    team: tuple[Path, dict[str, str | None]], stdin: str, message: str
) -> None:
    _, env = team
    result = password(env, stdin)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "rror" in line]
    assert len(errors) == 1 and message in errors[0] and "--password-stdin" in errors[0], result.output
    assert "internal error" not in result.output and "do not match" not in result.output
    assert [u["password"] for u in Workspace(env["RUNSHEET_WORKSPACE"] or "").users()] == [False, False, False]
