"""`runsheet spec`: a campaign's spec history (who changed it, when, through what, and the diff) and its live
spec exported as YAML that `runsheet apply` takes back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from engine.cli.common import (
    DEFAULT_WORKSPACE,
    Actor,
    CampaignOption,
    JsonOption,
    WorkspaceOption,
    app,
    guard,
    open_campaign,
    out,
)

spec_app = typer.Typer(help="A campaign's spec: its history of changes, and the live spec as YAML.")
app.add_typer(spec_app, name="spec")


@spec_app.command("history")
def spec_history(
    campaign: CampaignOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many changes, newest first.")] = 20,
    diff: Annotated[bool, typer.Option("--diff/--no-diff", help="Show each change's diff.")] = True,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Every change of the campaign's spec, newest first: when, who, through what (file, ui, api, import, edit)
    and the diff of the YAML."""
    from engine import Workspace

    def body() -> None:
        name = open_campaign(workspace, campaign, actor=actor).name
        changes = Workspace(workspace, actor=actor).spec_history(name, limit)
        if as_json:
            out.print_json(json.dumps(changes, default=str))
            return
        if not changes:
            out.print(f"no spec changes recorded for campaign {name}")
            return
        for change in changes:
            when = f"{change['changed_at']:%Y-%m-%d %H:%M:%S}" if change["changed_at"] else "?"
            who = change["actor"] or "unknown"
            out.print(f"[bold]#{change['change_id']}[/] {when} by {escape(who)} via {change['origin']}")
            if diff and change["diff"]:
                out.print(escape(change["diff"]), end="")

    guard(body)


@spec_app.command("export")
def spec_export(
    campaign: CampaignOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: print it).")
    ] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """The campaign's live spec (with the changes made in the UI or the API) as YAML: `runsheet apply` takes
    it back unchanged."""
    from engine import Workspace

    def body() -> None:
        name = open_campaign(workspace, campaign, actor=actor).name
        text = Workspace(workspace, actor=actor).spec_yaml(name)
        if output is None:
            typer.echo(text, nl=False)
            return
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote the spec of campaign {name} to {output}")

    guard(body)
