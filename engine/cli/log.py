"""`runsheet log`: the run log (trigger, actor, scope, outcomes, credits, duration, progress); `--follow` keeps
printing runs as they start and progress until interrupted (or, with `--until-idle`, until none is running)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from engine.cli.common import DEFAULT_WORKSPACE, Actor, CampaignOption, JsonOption, WorkspaceOption, app, guard, out


@app.command()
def log(
    campaign: CampaignOption = None,
    trigger: Annotated[str | None, typer.Option(help="Only runs with this trigger (cli, api, schedule...).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only runs by this user.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many of the latest runs.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new runs and progress.")] = False,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="With --follow: stop when nothing runs.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between checks with --follow.")] = 1.0,
    as_user: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first: trigger, actor, scope, outcomes, credits, duration and progress."""
    from engine import Workspace

    def read(after: int = 0, count: int = limit) -> list[dict[str, Any]]:
        return Workspace(workspace, actor=as_user).run_log(
            campaign=campaign, trigger=trigger, actor=actor, after=after, limit=count
        )

    def body() -> None:
        runs = read()
        _print(runs, as_json)
        if not follow:
            return
        seen = {r["run_id"]: (r["status"], r["done"]) for r in runs}
        while True:
            time.sleep(interval)
            recent = read(count=max(limit, 50))
            changed = [r for r in reversed(recent) if seen.get(r["run_id"]) != (r["status"], r["done"])]
            for run in changed:
                seen[run["run_id"]] = (run["status"], run["done"])
                _print_line(run, as_json)
            if until_idle and not any(r["status"] == "running" for r in recent):
                return

    guard(body)


def _print(runs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for run in reversed(runs):
            _print_line(run, True)
        return
    table = Table(title="run log")
    for name in ("run", "campaign", "trigger", "actor", "scope", "status", "progress", "outcomes", "credits", "time"):
        table.add_column(name)
    for r in runs:
        table.add_row(
            str(r["run_id"]),
            str(r["campaign"]),
            str(r["trigger"]),
            str(r["actor"]),
            r["scope"],
            str(r["status"]),
            f"{r['done']}/{r['total']}",
            _outcomes(r),
            f"{r['credits']:g}",
            f"{r['seconds'] or 0:.1f}s",
        )
    out.print(table)


def _print_line(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print(json.dumps(run, default=str), soft_wrap=True)
        return
    out.print(
        f"run {run['run_id']} {run['campaign']} [{run['trigger']} by {run['actor']}] {run['scope']}: "
        f"{run['status']} {run['done']}/{run['total']} {_outcomes(run)} {run['credits']:g} credits "
        f"{run['seconds'] or 0:.1f}s"
    )


def _outcomes(run: dict[str, Any]) -> str:
    return ", ".join(f"{n} {o}" for o, n in run["outcomes"].items())
