"""The `runsheet` command line. It uses only the public API in `engine/__init__.py`.

Exit codes: 0 ok; 1 with a one-line reason for anything the user can fix; 2 for usage errors and engine bugs.
Each module registers its commands on the shared typer app. `runsheet NAME ...` imports only the module of NAME
(typer then builds that one command, not all 45: a tenth of a second of a command's start-up); anything else
(an unknown name) and `from engine.cli import app` register them all. `runsheet --help` and `runsheet` alone are
drawn by engine/cli/overview.py without importing typer or rich, and a plain `runsheet status` is answered by
engine/cli/status_command.py without typer, so this module imports neither up front.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

# In the order `runsheet --help` lists their commands.
MODULES = ("account", "actions", "copilot", "campaigns", "data", "log", "runs", "serve", "specs", "ui")
# The module that registers each command and command group (tests/cli/test_startup_imports.py checks it).
COMMANDS = {
    "settings": "account",
    "context": "account",
    "credits": "account",
    "action": "actions",
    "copilot": "copilot",
    "init": "campaigns",
    "apply": "campaigns",
    "set": "campaigns",
    "save": "campaigns",
    "confirm": "campaigns",
    "show": "campaigns",
    "status": "campaigns",
    "campaigns": "campaigns",
    "history": "campaigns",
    "import": "data",
    "export": "data",
    "query": "data",
    "log": "log",
    "run": "runs",
    "stop": "runs",
    "runs": "runs",
    "serve": "serve",
    "pause": "serve",
    "resume": "serve",
    "users": "serve",
    "token": "serve",
    "schedule": "serve",
    "spec": "specs",
    "ui": "ui",
}


def register(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The app with the commands of `modules` registered (each module registers its own once, on import)."""
    from engine.cli import common

    for module in modules:
        importlib.import_module(f"engine.cli.{module}")
    for callback in _callbacks(common.app):
        # Annotations are strings here (`from __future__ import annotations`) and typer evaluates each one again
        # and again while it builds the commands (1,020 evaluations for 45 commands: 0.1-0.2 s of `--help`);
        # evaluated once here, they cost it a tenth of that.
        callback.__annotations__ = typing.get_type_hints(callback, include_extras=True)
    return common.app


def _callbacks(app: typer.Typer) -> Iterator[Callable[..., Any]]:
    """The functions behind an app's commands, its callback and its groups', recursively."""
    found = [command.callback for command in app.registered_commands]
    found += [info.callback for info in (app.registered_callback, app.info) if info is not None]
    yield from (callback for callback in found if inspect.isfunction(callback))  # unset ones are placeholders
    for group in app.registered_groups:
        if group.typer_instance is not None:
            yield from _callbacks(group.typer_instance)


def main() -> None:
    """The `runsheet` script: the command named first on the command line, or every command (the group's only
    option is --help: `runsheet --help status` lists them all)."""
    shown = None
    if sys.argv[1:] in ([], ["--help"]):
        from engine.cli import overview

        shown = overview.show(sys.argv[1:])
    elif sys.argv[1:2] == ["status"]:
        from engine.cli import status_command

        shown = status_command.quick(sys.argv[2:])
    if shown is not None:
        sys.exit(shown)
    named = sys.argv[1] if len(sys.argv) > 1 else None
    register((COMMANDS[named],) if named in COMMANDS else MODULES)
    from engine.cli import common

    common.main()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        app = globals()["app"] = register()  # every command registered once: later reads find the module's name
        return app
    raise AttributeError(f"module 'engine.cli' has no attribute {name!r}")


__all__ = ["app", "main"]
