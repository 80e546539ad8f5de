"""`runsheet action ...`: the workspace's action library, and running an action on one record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from engine import RunsheetError
from engine.cli.common import DEFAULT_WORKSPACE, Actor, JsonOption, WorkspaceOption, app, guard, out

action_app = typer.Typer(
    help="The action library: named, described steps run on one record (or added to a campaign).",
    no_args_is_help=True,
)
app.add_typer(action_app, name="action")

CampaignArg = Annotated[str, typer.Option("--campaign", "-c", help="The record's campaign.")]
RecordArg = Annotated[str, typer.Option("--record", "-r", help="A row id, or a name, email or domain it holds.")]


def _library(workspace: Path, actor: str | None) -> Any:
    from engine import Workspace

    return Workspace(workspace, actor=actor).actions(trigger="cli")


def _print(found: Any, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(found, default=str))
        return
    for key, value in found.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        out.print(f"[bold]{key}[/bold]: {shown}", soft_wrap=True)


@action_app.command("list")
def action_list(
    search: Annotated[str, typer.Argument(help="Only actions whose name, category or description has this.")] = "",
    runnable: Annotated[bool, typer.Option("--runnable", help="Only the actions you may run now.")] = False,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List the actions you may see, with whether you may run them."""

    def body() -> None:
        found = _library(workspace, actor).listed(runnable=runnable, search=search)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="actions")
        for name in ("name", "kind", "category", "state", "roles", "you may run", "description"):
            table.add_column(name)
        for a in found:
            state = ("active" if a["active"] else "paused") if a["enabled"] else "disabled"
            text = a["description"]
            table.add_row(
                a["name"],
                a["kind"],
                a["category"],
                state,
                ", ".join(a["roles"]),
                "yes" if a["may_run"] else "no",
                escape(text[:70] + ("…" if len(text) > 70 else "")),
            )
        out.print(table)

    guard(body)


@action_app.command("show")
def action_show(
    name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False
) -> None:
    """Show an action: its definition, description, state, roles and how much history it has."""
    guard(lambda: _print(_library(workspace, actor).show(name), as_json))


@action_app.command("templates")
def action_templates(as_json: JsonOption = False) -> None:
    """List the built-in action templates (`runsheet action add NAME --template T`)."""
    from engine import ACTION_TEMPLATES

    if as_json:
        out.print_json(json.dumps(ACTION_TEMPLATES))
        return
    for name, template in ACTION_TEMPLATES.items():
        out.print(f"[bold]{name}[/bold] ({template['category']}): {template['description']}", soft_wrap=True)


@action_app.command("add")
def action_add(
    name: str,
    template: Annotated[str | None, typer.Option("--template", "-t", help="Start from a built-in template.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="ai, http, export, formula or python.")] = None,
    options: Annotated[str | None, typer.Option("--options", help="The step's options as YAML or JSON.")] = None,
    options_file: Annotated[Path | None, typer.Option("--options-file", help="Read the options from a file.")] = None,
    category: Annotated[str | None, typer.Option(help="research, personalization, analysis, enablement...")] = None,
    description: Annotated[str | None, typer.Option(help="What the action does, in plain words.")] = None,
    roles: Annotated[str | None, typer.Option(help="Who may see and run it, e.g. admin,member.")] = None,
    produces: Annotated[str | None, typer.Option(help="result, or document (kept in Documents).")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Add an action to the library. It starts paused: `runsheet action resume NAME` lets it run."""

    def body() -> None:
        added = _library(workspace, actor).add(
            name,
            kind,
            _options(options, options_file),
            category=category,
            description=description,
            roles=None if roles is None else [r for r in roles.replace(",", " ").split() if r],
            produces=produces,
            template=template,
        )
        if as_json:
            out.print_json(json.dumps(added, default=str))
            return
        out.print(f"added action '{name}', paused: resume it with `runsheet action resume {name}` to let it run")

    guard(body)


def _options(text: str | None, file: Path | None) -> dict[str, Any] | None:
    if text is not None and file is not None:
        raise RunsheetError("give --options or --options-file, not both", hint="keep one")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as err:
            raise RunsheetError(f"cannot read {file}: {err.strerror}", hint="check the path") from err
    if text is None:
        return None
    import yaml

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RunsheetError("the options are not valid YAML or JSON", hint="e.g. --options '{prompt: Hi}'") from err
    if not isinstance(parsed, dict):
        raise RunsheetError("the options must be a mapping", hint="e.g. --options '{prompt: Summarise the company}'")
    return parsed


@action_app.command("edit")
def action_edit(
    name: str,
    options: Annotated[str | None, typer.Option("--options", help="New options as YAML or JSON.")] = None,
    options_file: Annotated[Path | None, typer.Option("--options-file", help="Read the options from a file.")] = None,
    category: Annotated[str | None, typer.Option(help="A new category.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    produces: Annotated[str | None, typer.Option(help="result or document.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Change an action's options, category, description or what it produces; campaign columns made from it
    (`action: NAME` in a spec) follow a change of its options, as a spec change."""

    def body() -> None:
        given: dict[str, Any] = {"options": _options(options, options_file), "category": category}
        given |= {"description": description, "produces": produces}
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            raise RunsheetError("nothing to change", hint="give --options, --category, --description or --produces")
        from engine import Workspace

        applied = Workspace(workspace, actor=actor).update_action(name, **changes)
        out.print(f"changed action '{name}': {', '.join(changes)}")
        for result in applied:
            changed = ", ".join(result.changes.changed)
            waiting = " (paid re-runs wait: `runsheet run` to confirm)" if result.needs_confirmation else ""
            out.print(f"campaign {result.campaign}: columns made from it changed: {changed}{waiting}")

    guard(body)


@action_app.command("rename")
def action_rename(
    name: str, new_name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE
) -> None:
    """Rename an action; its results, documents and history stay its own."""

    def body() -> None:
        _library(workspace, actor).rename(name, new_name)
        out.print(f"renamed action '{name}' to '{new_name}'")

    guard(body)


@action_app.command("delete")
def action_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete it with its results, documents and log.")] = False,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Delete an action with its results, documents and log (asks for --yes; credit rows stay)."""

    def body() -> None:
        removed = _library(workspace, actor).delete(name, confirm=yes)
        out.print(
            f"deleted action '{name}' with {removed['action_results']} results, {removed['documents']} documents "
            f"and {removed['activity']} activity rows"
        )

    guard(body)


def _switch(name: str, actor: str | None, workspace: Path, what: str) -> None:
    def body() -> None:
        library = _library(workspace, actor)
        {
            "enabled": lambda: library.set_enabled(name, True),
            "disabled": lambda: library.set_enabled(name, False),
            "paused": lambda: library.pause(name),
            "resumed": lambda: library.resume(name),
        }[what]()
        out.print(f"action '{name}' {what}")

    guard(body)


@action_app.command("enable")
def action_enable(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Switch an action on (admins)."""
    _switch(name, actor, workspace, "enabled")


@action_app.command("disable")
def action_disable(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Switch an action off: it is not listed to run, and runs are refused with action_disabled (admins)."""
    _switch(name, actor, workspace, "disabled")


@action_app.command("pause")
def action_pause(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Pause an action: it does not run until resumed."""
    _switch(name, actor, workspace, "paused")


@action_app.command("resume")
def action_resume(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Resume (activate) an action: from now on it may run. New actions start paused."""
    _switch(name, actor, workspace, "resumed")


@action_app.command("roles")
def action_roles(
    name: str,
    roles: Annotated[list[str], typer.Argument(help="The roles that may see and run it: admin, member, viewer.")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Set who may see and run an action (admins always may; viewers see, never run)."""

    def body() -> None:
        chosen = _library(workspace, actor).set_roles(name, [r for part in roles for r in part.split(",") if r])
        out.print(f"action '{name}' is for: {', '.join(chosen['roles'])}")

    guard(body)


@action_app.command("run")
def action_run(
    name: str,
    campaign: CampaignArg,
    record: RecordArg,
    again: Annotated[bool, typer.Option("--again", help="Regenerate: ask the provider anew, not the cache.")] = False,
    save: Annotated[str | None, typer.Option("--save", help="Save the result to this field (e.g. notes).")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Run an action on one record and print its result (markdown)."""

    def body() -> None:
        library = _library(workspace, actor)
        result = library.run(name, campaign, record, force=again)
        if save is not None and result["status"] == "done":
            result = library.save_result(result["result_id"], save)
        if as_json:
            out.print_json(json.dumps(result, default=str))
        else:
            _print_result(result)
        if result["status"] == "error":
            raise typer.Exit(1)

    guard(body)


def _print_result(result: dict[str, Any]) -> None:
    took = "" if result["latency_ms"] is None else f" in {result['latency_ms'] / 1000:.2f} s"
    out.print(
        f"[bold]{result['action']}[/bold] on row {result['row_id']} of {result['campaign']}: {result['status']}{took}, "
        f"{result['credits']:g} credits{' (from the cache)' if result['cached'] else ''}; result {result['result_id']}",
        soft_wrap=True,
    )
    if result["status"] == "error":
        out.print(
            escape(f"{result['error_code']}: {result['error_message']}. Fix: {result['error_hint']}"), soft_wrap=True
        )
    elif result["value"] is not None:
        out.print(Markdown(result["value"]))
    if result["saved_field"]:
        out.print(f"saved to {result['saved_field']} by {result['saved_by']}")


@action_app.command("results")
def action_results(
    name: Annotated[str | None, typer.Argument(help="Only this action's results.")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign's.")] = None,
    row: Annotated[int | None, typer.Option("--row", help="Only this record's.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List results of actions run on records, newest first."""

    def body() -> None:
        found = _library(workspace, actor).results(action=name, campaign=campaign, row_id=row, limit=limit)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="action results")
        for column in ("id", "action", "campaign", "row", "status", "credits", "finished", "by", "value"):
            table.add_column(column)
        for r in found:
            text = (r["value"] or r["error_message"] or "").replace("\n", " ")
            table.add_row(
                str(r["result_id"]),
                r["action"],
                str(r["campaign"]),
                str(r["row_id"]),
                r["status"],
                f"{r['credits'] or 0:g}",
                str(r["finished_at"])[:19],
                str(r["actor"]),
                escape(text[:50] + ("…" if len(text) > 50 else "")),
            )
        out.print(table)

    guard(body)


@action_app.command("save")
def action_save(
    result_id: int,
    field: Annotated[str, typer.Option("--to", help="The record field (notes appends a line).")] = "notes",
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Save to Record: put an action result into the record (a timeline entry marked AI generated)."""

    def body() -> None:
        saved = _library(workspace, actor).save_result(result_id, field)
        out.print(f"saved result {result_id} of {saved['action']} to row {saved['row_id']}'s {field}")

    guard(body)


@action_app.command("documents")
def action_documents(
    name: Annotated[str | None, typer.Argument(help="Only this action's documents.")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="Only this campaign's.")] = None,
    row: Annotated[int | None, typer.Option("--row", help="Only this record's.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List the documents actions produced (meeting prep notes...)."""

    def body() -> None:
        found = _library(workspace, actor).documents(action=name, campaign=campaign, row_id=row)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="documents")
        for column in ("id", "title", "action", "campaign", "row", "author", "created"):
            table.add_column(column)
        for d in found:
            table.add_row(
                str(d["document_id"]),
                escape(d["title"]),
                d["action"],
                str(d["campaign"]),
                str(d["row_id"]),
                str(d["author"]),
                str(d["created_at"])[:19],
            )
        out.print(table)

    guard(body)


@action_app.command("document")
def action_document(
    document_id: int,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this markdown file.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Print a document, or export it as a markdown file (an existing file is not overwritten)."""

    def body() -> None:
        found = _library(workspace, actor).document(document_id)
        if output is None:
            typer.echo(found["body"])
            return
        try:
            with output.open("x", encoding="utf-8") as handle:
                handle.write(found["body"].rstrip("\n") + "\n")
        except FileExistsError:
            raise RunsheetError(f"{output} exists", hint="choose another file name, or remove it first") from None
        out.print(f"wrote document {document_id} to {output}")

    guard(body)


@action_app.command("find")
def action_find(
    campaign: str,
    text: str,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 10,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Find records of a campaign by row id, name, email or domain (for --record)."""

    def body() -> None:
        found = _library(workspace, actor).find_records(campaign, text, limit)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        for record in found:
            shown = ", ".join(str(v) for k, v in record.items() if k != "row_id" and v not in (None, ""))
            out.print(f"{record['row_id']}: {escape(shown[:110])}", soft_wrap=True)
        if not found:
            out.print(f"no record of {campaign} matches {text!r}")

    guard(body)


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
            _print(builder.accept(accept_proposal), as_json)
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
