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


def open_library(workspace: Path, actor: str | None) -> Any:
    from engine import Workspace

    return Workspace(workspace, actor=actor).actions(trigger="cli")


def print_fields(found: Any, as_json: bool) -> None:
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
        found = open_library(workspace, actor).listed(runnable=runnable, search=search)
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
    guard(lambda: print_fields(open_library(workspace, actor).show(name), as_json))


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
        added = open_library(workspace, actor).add(
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
        open_library(workspace, actor).rename(name, new_name)
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
        removed = open_library(workspace, actor).delete(name, confirm=yes)
        out.print(
            f"deleted action '{name}' with {removed['action_results']} results, {removed['documents']} documents "
            f"and {removed['activity']} activity rows"
        )

    guard(body)


def _switch(name: str, actor: str | None, workspace: Path, what: str) -> None:
    def body() -> None:
        library = open_library(workspace, actor)
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
        chosen = open_library(workspace, actor).set_roles(name, [r for part in roles for r in part.split(",") if r])
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
        library = open_library(workspace, actor)
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


# The rest of `runsheet action`, registered on action_app when imported: what actions produced (results,
# documents, Save to Record, finding a record) and building them by chat.
from engine.cli import action_builder, action_outputs  # noqa: E402, F401
