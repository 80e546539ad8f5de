"""Runs outside the Streamlit script: hand a run to the warm runner, or launch `runsheet run` as a detached
process; list what runs, stop it.

A run started from the UI goes to the warm runner that `runsheet ui` started beside it (engine/warm.py: the
engine and litellm already imported, so a click costs its calls, not a process start-up); with none up (a UI
started another way), it is its own `runsheet run` process. Either way it runs outside the Streamlit script with
the same runner as the CLI, so widget clicks, reruns and page reloads never kill it. Progress is read back from
the workspace's `runs` table, which every tab and every process sees. The launch registry here (module state,
shared by every session of this server) covers the moment before a run has written its run row, and remembers
runs that failed before they could.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import RunSelection, RunsheetError, WarmCall, WarmResult, WarmRunner, Workspace

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = Path(tempfile.gettempdir()) / "runsheet-ui-runs"
ACTIVE = frozenset({"running", "queued", "starting"})


class RunConflict(RunsheetError):
    """A run was asked for while another run of the same columns is still going."""


@dataclass(frozen=True)
class RunRequest:
    """What to run: the CLI's `run` arguments. No columns means every auto-run step."""

    campaign: str
    columns: tuple[str, ...] = ()
    rows: tuple[int, ...] | None = None
    force: bool = False
    only_stale: bool = False
    only_empty: bool = False
    limit: int | None = None  # the first N rows of the selection
    errors: bool = False  # Retry failed cells: only the cells in error (with error_code, that code's)
    error_code: str | None = None

    @property
    def selection(self) -> RunSelection:
        """This request as the engine's one shape of a run selection (no columns: every auto-run step)."""
        return RunSelection.of(
            self.columns or None,
            self.rows,
            only_stale=self.only_stale,
            only_empty=self.only_empty,
            force=self.force,
            limit=self.limit,
            errors=self.errors,
            error_code=self.error_code,
        )

    @property
    def few_cells(self) -> bool:
        """A click's request: a few named rows (the grid polls faster for it)."""
        return self.rows is not None and len(self.rows) <= 20

    def cli_args(self) -> list[str]:
        args = ["--campaign", self.campaign]
        for column in self.columns:
            args += ["--column", column]
        if self.rows is not None:
            args += ["--rows", compress_rows(self.rows)]
        if self.force:
            args.append("--force")
        if self.only_stale:
            args.append("--stale")
        if self.only_empty:
            args.append("--empty")
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        if self.errors or self.error_code is not None:
            args.append("--errors")
        if self.error_code is not None:
            args += ["--code", self.error_code]
        return args

    def describe(self) -> str:
        what = ", ".join(self.columns) if self.columns else "every auto-run step"
        where = "all rows" if self.rows is None else f"{len(self.rows)} row(s)"
        if self.limit is not None:
            where = f"the first {self.limit} row(s)"
        mode = (
            " (failed cells only)"
            if self.errors or self.error_code is not None
            else " (Run Again)"
            if self.force
            else " (stale only)"
            if self.only_stale
            else " (not run yet only)"
            if self.only_empty
            else ""
        )
        return f"{what} on {where}{mode}"


class WarmProcess:
    """A run handed to the warm runner, seen as the process it replaces: `poll` (None while it runs, then an exit
    code), `terminate` (stops it), `pid` (the runner's). A thread follows the run and writes what `runsheet run`
    would have printed of a failure into `log_path`."""

    def __init__(self, call: WarmCall, log_path: Path) -> None:
        self.call = call
        self.pid = call.pid
        self.log_path = log_path
        self.result: WarmResult | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="ui-warm-run", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        result = self.call.wait()
        lines = [result.error] if result.error else []
        if result.report is not None and result.report.message:
            lines.append(f"run {result.report.run_id}: {result.report.message}")
        self.log_path.write_text("".join(f"{line}\n" for line in lines))
        self.result = result
        self.done.set()

    def poll(self) -> int | None:
        """None while the run goes; then 4 when it stopped for credits, the error's code, else 0."""
        result = self.result
        if result is None:
            return None
        if result.error is not None or result.report is None:
            return result.code or 2
        return 4 if result.report.ending() == "refused" else 0

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the run to end (a Popen's `wait`); raises TimeoutExpired if it has not within `timeout`."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired(f"warm run on {self.pid}", timeout or 0)
        return self.poll()

    def terminate(self) -> None:
        self.call.cancel()  # the runner stops a run whose caller went away


_IDENTS = iter(range(1, 1 << 62))


@dataclass
class Launch:
    """One run this server started: a warm runner's (WarmProcess) or a `runsheet run` process."""

    workspace: Path
    request: RunRequest
    actor: str
    process: subprocess.Popen[bytes] | WarmProcess
    log_path: Path
    started: float = field(default_factory=time.time)
    seen: bool = False  # a failure is reported once
    ident: int = field(default_factory=lambda: next(_IDENTS))  # a warm runner's launches share its pid

    @property
    def pid(self) -> int:
        return self.process.pid

    def has_run_row(self, pids: set[int]) -> bool:
        """Whether the run has written its run row, among the running runs' `pids` (a warm run says so with its
        first progress line; a process by its pid)."""
        if isinstance(self.process, WarmProcess):
            return self.process.call.run_id is not None
        return self.pid in pids

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def failure(self) -> str | None:
        """The run's one-line error if its process ended badly, else None. A run that ended with cells in error
        (exit 3) or was stopped (5) ended well as a process: its cells say the rest; one that stopped for credits
        (4) says so."""
        code = self.process.poll()
        if code is None or code in (0, 3, 5):
            return None
        try:
            lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            lines = []
        if code == 4:
            return next((line for line in lines if "stopped for credits" in line), None)
        reason = next((line for line in reversed(lines) if line.startswith(("error:", "internal error:"))), None)
        return reason or (lines[-1] if lines else f"the run process exited with code {code}")


_LAUNCHES: list[Launch] = []
_LOCK = threading.RLock()


def compress_rows(rows: Sequence[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3,7,9-10' (the CLI's --rows syntax), so a long selection stays a short argument."""
    ordered = sorted(set(int(r) for r in rows))
    parts: list[str] = []
    start = prev = None
    for row in ordered:
        if start is None:
            start = prev = row
        elif row == prev + 1:  # type: ignore[operator]
            prev = row
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = row
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def command_for(workspace: Path, request: RunRequest, actor: str) -> list[str]:
    """The `runsheet run` command line of `request`, acting as `actor` (the CLI ships with this UI, so every
    option is there: tests/test_public_api.py parses the line with the CLI's own parser)."""
    command = [sys.executable, "-m", "engine.cli", "run", "--workspace", str(workspace), *request.cli_args()]
    return command + ["--as", actor, "--trigger", "ui"]


def launch(workspace: Path, request: RunRequest, *, actor: str, ws: Workspace | None = None) -> Launch:
    """Start `request` on the warm runner, or (none up) as a detached `runsheet run` process; raises RunConflict
    if it would duplicate a run, and PermissionDeniedError (logged) if `actor` may not run: refused here, in plain
    words, not in the process."""
    acting = ws if ws is not None and ws.actor == actor else Workspace(workspace, actor=actor)
    acting.authorize("run", what=request.campaign)
    with _LOCK:
        conflict = find_conflict(workspace, request, ws)
        if conflict:
            raise RunConflict(conflict, hint="wait for it to finish, or stop it first")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"run-{time.time_ns()}.log"
        call = WarmRunner.submit(
            workspace,
            request.campaign,
            request.selection,
            actor=actor,
            trigger="ui",
            in_error=False,  # the grid shows the cells themselves
        )
        if call is not None:
            started = Launch(workspace, request, actor, WarmProcess(call, log_path), log_path)
            _LAUNCHES.append(started)
            return started
        env = dict(os.environ)
        env["RUNSHEET_WORKSPACE"] = str(workspace)
        env["USER"] = actor  # the CLI records $USER as the actor when it has no --as
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), str(ROOT), env.get("PYTHONPATH", "")) if p)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command_for(workspace, request, actor),
                cwd=os.getcwd(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: a signal to the UI server does not reach it
            )
        started = Launch(workspace, request, actor, process, log_path)
        _LAUNCHES.append(started)
        return started


def launches(workspace: Path, campaign: str | None = None) -> list[Launch]:
    """This server's launches for the workspace (and campaign), newest first; finished ones are reaped."""
    with _LOCK:
        return [
            item
            for item in reversed(_LAUNCHES)
            if item.workspace == workspace and (campaign is None or item.request.campaign == campaign)
        ]


def launches_all() -> list[Launch]:
    with _LOCK:
        return list(_LAUNCHES)


def clicks_going(workspace: Path, campaign: str) -> bool:
    """Whether a click of ours (a run of a few cells) has not ended yet: its cells are shown running."""
    return any(item.running and item.request.few_cells for item in launches(workspace, campaign))


def wait_for_clicks(workspace: Path, campaign: str, timeout: float) -> None:
    """Wait up to `timeout` for the clicks of ours on the warm runner still going (runs of a few cells) to end,
    so a poll that would come a moment too early reads their values instead."""
    deadline = time.monotonic() + timeout
    for item in launches(workspace, campaign):
        if isinstance(item.process, WarmProcess) and item.request.few_cells:
            item.process.done.wait(max(0.0, deadline - time.monotonic()))


def forget_all() -> None:
    """Drop every finished launch from the registry (running ones are kept)."""
    with _LOCK:
        _LAUNCHES[:] = [item for item in _LAUNCHES if item.running]


def starting(workspace: Path, campaign: str | None, runs: Sequence[dict[str, Any]]) -> list[Launch]:
    """Launches whose process is alive but has not written its run row yet."""
    known = {int(r["pid"]) for r in runs if r.get("pid") is not None}
    return [
        item
        for item in launches(workspace, campaign)
        if item.running and not item.has_run_row(known) and time.time() - item.started < 120
    ]


def failures(workspace: Path, campaign: str | None = None) -> list[Launch]:
    """Launches that ended with an error nobody has dismissed yet."""
    return [item for item in launches(workspace, campaign) if not item.seen and item.failure()]


def dismiss(item: Launch) -> None:
    item.seen = True


def active_runs(ws: Workspace, campaign: str | None = None) -> list[dict[str, Any]]:
    """Runs still going in the workspace (any process), newest first."""
    return list(ws.active_runs(campaign))


def recent_runs(ws: Workspace, limit: int = 50) -> list[dict[str, Any]]:
    return [dict(r) for r in ws.runs(limit)]


def run_campaign(run: dict[str, Any]) -> str | None:
    """The campaign name a runs row belongs to, when the engine reports it."""
    name = run.get("campaign") or run.get("campaign_name")
    return str(name) if name else None


def same_campaign(run: dict[str, Any], campaign: str | None) -> bool:
    if campaign is None:
        return True
    name = run_campaign(run)
    return name is None or name == campaign


def run_columns(run: dict[str, Any]) -> set[str]:
    request = run.get("request") or {}
    return set(request.get("columns") or []) if isinstance(request, dict) else set()


def find_conflict(workspace: Path, request: RunRequest, ws: Workspace | None = None) -> str | None:
    """Why `request` must not start now (an overlapping run is going), or None."""
    wanted = set(request.columns)
    for item in launches(workspace, request.campaign):
        if item.running and (not wanted or not item.request.columns or wanted & set(item.request.columns)):
            return f"a run of {item.request.describe()} started by {item.actor} is still going"
    if ws is not None:
        for run in active_runs(ws, request.campaign):
            if run.get("trigger") in ("pull", "apply", "new_rows"):
                continue  # short in-process work, not a batch
            columns = run_columns(run)
            if not wanted or not columns or wanted & columns:
                who = run.get("actor") or "someone"
                on = ", ".join(sorted(columns)) or "this campaign"
                return f"run {run.get('run_id')} by {who} is still going on {on}"
    return None


def stop(ws: Workspace, run: dict[str, Any] | None = None, launch_item: Launch | None = None) -> str:
    """Stop a run: ask the engine (the runner cancels in-flight calls and starts nothing new); a run this server
    launched that has no run row yet is terminated instead. Returns what was done."""
    if run is not None:
        if ws.stop_run(int(run["run_id"])):
            return f"stop requested for run {run['run_id']}"
        return f"run {run['run_id']} is no longer running"
    if launch_item is not None and launch_item.running:
        launch_item.process.terminate()
        launch_item.seen = True
        return "run stopped before it began"
    return "nothing to stop"


def progress(run: dict[str, Any]) -> tuple[float, str]:
    """A run's completed fraction and a one-line summary ("12/40 cells · 36 credits · 3 cached")."""
    total = int(run.get("total") or 0)
    done = int(run.get("done") or 0)
    fraction = min(done / total, 1.0) if total else 0.0
    parts = [f"{done}/{total} cells" if total else "planning…"]
    if run.get("credits"):
        parts.append(f"{float(run['credits']):g} credits")
    if run.get("cache_hits"):
        parts.append(f"{run['cache_hits']} cached")
    return fraction, " · ".join(parts)
