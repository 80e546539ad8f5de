"""The commands that compute and watch runs: run (with a progress bar on a terminal, a progress line every few
seconds in a log, or --dry-run for an estimate), stop, runs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from engine import RunsheetError
from engine.cli.common import (
    DEFAULT_WORKSPACE,
    Actor,
    CampaignOption,
    JsonOption,
    WorkspaceOption,
    app,
    describe_errors,
    guard,
    open_campaign,
    out,
    parse_rows,
    print_report,
    up_to_date,
)

if TYPE_CHECKING:
    from engine import Estimate, RunProgress, RunReport, RunSelection

err = Console(stderr=True, highlight=False)
# What `runsheet run` exits with, by how the run ended for the cells in its scope (RunReport.ending); 1 is a user
# error (nothing ran), 2 an internal error. Documented in README.md and `runsheet run --help`.
EXIT_CODES = {"ok": 0, "failed": 3, "refused": 4, "stopped": 5}
Columns = Annotated[list[str] | None, typer.Option("--column", help="Run these columns (repeatable).")]
Rows = Annotated[str | None, typer.Option("--rows", help="Only these rows, e.g. 1,2,10-12.")]
Stale = Annotated[bool, typer.Option("--stale", help="Only cells that are stale or queued.")]
Empty = Annotated[bool, typer.Option("--empty", help="Only cells never computed (empty or queued).")]
Force = Annotated[
    bool,
    typer.Option("--force", help="Run Again: recompute even fresh or pinned cells, bypassing the cache."),
]
Errors = Annotated[
    bool,
    typer.Option("--errors", help="Retry failed cells: only the cells in error (whatever the code), then downstream."),
]
Code = Annotated[
    str | None,
    typer.Option("--code", help="With --errors: only cells that failed with this code, e.g. provider_error."),
]


@app.command()
def run(
    campaign: CampaignOption = None,
    column: Columns = None,
    rows: Rows = None,
    stale: Stale = False,
    empty: Empty = False,
    force: Force = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N rows of the selection.")] = None,
    errors: Errors = False,
    error_code: Code = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Estimate calls, cache hits, credits, tokens; run nothing.")
    ] = False,
    max_credits: Annotated[float | None, typer.Option("--max-credits", help="Spend at most this many credits.")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Calls in flight (default: the workspace's).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Where calls are made: local (this process) or ray (a Ray cluster; the `ray` extra). "
            "Default: the ray_min_cells setting decides.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            envvar="RAY_ADDRESS",
            help="A Ray cluster to join (default: an embedded one on 127.0.0.1 for the run).",
        ),
    ] = None,
    progress_every: ProgressEvery = 5.0,
    actor: Actor = None,
    trigger: Annotated[str, typer.Option("--trigger", help="Why: cli, ui, schedule, webhook.", hidden=True)] = "cli",
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """Compute cells: by default every auto-run step's empty, stale and queued cells, AI steps included.

    Cells that failed for a passing reason (rate limits, timeouts) are tried again by any run; the other failed
    cells only with --errors (--code narrows them to one error code).

    Exit codes: 0 every cell in scope ended well; 3 some ended in error (in this run, or kept in error from
    an earlier one); 4 some were refused (credits, a cap, or
    a paused step: they keep what they held); 5 the run was stopped; 1 a bad request (nothing ran).
    """
    from engine import RunOptions, RunSelection, WarmRunner

    def body() -> int:
        selection = RunSelection.of(
            column or None,
            parse_rows(rows),
            only_stale=stale,
            only_empty=empty,
            force=force,
            limit=limit,
            errors=errors,
            error_code=error_code,
        )
        retry = retry_command(campaign, column, rows)
        if concurrency is not None and concurrency < 1:
            raise RunsheetError(f"--concurrency {concurrency} is not a positive number", hint="give 1 or more")
        if backend not in (None, "local", "ray"):
            raise RunsheetError(f"--backend {backend} is not a backend", hint="give local or ray")
        if not dry_run and campaign is not None and backend != "ray" and few_cells(selection):
            call = WarmRunner.submit(
                workspace,
                campaign,
                selection,
                actor=actor,
                trigger=trigger,
                max_credits=max_credits,
                concurrency=concurrency,
            )
            if call is not None:  # a warm runner (the UI's, or serve's) runs it: no start-up to pay
                with progress_display(as_json, progress_every) as bar:
                    result = call.wait(bar.update)
                if result.error is not None or result.report is None:
                    typer.echo(result.error, err=True)
                    return result.code
                return ended(result.report, result.in_error, as_json, retry)
        handle = open_campaign(workspace, campaign, actor=actor, trigger=trigger)
        if dry_run:
            estimate = handle.estimate(selection, max_credits=max_credits)
            _print_estimate(estimate, as_json, retry)
            return 0
        with progress_display(as_json, progress_every) as bar:
            options = RunOptions(
                max_credits=max_credits,
                concurrency=concurrency,
                progress=bar.update,
                backend=backend,  # type: ignore[arg-type]  # checked above
                ray_address=ray_address,
            )
            report = handle.run(selection, options=options)
        return ended(report, handle.errors(selection), as_json, retry)

    code = guard(body)
    if code:
        raise typer.Exit(code)


# `run` on at most this many rows (or one column's cells on them) goes to a warm runner when one is up.
WARM_ROWS = 20


def few_cells(selection: RunSelection) -> bool:
    """Whether a run is small enough for a warm runner: a few named rows (a click, a row's steps)."""
    return selection.rows is not None and len(selection.rows) <= WARM_ROWS


def ended(report: RunReport, in_error: Mapping[str, int], as_json: bool, retry: str) -> int:
    """Print a finished run's report; returns the exit code it ends with."""
    print_report(report, as_json, in_error=in_error, retry=retry)
    code = EXIT_CODES[report.ending()]
    # cells of the scope left in error from before (rule 9 keeps them) are not "all well" either: a cron job
    # or CI step sees them, and the report says how to retry them
    return EXIT_CODES["failed"] if code == 0 and any(in_error.values()) else code


class ProgressBar:
    """A rich progress bar on stderr for the paid part of a run: done/total, rate, ETA, credits."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]run {task.fields[run_id]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.0f}/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[credits]:g} credits, {task.fields[hits]} cached"),
            console=err,
            transient=False,
        )
        self.task: int | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()

    def update(self, state: RunProgress) -> None:
        if not self.enabled:
            return
        import time

        elapsed = max(1e-6, time.monotonic() - state.started)
        fields: dict[str, object] = {
            "run_id": state.run_id,
            "rate": state.done / elapsed,
            "credits": state.credits,
            "hits": state.cache_hits,
        }
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("run", total=state.total, **fields)  # type: ignore[arg-type]
        self.progress.update(self.task, completed=state.done, total=state.total, **fields)  # type: ignore[arg-type]


# Without a terminal, how often `run` and `resume` print a progress line (seconds; 0 prints none).
ProgressEvery = Annotated[
    float,
    typer.Option(
        "--progress-every",
        envvar="RUNSHEET_PROGRESS_EVERY",
        metavar="SECONDS",
        help="Without a terminal (cron, CI): print a progress line this often; 0 prints none.",
    ),
]


def progress_display(as_json: bool, every: float) -> ProgressBar | ProgressLines:
    """A progress bar on a terminal (none with --json), else a progress line on stderr every `every` seconds."""
    if every < 0:
        raise RunsheetError(f"--progress-every {every:g} is negative", hint="give seconds, or 0 for none")
    return ProgressBar(enabled=not as_json) if err.is_terminal else ProgressLines(every)


class ProgressLines:
    """Progress for a log (cron, CI: stderr is no terminal): while paid work runs, one plain line on stderr every
    `every` seconds (cells done of total, rate, credits, errors), then a last line with the final counts. A run
    shorter than one interval prints none: its report says it all."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.state: RunProgress | None = None
        self.printed = 0
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> ProgressLines:
        if self.every > 0:
            self._ticker = threading.Thread(target=self._tick, name="runsheet-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.printed and self.state is not None:
            self._print("ended")

    def update(self, state: RunProgress) -> None:
        self.state = state  # called from the run's thread; the ticker only reads it

    def _tick(self) -> None:
        while not self._done.wait(self.every):
            if self.state is not None:
                self._print("running")

    def _print(self, phase: str) -> None:
        assert self.state is not None
        state = self.state
        done, total, credits, hits, errors = state.done, state.total, state.credits, state.cache_hits, state.errors
        elapsed = max(1e-6, time.monotonic() - state.started)
        typer.echo(
            f"run {state.run_id} {phase}: {done}/{total} cells done, {done / elapsed:.1f}/s, {credits:g} credits, "
            f"{hits} cached, {errors} {'error' if errors == 1 else 'errors'}, {_duration(elapsed)}",
            err=True,
        )
        self.printed += 1


def _duration(seconds: float) -> str:
    """12.3s, 4m05s, 2h07m: how long a run has been going, as a log line shows it."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = int(seconds) // 60
    if minutes < 60:
        return f"{minutes}m{int(seconds) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def retry_command(campaign: str | None, columns: list[str] | None, rows: str | None) -> str:
    """The command that retries the failed cells of the scope `run` was given."""
    parts = ["runsheet run --errors"]
    if campaign is not None:
        parts.append(f"-c {campaign}")
    parts += [f"--column {c}" for c in columns or []]
    if rows is not None:
        parts.append(f"--rows {rows}")
    return " ".join(parts)


def _print_estimate(estimate: Estimate, as_json: bool, retry: str) -> None:
    if as_json:
        out.print_json(json.dumps(estimate.as_dict()))
        return
    if not estimate.columns and not estimate.retries:
        out.print("nothing to run: " + up_to_date(estimate.errors, retry, "every cell this would compute"))
        return
    if estimate.columns:
        _print_estimate_table(estimate)
    else:  # failed cells of free steps only: computed again without a provider call
        out.print("no provider calls")
    if estimate.retries:
        out.print(f"retries {describe_errors(estimate.retries)}")
    if estimate.errors:
        out.print(f"leaves {describe_errors(estimate.errors)}: retry them with `{retry}`", soft_wrap=True)
    if estimate.budget is not None and estimate.budget.calls:
        out.print(("" if estimate.budget.enough else "[yellow]") + estimate.budget.describe(), soft_wrap=True)


def _print_estimate_table(estimate: Estimate) -> None:
    table = Table(title="estimate (nothing was run)")
    for name in ("column", "cells", "cache hits", "provider calls", "credits", "tokens"):
        table.add_column(name, justify="left" if name == "column" else "right")
    for c in estimate.columns:
        label = c.column + (" (downstream)" if c.downstream else "") + ("" if c.exact else " ~")
        table.add_row(
            label,
            str(c.calls),
            str(c.cache_hits),
            str(c.calls - c.cache_hits),
            f"{c.credits:g}",
            str(c.tokens),
        )
    table.add_row(
        "total",
        str(estimate.calls),
        str(estimate.cache_hits),
        str(estimate.calls - estimate.cache_hits),
        f"{estimate.credits:g}",
        str(estimate.tokens),
    )
    out.print(table)


@app.command()
def stop(
    run_id: Annotated[int, typer.Argument(help="The run to stop (see `runsheet runs`).")],
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Stop a running run: calls in flight are cancelled and nothing new starts."""
    from engine import Workspace

    def body() -> None:
        if not Workspace(workspace, actor=actor).stop_run(run_id):
            raise RunsheetError(f"run {run_id} is not running", hint="see running runs with `runsheet runs`")
        out.print(f"run {run_id}: stop requested")

    guard(body)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", help="How many of the latest runs.")] = 20,
    actor: Actor = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
    as_json: JsonOption = False,
) -> None:
    """List the latest runs with their progress, credits and outcome."""
    from engine import Workspace

    def body() -> None:
        found = Workspace(workspace, actor=actor).runs(limit)
        if as_json:
            out.print_json(json.dumps(found, default=str))
            return
        table = Table(title="runs")
        for name in ("run", "campaign", "status", "trigger", "actor", "done", "credits", "cached", "started"):
            table.add_column(name)
        for r in found:
            table.add_row(
                str(r["run_id"]),
                str(r["campaign"]),
                str(r["status"]),
                str(r["trigger"]),
                str(r["actor"]),
                f"{r['done']}/{r['total']}",
                f"{r['credits']:g}",
                str(r["cache_hits"]),
                str(r["started_at"])[:19],
            )
        out.print(table)

    guard(body)
