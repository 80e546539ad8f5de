"""`runsheet copilot ...`: continue a result (a cell, or an action result) in a chat, then save a reply to the
record or pin it as the cell's value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from engine.cli.common import DEFAULT_WORKSPACE, Actor, JsonOption, WorkspaceOption, app, guard, out

copilot_app = typer.Typer(
    help="Copilot: continue a result in a chat; save a reply to the record or use it as the cell's value.",
    no_args_is_help=True,
)
app.add_typer(copilot_app, name="copilot")

ChatArg = Annotated[int, typer.Argument(help="The chat's number (`runsheet copilot start` prints it).")]
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="The model that answers (default: the step's, or offline).")
]
ApiBaseOption = Annotated[str | None, typer.Option(help="An OpenAI-compatible server for --model.")]
KeyEnvOption = Annotated[str | None, typer.Option(help="The environment variable holding its key.")]


def _copilot(workspace: Path, actor: str | None, model: str | None = None, **given: Any) -> Any:
    from engine import Workspace

    return Workspace(workspace, actor=actor).copilot(model, actor=actor, trigger="cli", **given)


def _show(chat: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(chat, default=str))
        return
    where = f"result {chat['result_id']}" if chat["result_id"] is not None else chat["column_name"]
    out.print(f"[bold]chat {chat['chat_id']}[/bold]: {chat['campaign']} row {chat['row_id']}, {where}")
    out.print(f"[bold]result[/bold]: {escape(str(chat['seed'].get('result', '')))}", soft_wrap=True)
    for message in chat["messages"]:
        used = f" (used: {message['used_as']} by {message['used_by']})" if message["used_as"] else ""
        out.print(f"[bold]{message['role']}[/bold] #{message['message_id']}{used}:", soft_wrap=True)
        out.print(escape(message["content"]), soft_wrap=True)


@copilot_app.command("start")
def copilot_start(
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="The cell's campaign.")] = None,
    row: Annotated[int | None, typer.Option("--row", "-r", help="The cell's row id.")] = None,
    column: Annotated[str | None, typer.Option("--column", help="The cell's step column.")] = None,
    result: Annotated[int | None, typer.Option("--result", help="An action result's id, instead of a cell.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Send to Copilot: open the chat of a cell or an action result (the one kept for it, or a new one)."""

    def body() -> None:
        chat = _copilot(workspace, actor).start(campaign=campaign, row=row, column=column, result=result)
        _show(chat, as_json)
        if not as_json:
            out.print(f'ask for a change with `runsheet copilot say {chat["chat_id"]} "shorter"`', soft_wrap=True)

    guard(body)


@copilot_app.command("say")
def copilot_say(
    chat: ChatArg,
    message: Annotated[str, typer.Argument(help='How the result should change, e.g. "shorter".')],
    model: ModelOption = None,
    api_base: ApiBaseOption = None,
    api_key_env: KeyEnvOption = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Send a message: the model answers with a new version of the result (one model call, billed once)."""

    def body() -> bool:
        copilot = _copilot(workspace, actor, model, api_base=api_base, api_key_env=api_key_env)
        reply = copilot.say(chat, message)
        if as_json:
            out.print_json(json.dumps(reply, default=str))
        else:
            out.print(escape(reply["content"]), soft_wrap=True)
        if reply["model"] == "offline" and not as_json:
            out.print("(the offline model answered: set --model, or the step's key, for a real one)", soft_wrap=True)
        if reply["role"] != "error" and not as_json:
            out.print(
                f"use it with `runsheet copilot save {chat} --to record` or `--to cell` (#{reply['message_id']})",
                soft_wrap=True,
            )
        return reply["role"] != "error"

    if not guard(body):  # the model gave no reply: said above, exit 1 (outside guard, which counts Exit a bug)
        raise typer.Exit(1)


@copilot_app.command("save")
def copilot_save(
    chat: ChatArg,
    to: Annotated[
        str, typer.Option("--to", help="record (Save to Record) or cell (pin it as the cell's value).")
    ] = "record",
    message: Annotated[int | None, typer.Option("--message", help="The reply to use (default: the latest).")] = None,
    field: Annotated[str, typer.Option("--field", help="With --to record: notes, or a field.")] = "notes",
    column: Annotated[str | None, typer.Option("--column", help="With --to cell: the step column.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Use a reply: save it to the record, or pin it as the cell's value (as `runsheet set` does: exports wait
    until `runsheet confirm`)."""

    def body() -> None:
        from engine import EditError

        if to not in ("record", "cell"):
            raise EditError(f"cannot save to {to!r}", hint="use --to record or --to cell")
        target: Literal["record", "cell"] = "record" if to == "record" else "cell"
        used = _copilot(workspace, actor).save(chat, to=target, message_id=message, field=field, column=column)
        if as_json:
            out.print_json(json.dumps(used, default=str))
            return
        out.print(f"reply #{used['message_id']} used: {used['used_as']}", soft_wrap=True)
        if target == "cell":
            out.print("pinned as a hand edit; exports downstream wait until you `runsheet confirm` it", soft_wrap=True)

    guard(body)


@copilot_app.command("show")
def copilot_show(
    chat: ChatArg,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Show a chat: the result it continues and its messages."""
    guard(lambda: _show(_copilot(workspace, actor).show(chat), as_json))


@copilot_app.command("reset")
def copilot_reset(chat: ChatArg, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Reset: forget the chat's messages and seed it again from its result as it is now."""

    def body() -> None:
        gone = _copilot(workspace, actor).reset(chat)
        out.print(f"chat {chat} reset ({gone} messages removed); the record and the cell are unchanged")

    guard(body)
