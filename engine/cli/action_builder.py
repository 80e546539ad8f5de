"""`runsheet action chat|column`: building or changing an action by describing it, and adding an action to a
campaign as a column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from engine import RunsheetError
from engine.cli.actions import action_app, print_fields
from engine.cli.common import DEFAULT_WORKSPACE, Actor, JsonOption, WorkspaceOption, guard, out


@action_app.command("chat")
def action_chat(
    name: str,
    request: Annotated[str | None, typer.Argument(help="What the action should do, or a question about it.")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="Check and preview against this campaign.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model that writes (default: offline).")
    ] = None,
    api_base: Annotated[str | None, typer.Option(help="An OpenAI-compatible server for --model.")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="The environment variable holding its key.")] = None,
    tools: Annotated[
        bool, typer.Option("--tools/--no-tools", help="Ask through tool calling (--no-tools: JSON mode).")
    ] = True,
    attach: Annotated[list[Path] | None, typer.Option("--attach", help="API documentation to read (a file).")] = None,
    confirm_preview: Annotated[
        bool, typer.Option("--confirm-preview", help="Run a paid preview at the estimate shown.")
    ] = False,
    accept: Annotated[bool, typer.Option("--accept", help="Apply the proposal at once (when it is valid).")] = False,
    add_column: Annotated[
        bool, typer.Option("--add-column", help="Once accepted, add it to --campaign as a column of its name.")
    ] = False,
    accept_proposal: Annotated[
        int | None, typer.Option("--accept-proposal", help="Apply an earlier proposal, by its number.")
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Reset Chat: forget this action's chat.")] = False,
    history: Annotated[bool, typer.Option("--history", help="Show this action's chat.")] = False,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Build or change an action by describing it: the builder proposes a step (a diff of the action's spec,
    checked, with its estimate and a preview); nothing is applied until you accept."""

    def body() -> None:
        from engine import Workspace

        builder = Workspace(workspace, actor=actor).builder(
            model, api_base=api_base, api_key_env=api_key_env, tools=tools, trigger="cli"
        )
        if reset:
            gone = builder.reset(name)
            out.print(f"chat of '{name}' reset ({gone} messages removed); the action is unchanged")
            return
        if history:
            found = builder.history(name)
            if as_json:
                out.print_json(json.dumps(found, default=str))
                return
            for message in found:
                out.print(f"[bold]{message['role']}[/bold] (#{message['message_id']}):", soft_wrap=True)
                out.print(escape(message["content"]), soft_wrap=True)
            return
        if accept_proposal is not None:
            print_fields(builder.accept(accept_proposal), as_json)
            return
        if not request:
            raise RunsheetError("say what the action should do", hint=f'runsheet action chat {name} "..."')
        if add_column and (campaign is None or not accept):
            raise RunsheetError("--add-column adds the accepted action to a campaign", hint="give --accept and -c NAME")
        documents = {p.name: p.read_text(encoding="utf-8") for p in attach or []}
        message = builder.chat(name, request, campaign=campaign, attachments=documents, confirm_preview=confirm_preview)
        proposal = message["proposal"]
        if as_json:
            out.print_json(json.dumps(message, default=str))
        else:
            out.print(escape(message["content"]), soft_wrap=True)
        if proposal is not None and proposal["status"] != "proposed":
            raise typer.Exit(1)
        if proposal is not None and accept:
            shown = builder.accept(message["message_id"])
            out.print(f"accepted: action '{shown['name']}' {'added, paused' if proposal['new'] else 'updated'}")
            if add_column and campaign is not None:
                _add_column(workspace, actor, shown["name"], campaign, None, None)
        elif proposal is not None and not as_json:
            out.print(
                f"accept with `runsheet action chat {name} --accept-proposal {message['message_id']}`", soft_wrap=True
            )

    guard(body)


@action_app.command("column")
def action_column(
    name: str,
    campaign: Annotated[str, typer.Option("--campaign", "-c", help="The campaign to add the column to.")],
    column: Annotated[str | None, typer.Option("--name", help="The column's name (default: the action's).")] = None,
    after: Annotated[str | None, typer.Option("--after", help="Put it after this column (default: last).")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Add a column made from an action to a campaign (`{name, action}` in its spec): a free step fills at once,
    a paid one starts paused for your consent. A column of that name already there is left as it is."""
    guard(lambda: _add_column(workspace, actor, name, campaign, column, after))


def _add_column(
    workspace: Path, actor: str | None, action: str, campaign: str, column: str | None, after: str | None
) -> None:
    from engine import Workspace
    from engine.cli.campaigns import print_applied

    print_applied(Workspace(workspace, actor=actor).add_action_column(campaign, action, name=column, after=after))
