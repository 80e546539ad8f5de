"""The workspace-wide commands: global context documents, credits and settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from engine import RunsheetError
from engine.cli.common import DEFAULT_WORKSPACE, Actor, JsonOption, WorkspaceOption, app, guard, out

context_app = typer.Typer(help="Global context documents (brand brief, ICP, offer...) that AI steps read.")
credits_app = typer.Typer(help="The workspace's credit balance.", invoke_without_command=True)
app.add_typer(context_app, name="context")
app.add_typer(credits_app, name="credits")


@context_app.command("list")
def context_list(
    actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False
) -> None:
    """List the context documents."""
    from engine import Workspace

    def body() -> None:
        docs = Workspace(workspace, actor=actor).context()
        if as_json:
            out.print_json(json.dumps({n: vars(d) for n, d in docs.items()}, default=str))
            return
        table = Table(title="context")
        for name in ("name", "version", "updated", "by", "text"):
            table.add_column(name)
        for d in docs.values():
            preview = d.text.replace("\n", " ")
            table.add_row(
                d.name,
                d.version,
                str(d.updated_at)[:19],
                str(d.updated_by),
                preview[:60] + ("…" if len(preview) > 60 else ""),
            )
        out.print(table)

    guard(body)


@context_app.command("show")
def context_show(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Print one context document."""
    from engine import Workspace

    def body() -> None:
        docs = Workspace(workspace, actor=actor).context()
        if name not in docs:
            raise RunsheetError(f"no context document '{name}'", hint="see them with `runsheet context list`")
        typer.echo(docs[name].text)

    guard(body)


@context_app.command("set")
def context_set(
    name: Annotated[str, typer.Argument(help="The document's name, e.g. icp (used as {{ context.icp }}).")],
    text: Annotated[str | None, typer.Argument(help="The text (or give --file).")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the text from this file.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Save a context document; AI steps that read it become stale."""
    from engine import Workspace

    def body() -> None:
        if (text is None) == (file is None):
            raise RunsheetError("give the text or --file, not both or neither", hint="e.g. --file brief.md")
        content = text
        if file is not None:
            try:
                content = file.read_text(encoding="utf-8")
            except OSError as error:
                raise RunsheetError(f"cannot read {file}: {error.strerror}", hint="check the path") from None
        assert content is not None
        ws = Workspace(workspace, actor=actor)
        reports = ws.set_context(name, content, actor=ws.actor)
        stale = sum(c.get("stale", 0) for r in reports for c in r.counts().values())
        out.print(f"context '{name}' saved; {stale} cells became stale" if reports else f"context '{name}' saved")

    guard(body)


@context_app.command("delete")
def context_delete(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Remove a context document; steps that read it become stale."""
    from engine import Workspace

    def body() -> None:
        ws = Workspace(workspace, actor=actor)
        if name not in ws.context():
            raise RunsheetError(f"no context document '{name}'", hint="see them with `runsheet context list`")
        ws.delete_context(name, actor=ws.actor)
        out.print(f"context '{name}' deleted")

    guard(body)


@credits_app.callback()
def credits_show(
    ctx: typer.Context,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Show the credit balance."""
    from engine import Workspace

    if ctx.invoked_subcommand is not None:
        return

    def body() -> None:
        balance = Workspace(workspace, actor=actor).credits()
        if as_json:
            out.print_json(json.dumps({"balance": balance}))
        else:
            out.print(f"{balance:g} credits")

    guard(body)


@credits_app.command("add")
def credits_add(
    amount: Annotated[float, typer.Argument(help="Credits to add (negative to remove).")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Add credits to the workspace."""
    from engine import Workspace

    balance = guard(lambda: Workspace(workspace, actor=actor).add_credits(amount, reason="cli"))
    out.print(f"balance: {balance:g} credits")


@app.command()
def settings(
    key: Annotated[str | None, typer.Argument(help="A setting to change, e.g. concurrency.")] = None,
    value: Annotated[str | None, typer.Argument(help='Its new value, as JSON (e.g. 32, null, {"fast": 1}).')] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Show the workspace settings, or change one: `runsheet settings concurrency 32`."""
    from engine import Workspace

    def body() -> None:
        ws = Workspace(workspace, actor=actor)
        if key is None:
            current = ws.settings()
        else:
            if value is None:
                raise RunsheetError(f"give a value for '{key}'", hint=f"e.g. runsheet settings {key} 32")
            try:
                parsed = json.loads(value)
            except ValueError:
                raise RunsheetError(f"{value!r} is not JSON", hint="quote text as JSON, e.g. '\"text\"'") from None
            current = ws.set_setting(key, parsed)
        if as_json or key is None:
            out.print_json(json.dumps(vars(current)))
        else:
            out.print(f"{key} = {json.dumps(getattr(current, key))}")

    guard(body)
