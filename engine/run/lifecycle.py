"""One run's lifecycle, and the only writer of the `runs` table: one row per execution request, with who asked,
why, what it did, and (for paid work) live progress.

- open: `run_transaction` (plan, claim and record in the caller's transaction, the first window of a large
  scope: engine/run/windows.py) through `open_run`;
- progress and heartbeat: `add_progress` (the paid phase and write-back report through it);
- stop: `request_stop` (the durable flag), `signal_stop` / `clear_stop` (the stop file the runner watches);
- close: `finish_run` (the cells it still holds go back, its counts and status stored);
- reclaim: `reclaim_dead_runs` / `reclaim_orphans` (a crashed runner's run is interrupted, its cells given back);
- requeue: `put_back`, `release_cells`, `restore_cells` (claimed cells back as they were), `hold_back` (cells
  the budget refused, back to queued with why).

A run that claimed paid cells stays `running` until the runner finishes it; its `pid`, `host` and `heartbeat`
let any later run tell a crashed runner from a live one and give the crashed runner's cells back.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from engine.graph import Request
from engine.run.executor import Executor, restore_status
from engine.run.reports import RunReport
from engine.run.selection import RunSelection
from engine.run.windows import Windows
from engine.runner.backend import Backend
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.cells import Scope
from engine.store.database import scalar
from engine.store.schema import STEP_COLUMNS, literal
from engine.types import ErrorCode

# A run on another machine whose heartbeat is older than this is taken to have crashed.
LEASE_SECONDS = 60
HOST = socket.gethostname()


def stop_file(workspace: Path, run_id: int) -> Path:
    """The file whose presence tells run `run_id` to stop (cheaper to watch than the database)."""
    return workspace / "control" / f"stop-{run_id}"


def run_transaction(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    request: Request,
    scope: Scope,
    *,
    actor: str,
    trigger: str,
    describe: dict[str, Any] | None = None,
    selection: RunSelection | None = None,
    windows: Windows | None = None,
    backend: Backend | None = None,
) -> RunReport:
    """Record a run, execute `request` over `scope` on the open transaction, and store its counts. Paid cells
    it claimed are left in `report.claims`, the run `running`, for `engine.run.paid.complete_run`. The run's
    `request` stores what was asked: the request's kind, columns and force, `selection` when a person chose one
    (RunSelection.from_json reads it back), and `describe`'s details (an edit, an import...). With `windows`
    (of `scope`), only their first window is executed here; the others are left in `report.rest`, the run
    `running`, for complete_run to plan one transaction each. `backend` is the run's (engine/runner/backend.py):
    where row-wise python steps are computed; None: in this process."""
    reclaim_orphans(con, campaign)
    details = {
        "kind": request.kind,
        "columns": sorted(request.columns),
        "force": request.force,
        "scope": "all" if scope.row_ids is None and scope.between is None else "rows",
        **({} if selection is None else {"selection": selection.to_json()}),
        **(describe or {}),
    }
    run_id, started = open_run(con, campaign.campaign_id, details, actor=actor, trigger=trigger)
    executor = Executor(con, campaign, run_id, actor=actor, trigger=trigger, now=started, backend=backend)
    if windows is None:
        report = executor.execute(request, scope)
    else:
        with windows.timed():
            window = windows.next(con, campaign)
            report = executor.execute(request, window) if window is not None else executor.report
        report.rest = windows if windows.left else None
    total = sum(claim.frame.height for claim in report.claims)
    running = bool(total) or report.rest is not None
    con.execute(
        "UPDATE runs SET status = ?, finished_at = CASE WHEN ? THEN NULL ELSE now() END, counts = ?, total = ?, "
        "cache_hits = ?, credits_saved = ? WHERE run_id = ?",
        [
            "running" if running else "done",
            running,
            json.dumps(_counts(report)),
            total,
            report.cache_hits,
            report.credits_saved,
            run_id,
        ],
    )
    report.status = "running" if running else "done"
    return report


def open_run(
    con: duckdb.DuckDBPyConnection, campaign_id: int, details: dict[str, Any], *, actor: str, trigger: str
) -> tuple[int, datetime]:
    """Insert a `running` run of this process and host, its heartbeat now, `details` as its request; returns
    its id and start (the transaction's now()). The id is one more than the last run's, so run ids count up by one
    per workspace (the `ids` sequence is shared with other tables and moves on in transactions that are rolled
    back, a dry run's). One statement: an edit makes few, and each costs a call into DuckDB."""
    found = con.execute(
        "INSERT INTO runs (run_id, campaign_id, actor, trigger, request, status, started_at, heartbeat, pid, host) "
        "SELECT coalesce(max(run_id), 0) + 1, ?, ?, ?, ?, 'running', now(), now(), ?, ? FROM runs "
        "RETURNING run_id, started_at",
        [campaign_id, actor, trigger, json.dumps(details), os.getpid(), HOST],
    ).fetchall()
    run_id, started = found[0]
    return int(run_id), started


def add_progress(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    *,
    total: int = 0,
    done: int = 0,
    credits: float = 0.0,
    tokens: int = 0,
    provider_cost: float = 0.0,
    cache_hits: int = 0,
    credits_saved: float = 0.0,
    beat: bool = False,
) -> None:
    """Add to a run's progress counters (cells planned and done, what they spent and what the cache saved);
    with `beat`, renew its heartbeat too (the runner is alive: reclaim_dead_runs leaves it alone)."""
    con.execute(
        """UPDATE runs SET total = total + ?, done = done + ?, credits = credits + ?, tokens = tokens + ?,
            provider_cost = provider_cost + ?, cache_hits = cache_hits + ?, credits_saved = credits_saved + ?,
            heartbeat = CASE WHEN ? THEN now() ELSE heartbeat END WHERE run_id = ?""",
        [total, done, credits, tokens, provider_cost, cache_hits, credits_saved, beat, run_id],
    )


def request_stop(
    con: duckdb.DuckDBPyConnection, run_ids: Iterable[int] | None = None, campaign_id: int | None = None
) -> list[int]:
    """Ask running runs to stop (those of `run_ids`; with None, every running run, of `campaign_id` when
    given): their `stop_requested` is set, the durable record the runner also reads with each batch it writes.
    Returns the ids of the runs asked, in order; a run not running is left alone. `signal_stop` then tells the
    runners at once."""
    where = ["status = 'running'"]
    params: list[Any] = []
    if run_ids is not None:
        where.append("list_contains(?, run_id)")
        params.append(sorted({int(r) for r in run_ids}))
    if campaign_id is not None:
        where.append("campaign_id = ?")
        params.append(campaign_id)
    found = con.execute(
        f"UPDATE runs SET stop_requested = TRUE WHERE {' AND '.join(where)} RETURNING run_id", params
    ).fetchall()
    return sorted(run_id for (run_id,) in found)


def stop_requested(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    """Whether someone asked run `run_id` to stop (request_stop)."""
    return bool(scalar(con, "SELECT stop_requested FROM runs WHERE run_id = ?", [run_id]))


def signal_stop(workspace: Path, run_ids: Iterable[int]) -> None:
    """Touch the stop file of each run (after request_stop committed): the runner watches for it many times a
    second, sooner than its next batch reads `stop_requested`."""
    for run_id in run_ids:
        path = stop_file(workspace, run_id)
        path.parent.mkdir(exist_ok=True)
        path.touch()


def clear_stop(workspace: Path, run_id: int) -> None:
    """Remove run `run_id`'s stop file (the run is over)."""
    stop_file(workspace, run_id).unlink(missing_ok=True)


def _counts(report: RunReport) -> dict[str, dict[str, int]]:
    return {column: dict(outcomes) for column, outcomes in report.counts().items()}


def finish_run(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    report: RunReport,
    status: str,
    previous: dict[str, pa.Table] | None = None,
) -> None:
    """Close a run: cells it still holds go back (as they were stored before, when `previous` has them; else
    queued, empty or stale), its counts, status and message are stored."""
    release_cells(con, campaign, report.run_id, previous)
    con.execute(
        "UPDATE runs SET status = ?, finished_at = now(), counts = ?, heartbeat = now(), "
        "message = coalesce(?, message) WHERE run_id = ?",
        [status, json.dumps(_counts(report)), report.message, report.run_id],
    )
    report.status = status


def close_run(con: duckdb.DuckDBPyConnection, run_id: int, status: str, message: str | None = None) -> None:
    """Close a run that holds no cells (an action's run on a record whose campaign went away meanwhile)."""
    con.execute(
        "UPDATE runs SET status = ?, finished_at = now(), heartbeat = now(), message = coalesce(?, message) "
        "WHERE run_id = ?",
        [status, message, run_id],
    )


def restore_cells(con: duckdb.DuckDBPyConnection, table: str, previous: pa.Table, run_id: int) -> int:
    """Put back the cells of `previous` (step-table rows as stored before `run_id` claimed them) that the run
    still holds: a call refused or never made changes nothing. Returns how many."""
    names = [n for n in STEP_COLUMNS.split(", ") if n != "row_id"]
    con.register("_previous", previous)
    try:
        return int(
            scalar(
                con,
                f"""UPDATE {table} AS t SET {", ".join(f"{n} = p.{n}" for n in names)} FROM _previous AS p
                    WHERE t.row_id = p.row_id AND t.status = 'running' AND t.run_id = ?""",
                [run_id],
            )
            or 0
        )
    finally:
        con.unregister("_previous")


def put_back(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    column: str,
    previous: pa.Table,
    run_id: int,
    who: tuple[str, str],
    outcome: str,
) -> int:
    """Cells whose call did not run for the run's own reason (`outcome`: `refused` for credits, the balance or a
    cap; `stopped` when Stop cancelled it) and that held an outcome go back as they were (`previous`); that is
    logged in `activity` and counted in the run's progress."""
    kept = restore_cells(con, campaign.tables[column], previous, run_id)
    _log_not_run(con, campaign, column, previous.select(["row_id"]), run_id, who, outcome)
    return kept


def hold_back(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    column: str,
    rows: list[int],
    run_id: int,
    who: tuple[str, str],
    why: tuple[str, str],
) -> None:
    """Cells the budget refused that held nothing go back to queued (empty, for a manual step) rather than end in
    insufficient_credits, carrying `why` (message, hint) in their error_message and error_hint (the background
    intake's budget: engine/intake.py); logged in `activity` as refused and counted in the run's progress."""
    message, hint = why
    con.execute(
        f"""UPDATE {campaign.tables[column]} SET status = {restore_status(campaign.spec.graph.nodes[column].auto)},
            error_code = NULL, error_message = ?, error_hint = ?
            WHERE status = 'running' AND run_id = ? AND list_contains(?, row_id)""",
        [message, hint, run_id, rows],
    )
    _log_not_run(con, campaign, column, pa.table({"row_id": pa.array(rows, pa.int64())}), run_id, who, "refused")


def _log_not_run(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    column: str,
    rows: pa.Table,
    run_id: int,
    who: tuple[str, str],
    outcome: str,
) -> None:
    """One activity row per cell (`rows`: row_id) whose call did not run for the run's own reason (`refused`
    for credits, `stopped`), and their count in the run's progress."""
    code = ErrorCode.INSUFFICIENT_CREDITS if outcome == "refused" else ErrorCode.CANCELLED
    con.register("_put_back", rows)
    try:
        con.execute(
            f"""INSERT INTO activity (run_id, campaign_id, column_name, row_id, cells, action, outcome, logged_at, cost,
                actor, trigger, error_code)
            SELECT ?, ?, ?, row_id, 1, 'run', ?, now(), 0.0, ?, ?, {literal(code.value)} FROM _put_back""",
            [run_id, campaign.campaign_id, column, outcome, *who],
        )
    finally:
        con.unregister("_put_back")
    add_progress(con, run_id, done=rows.num_rows, beat=True)


def release_cells(
    con: duckdb.DuckDBPyConnection,
    campaign: CampaignTables,
    run_id: int,
    previous: dict[str, pa.Table] | None = None,
) -> dict[str, list[int]]:
    """Give back the cells `run_id` claimed and never finished; returns their rows per column. Those `previous`
    holds go back as they were stored before the claim; the others to queued, empty or stale."""
    released: dict[str, list[int]] = {}
    for column in campaign.spec.graph.steps():
        node = campaign.spec.graph.nodes[column]
        if node.free:
            continue
        table = campaign.tables[column]
        back = con.execute(
            f"SELECT row_id FROM {table} WHERE status = 'running' AND run_id = ? ORDER BY row_id", [run_id]
        ).fetchall()
        if not back:
            continue
        if previous is not None and column in previous:
            restore_cells(con, table, previous[column], run_id)
        con.execute(
            f"UPDATE {table} SET status = {restore_status(node.auto)} WHERE status = 'running' AND run_id = ?",
            [run_id],
        )
        released[column] = [row for (row,) in back]
    return released


def reclaim_orphans(con: duckdb.DuckDBPyConnection, campaign: CampaignTables) -> list[int]:
    """Runs of this campaign whose runner is gone are marked interrupted, their claimed cells given back
    (reclaim_dead_runs). Returns their ids."""
    return reclaim_dead_runs(con, campaign)


def reclaim_dead_runs(con: duckdb.DuckDBPyConnection, campaign: CampaignTables | None = None) -> list[int]:
    """Runs (of `campaign`, or of every campaign) whose runner is gone (its process died on this machine, or
    its heartbeat is older than the lease) are marked `interrupted`, with the cells they claimed given back and
    counted as interrupted. Every read of runs or cells calls this first, so what is shown is true now: while
    nothing is running it costs one small query. Returns the ids of the runs it interrupted."""
    where, params = ("campaign_id = ? AND ", [campaign.campaign_id]) if campaign is not None else ("", [])
    candidates = con.execute(
        f"""SELECT run_id, campaign_id, pid, host, epoch(now() - coalesce(heartbeat, started_at)), counts
            FROM runs WHERE {where}status = 'running'""",
        params,
    ).fetchall()
    dead = [(run_id, cid, counts) for run_id, cid, pid, host, age, counts in candidates if _gone(pid, host, age)]
    for run_id, campaign_id, stored in dead:
        tables = campaign if campaign is not None else _campaign_by_id(con, campaign_id)
        counts: dict[str, dict[str, int]] = json.loads(stored) if isinstance(stored, str) else dict(stored or {})
        released = {} if tables is None else release_cells(con, tables, run_id)
        for column, rows in released.items():
            counts.setdefault(column, {})["interrupted"] = len(rows)
        con.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = now(), counts = ?, "
            "message = 'the runner stopped without finishing; its cells were given back' WHERE run_id = ?",
            [json.dumps(counts), run_id],
        )
    return [run_id for run_id, _, _ in dead]


def _campaign_by_id(con: duckdb.DuckDBPyConnection, campaign_id: int) -> CampaignTables | None:
    found = con.execute("SELECT name FROM campaigns WHERE campaign_id = ?", [campaign_id]).fetchall()
    return load_campaign(con, found[0][0]) if found else None


def _gone(pid: int | None, host: str | None, age_seconds: float | None) -> bool:
    """Whether a running run's runner is gone: its heartbeat is older than the lease, or (on this machine) its
    process no longer exists or is a zombie (killed, not yet reaped by its parent)."""
    if age_seconds is not None and age_seconds > LEASE_SECONDS:
        return True
    if host == HOST and pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _zombie(pid)
    return False


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux): the pid check above is all there is
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
