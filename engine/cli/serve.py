"""`runsheet serve` (the HTTP API with the scheduler), and the commands that set it up: users and their roles,
API tokens, schedules, pause and resume.

The server runs in this process and binds 127.0.0.1 unless told otherwise; `--exit-after` makes it stop by
itself (tests use it as a safety net), and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from engine import RunsheetError
from engine.cli.common import (
    DEFAULT_WORKSPACE,
    Actor,
    CampaignOption,
    JsonOption,
    WorkspaceOption,
    app,
    guard,
    out,
    print_report,
    report_summary,
)
from engine.cli.runs import ProgressEvery, progress_display

if TYPE_CHECKING:
    from engine import Workspace

users_app = typer.Typer(help="Who may do what: admin, member (run, edit inputs), viewer (read).")
token_app = typer.Typer(help="API tokens for `runsheet serve` (each acts as a user).")
schedule_app = typer.Typer(help="Runs on a cron expression or an interval, inside `runsheet serve`.")
app.add_typer(users_app, name="users")
app.add_typer(token_app, name="token")
app.add_typer(schedule_app, name="schedule")


def _workspace(path: object, actor: str | None) -> Workspace:
    from engine import Workspace

    return Workspace(path, actor=actor)  # type: ignore[arg-type]  # no actor: $RUNSHEET_USER or the login name


@app.command()
def serve(
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    host: Annotated[str, typer.Option(help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8700,
    schedules: Annotated[bool, typer.Option("--schedules/--no-schedules", help="Run due schedules.")] = True,
    tick: Annotated[float, typer.Option("--tick", help="Seconds between schedule checks.")] = 30.0,
    exit_after: Annotated[
        float | None, typer.Option("--exit-after", help="Stop the server by itself after this many seconds.")
    ] = None,
) -> None:
    """Serve the HTTP API (records in, runs, stop; docs at /docs) and run due schedules."""
    import uvicorn

    from engine import Scheduler, WarmRunner
    from engine.api import create_app

    ws = guard(lambda: _workspace(workspace, None))
    server = uvicorn.Server(uvicorn.Config(create_app(ws.path), host=host, port=port, log_level="warning"))
    scheduler = Scheduler(ws, interval=tick) if schedules else None
    if exit_after is not None:
        timer = threading.Timer(exit_after, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    if scheduler is not None:
        scheduler.start()
    runner = WarmRunner.start(ws.path)  # small `runsheet run`s on this workspace skip their start-up

    def stop_then_die(signum: int, frame: object) -> None:
        # uvicorn ends by raising the SIGTERM it caught again, which would end this process before `finally`
        runner.stop()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, stop_then_die)
    typer.echo(f"Runsheet API for {ws.path} on http://{host}:{port} (docs: /docs)", err=True)
    try:
        server.run()
    finally:
        if scheduler is not None:
            scheduler.stop()
        runner.stop()


# ---- users and tokens ---------------------------------------------------------------------------------------


@users_app.command("set")
def users_set(
    name: str,
    role: Annotated[str, typer.Argument(help="admin, member or viewer")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Give a user a role (the first user must be an admin; from then on roles apply)."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        first = not ws.users()
        ws.set_role(name, role)
        out.print(f"{name} is {'an' if role == 'admin' else 'a'} {role}")
        if first and ws.actor != name:  # roles apply from now on, and this process's user is not one
            out.print(f"roles apply from now on: act as {name} with `--as {name}` or `export RUNSHEET_USER={name}`")

    guard(body)


@users_app.command("password")
def users_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")
    ] = False,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Set a user's password for logging in to the UI (asked twice, not echoed); ends their UI sessions."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = _ask_password(name)
        ws.set_password(name, password)
        out.print(f"{name}'s password is set")

    guard(body)


def _ask_password(name: str) -> str:
    """The password, typed twice without echo; differing entries or the end of input refuse (one line, nothing
    set) instead of asking again."""
    again = f"run `runsheet users password {name}` again, or use --password-stdin"
    try:
        password = typer.prompt(f"Password for {name}", hide_input=True)
        repeated = typer.prompt("Repeat for confirmation", hide_input=True)
    except typer.Abort:
        raise RunsheetError("no password was typed (the input ended)", hint=again) from None
    if password != repeated:
        raise RunsheetError("the two passwords differed; nothing was changed", hint=again)
    return password


@users_app.command("remove")
def users_remove(name: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Remove a user and their tokens."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        if not ws.remove_user(name):
            raise RunsheetError(f"no user '{name}'", hint="see them with `runsheet users list`")
        out.print(f"{name} removed")

    guard(body)


@users_app.command("list")
def users_list(
    actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False
) -> None:
    """List users, their roles, whether they have a UI password and how many tokens each has."""

    def body() -> None:
        found = _workspace(workspace, actor).users()
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="users" if found else "no users: everyone acts as admin")
        for name in ("user", "role", "password", "tokens", "added by"):
            table.add_column(name)
        for u in found:
            has = "set" if u["password"] else "-"
            table.add_row(str(u["name"]), str(u["role"]), has, str(u["tokens"]), str(u["created_by"]))
        out.print(table)

    guard(body)


@token_app.command("create")
def token_create(
    user: str,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Create an API token acting as USER; it is printed once (only its hash is kept)."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        typer.echo(ws.create_token(user, label))

    guard(body)


@token_app.command("revoke")
def token_revoke(user: str, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Revoke every token of USER."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        out.print(f"{ws.revoke_tokens(user)} token(s) revoked")

    guard(body)


# ---- pause and resume ---------------------------------------------------------------------------------------


def _only_campaign(ws: Workspace) -> str:
    names = ws.campaigns()
    if len(names) != 1:
        raise RunsheetError("name the campaign", hint="use --campaign NAME")
    return names[0]


ColumnOption = Annotated[str | None, typer.Option("--column", help="Only this step.")]


@app.command()
def pause(
    campaign: CampaignOption = None,
    column: ColumnOption = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Pause a campaign (its paid steps) or one step: asked to run, its cells keep what they hold (empty ones show
    paused)."""

    def body() -> None:
        ws = _workspace(workspace, actor)
        name = campaign or _only_campaign(ws)
        changed = ws.pause(name, column)
        what = f"step {column} of {name}" if column else f"campaign {name}"
        out.print(f"{what} paused" if changed else f"{what} was already paused")

    guard(body)


@app.command()
def resume(
    campaign: CampaignOption = None,
    column: ColumnOption = None,
    actor: Actor = None,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only resume; run nothing now.")] = False,
    progress_every: ProgressEvery = 5.0,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused campaign or step, then run what was accepted while paused (its queued auto-run cells,
    records that came in), like `runsheet run`, unless --no-run."""
    from engine import RunOptions

    def body() -> None:
        display = progress_display(as_json, progress_every)  # a bad interval is refused before anything resumes
        ws = _workspace(workspace, actor)
        name = campaign or _only_campaign(ws)
        resumed = ws.resume(name, column, run=not no_run, trigger="cli")
        report = None
        if resumed.run is not None:
            with display as bar:
                report = resumed.campaign.finish_run(resumed.run, RunOptions(progress=bar.update))
        if as_json:
            summary = None if report is None else report_summary(report)
            out.print_json(json.dumps({"campaign": name, "changed": resumed.changed, "run": summary}))
            return
        what = f"step {column} of {name}" if column else f"campaign {name}"
        out.print(f"{what} resumed" if resumed.changed else f"{what} was already resumed")
        if report is not None:
            print_report(report, False)

    guard(body)


# ---- schedules ----------------------------------------------------------------------------------------------


@schedule_app.command("add")
def schedule_add(
    campaign: CampaignOption = None,
    column: ColumnOption = None,
    cron: Annotated[str | None, typer.Option(help="A cron expression, e.g. '0 6 * * *'.")] = None,
    every: Annotated[str | None, typer.Option(help="An interval, e.g. 15m, 1h, 1d.")] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Also re-run cells computed longer ago, e.g. 30d.")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Run this library action on records instead.")] = None,
    records: Annotated[
        str | None, typer.Option(help="With --action: the records, as SQL over their fields (default: all).")
    ] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="The time zone of --cron, e.g. Europe/Berlin.")] = None,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Run a campaign's auto-run steps (or --column), or a library action on its records (--action), on a
    schedule, inside `runsheet serve`."""
    from engine import add_schedule

    def body() -> None:
        ws = _workspace(workspace, actor)
        made = add_schedule(
            ws,
            campaign or _only_campaign(ws),
            column=column,
            cron=cron,
            every=every,
            older_than=older_than,
            action=action,
            records=records,
            timezone=tz,
        )
        out.print(f"schedule {made.schedule_id}: {made.describe}; next run at {made.next_due_at:%Y-%m-%d %H:%M:%S}")

    guard(body)


@schedule_app.command("list")
def schedule_list(
    actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE, as_json: JsonOption = False
) -> None:
    """List schedules with their next and last runs."""
    from engine import list_schedules

    def body() -> None:
        found = list_schedules(_workspace(workspace, actor))
        if as_json:
            out.print_json(json.dumps([vars(s) for s in found], default=str))
            return
        table = Table(title="schedules")
        for name in ("id", "campaign", "column", "when", "older than", "next", "last run"):
            table.add_column(name)
        for s in found:
            when, older = s.when, s.older_than
            table.add_row(
                str(s.schedule_id),
                s.campaign,
                f"action #{s.action_id}" + (f" where {s.record_filter}" if s.record_filter else "")
                if s.action_id is not None
                else s.column or "(auto steps)",
                when,
                older,
                f"{s.next_due_at:%Y-%m-%d %H:%M:%S}",
                str(s.last_run_id or ""),
            )
        out.print(table)

    guard(body)


@schedule_app.command("remove")
def schedule_remove(schedule_id: int, actor: Actor = None, workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Remove a schedule."""
    from engine import remove_schedule

    def body() -> None:
        remove_schedule(_workspace(workspace, actor), schedule_id)
        out.print(f"schedule {schedule_id} removed")

    guard(body)
