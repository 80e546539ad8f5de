"""Drives a run's paid work to the end: the cells a transaction claimed are computed by the call pool outside
any transaction, their results written in batches; then what they feed is propagated (like an edit), which may
claim more paid cells, until nothing is left. Stop, a crash or a budget cap end it cleanly.

A refusal changes nothing: a call refused for credits (the balance, or a cap) puts its cell back as it was stored
before the claim when it held an outcome (only a cell never computed shows `insufficient_credits`), and so do the
calls Stop kept from starting; such cells count as `refused` in the run's counts, and its message says why.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from engine.cache import ResultCache
from engine.cells import kind_named
from engine.cells.base import PrepareEnv
from engine.graph import Request
from engine.run.executor import ROW_LIST_LIMIT, Executor
from engine.run.lifecycle import (
    add_progress,
    clear_stop,
    finish_run,
    hold_back,
    put_back,
    release_cells,
    stop_file,
    stop_requested,
)
from engine.run.reports import Claim, ExecutionEvent, RunOptions, RunProgress, RunReport
from engine.run.windows import Windows
from engine.run.writeback import write_results
from engine.runner.backend import Backend, PoolSpec, choose_backend
from engine.runner.budget import Budget
from engine.runner.calls import CellResult, PaidCall
from engine.runner.flights import shareable
from engine.runner.policy import RetryPolicy
from engine.runner.pool import shared_outcome
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.cells import Scope
from engine.store.context import read_context
from engine.store.database import Database
from engine.store.settings import Settings, balance, campaign_spent, load_settings
from engine.types import HINTS, ErrorCode, Status

REFUSED = "refused"  # the outcome of a cell whose call the budget refused
STOPPED = "stopped"  # the outcome of a cell whose call Stop cancelled or kept from starting
# Calls that did not run for the run's own reasons: their cells go back as they were, reported by this outcome.
PUT_BACK = {ErrorCode.INSUFFICIENT_CREDITS: REFUSED, ErrorCode.CANCELLED: STOPPED}


def complete_run(
    db: Database,
    cache_dir: Path,
    name: str,
    report: RunReport,
    *,
    actor: str,
    trigger: str,
    options: RunOptions,
    backend: Backend | None = None,
) -> RunReport:
    """Finish `report`'s run: compute its claims and everything they make runnable. Returns the same report,
    its events extended with the paid outcomes and `status` set (done or stopped). `backend` is the one the run
    started with (its caller closes it); None: the one `options` and the settings choose, closed here."""
    stop = options.stop or threading.Event()
    with db.transaction() as con:
        tables = load_campaign(con, name)
        settings = load_settings(con)
        budget = load_budget(con, name, tables.campaign_id, options.max_credits)
        context = {n: d.text for n, d in read_context(con).items()}
    progress = RunProgress(report.run_id, total=sum(c.frame.height for c in report.claims))
    owned = backend is None
    backend = backend or run_backend(options, settings, db.path.parent)
    session = _Session(
        db, tables, report, settings, budget, context, stop, progress, options, (actor, trigger), backend
    )
    cache = ResultCache(cache_dir)
    session.report_progress()  # the total is known before the first answer: a log shows 0 of N at once
    try:
        claims = report.claims
        while True:
            session.settle(claims, cache)
            if stop.is_set() or report.rest is None:
                break
            claims = session.next_window(report.rest)
            if not report.rest.left:
                report.rest = None
        report.message = session.ending()
        with db.transaction() as con:
            finish_run(
                con, load_campaign(con, name), report, "stopped" if stop.is_set() else "done", session.previous()
            )
        clear_stop(db.path.parent, report.run_id)
    except BaseException:
        with db.transaction() as con:
            finish_run(con, load_campaign(con, name), report, "failed", session.previous())
        raise
    finally:
        cache.close()
        if owned:
            backend.close()
    report.claims, report.rest = [], None
    return report


def run_backend(options: RunOptions, settings: Settings, workspace_dir: Path) -> Backend:
    """Where a run driven with `options` makes its calls and computes its row-wise python steps."""
    return choose_backend(
        options.backend, settings.ray_min_cells, options.ray_address, workspace_dir, settings.ray_rowwise_min_rows
    )


def load_budget(
    con: duckdb.DuckDBPyConnection, campaign: str, campaign_id: int, max_credits: float | None = None
) -> Budget:
    """The budget a run of `campaign` starts with: the workspace balance, the run's cap (`max_credits`, else
    the run_cap setting) and what the campaign's cap leaves."""
    settings = load_settings(con)
    cap = settings.campaign_caps.get(campaign)
    return Budget(
        balance=balance(con),
        run_cap=max_credits if max_credits is not None else settings.run_cap,
        campaign_room=None if cap is None else cap - campaign_spent(con, campaign_id),
    )


def run_coroutine(coroutine: object) -> None:
    """Run the pool's coroutine on a fresh event loop, in a thread when the caller already has a loop running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)  # type: ignore[arg-type]
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)  # type: ignore[arg-type]
        except BaseException as err:  # re-raised in the caller's thread
            failure.append(err)

    thread = threading.Thread(target=target, name="runsheet-runner")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def close_transports() -> None:
    """Close the HTTP clients this event loop's calls opened (each loop has its own)."""
    if "engine.llm.direct" in sys.modules:  # imported (with aiohttp) only when a call went direct
        await sys.modules["engine.llm.direct"].close_sessions()
    if "engine.net.client" in sys.modules:  # http and export steps' clients
        await sys.modules["engine.net.client"].close_clients()


class _Session:
    """One run's pool, writer and bookkeeping across its phases."""

    def __init__(
        self,
        db: Database,
        tables: CampaignTables,
        report: RunReport,
        settings: Settings,
        budget: Budget,
        context: dict[str, str],
        stop: threading.Event,
        progress: RunProgress,
        options: RunOptions,
        who: tuple[str, str],
        backend: Backend,
    ) -> None:
        self.db, self.tables, self.report, self.settings = db, tables, report, settings
        self.budget, self.context, self.stop, self.progress, self.options, self.who = (
            budget,
            context,
            stop,
            progress,
            options,
            who,
        )
        self.pending: list[CellResult] = []
        self.backend = backend
        self.closing = False
        self.stop_path = stop_file(db.path.parent, report.run_id)
        self.written_credits = 0.0
        self.outcomes: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.refused = 0
        self.held: set[tuple[str, int]] = set()  # (column, row) of the cells hold_refused sent back to queued
        # per column, the claimed cells as stored before their claim (those that held an outcome), and their rows
        self._previous: dict[str, list[pa.Table]] = defaultdict(list)
        self._previous_rows: dict[str, set[int]] = defaultdict(set)
        # Requests the cache cannot answer again (Run Again's, never cached ones): their outcomes in this run, by
        # request, for the same request in a later window (a pool answers repeats only among its own calls), and
        # which request each cell in flight asked.
        self._answered: dict[str, CellResult] = {}
        self._asking: dict[tuple[str, int], str] = {}

    def settle(self, claims: list[Claim], cache: ResultCache) -> None:
        """Compute `claims`, then what their results feed (planned like an edit of their rows, which may claim
        more paid cells), until nothing is left; the cells are then settled, so what they held before is
        forgotten."""
        while claims:
            self.remember(claims)
            run_coroutine(self.run_claims(claims, cache))
            if self.stop.is_set():  # calls Stop kept from starting: their cells go back before what they feed is judged
                with self.db.transaction() as con:
                    self.give_back(con)
            # What the results feed recomputes like an edit of the cells computed (each row of the columns computed
            # there, and no other); after Stop, only free steps (no new spending).
            claims = [
                claim
                for columns, rows in self.computed(claims)
                for claim in self._plan(Request.edit(columns, run_paid=not self.stop.is_set()), Scope.rows(rows))
            ]
        self._previous.clear()
        self._previous_rows.clear()

    def computed(self, claims: list[Claim]) -> list[tuple[frozenset[str], list[int]]]:
        """The cells `claims` computed that other steps read, as rows grouped by the columns computed in them: a row
        where only `research` was computed is not an edit of `fit` too. A cell held back (hold_refused) is queued
        again and left out: what it feeds would pull it into another refusal."""
        graph = self.tables.spec.graph
        by_row: dict[int, set[str]] = defaultdict(set)
        for claim in claims:
            if not graph.downstream({claim.column}):
                continue  # nothing reads this column
            for row in claim.frame["row_id"].to_list():
                if (claim.column, row) not in self.held:
                    by_row[row].add(claim.column)
        groups: dict[frozenset[str], list[int]] = defaultdict(list)
        for row in sorted(by_row):
            groups[frozenset(by_row[row])].append(row)
        return sorted(groups.items(), key=lambda group: group[1][0])

    def next_window(self, windows: Windows) -> list[Claim]:
        """Plan and claim the next window of the run's scope in a transaction of its own (none after Stop, asked
        here, by the stop file or by `runs.stop_requested`); returns its claims."""
        if not self.stop.is_set() and self.stop_path.exists():
            self.stop.set()
        with windows.window(self.db, self.tables.spec.name) as (con, tables, scope):
            if stop_requested(con, self.report.run_id):
                self.stop.set()
            if self.stop.is_set() or scope is None:
                return []
            part = self._execute(con, tables, windows.request, scope)
        return self._count(part)

    def _plan(self, request: Request, scope: Scope) -> list[Claim]:
        """Execute `request` over `scope` in one transaction; returns its claims."""
        with self.db.transaction() as con:
            part = self._execute(con, load_campaign(con, self.tables.spec.name), request, scope)
        return self._count(part)

    def _execute(
        self, con: duckdb.DuckDBPyConnection, tables: CampaignTables, request: Request, scope: Scope
    ) -> RunReport:
        """Execute `request` over `scope` on the open transaction, from `tables` and the context as stored now (an
        edit of either meanwhile comes before these cells); its events join the run's report, its claims are
        counted in the run's stored total."""
        self.tables = tables
        self.context = {n: d.text for n, d in read_context(con).items()}
        executor = Executor(
            con, self.tables, self.report.run_id, actor=self.who[0], trigger=self.who[1], backend=self.backend
        )
        part = executor.execute(request, scope)
        self.report.absorb(part)
        add_progress(
            con,
            self.report.run_id,
            total=sum(c.frame.height for c in part.claims),
            cache_hits=part.cache_hits,
            credits_saved=part.credits_saved,
            beat=True,  # a window that claims nothing still shows the runner alive
        )
        return part

    def _count(self, part: RunReport) -> list[Claim]:
        """After the transaction: `part`'s claims join the run's progress (shown to the caller); returns them."""
        self.progress.total += sum(c.frame.height for c in part.claims)
        self.report_progress()
        return part.claims

    def remember(self, claims: list[Claim]) -> None:
        """Keep what the claimed cells held, to put it back if their call is refused or never made."""
        for claim in claims:
            if claim.previous is not None:
                self._previous[claim.column].append(claim.previous)
                self._previous_rows[claim.column].update(claim.previous.column("row_id").to_pylist())

    def previous(self) -> dict[str, pa.Table]:
        """Per column, the claimed cells' stored state before the claim (for finish_run to put back)."""
        return {column: pa.concat_tables(tables) for column, tables in self._previous.items()}

    def give_back(self, con: duckdb.DuckDBPyConnection) -> None:
        """Cells this run still holds (Stop kept their calls from starting) go back as they were stored."""
        for column, rows in release_cells(con, self.tables, self.report.run_id, self.previous()).items():
            listed = tuple(rows) if len(rows) <= ROW_LIST_LIMIT else None
            self.report.events.append(ExecutionEvent(column, STOPPED, len(rows), listed, pa.array(rows, pa.int64())))

    def held_why(self) -> tuple[str, str]:
        """What a cell held back by hold_refused says (message, hint): the caller's words when the run's cap is
        what ran out, else the refusal for credits."""
        if self.options.hold_refused is not None and self.budget.binding() == "run_cap":
            return self.options.hold_refused(self.budget.spent + self.budget.reserved)
        return f"{self.budget.tightest()} ran out", HINTS[ErrorCode.INSUFFICIENT_CREDITS]

    def ending(self) -> str | None:
        """The run's message when not every claimed cell ran: the credits refusal, with how to list the cells."""
        if not self.refused:
            return None
        if self.options.hold_refused is not None and self.budget.binding() == "run_cap":
            return self.held_why()[0]
        return (
            f"stopped for credits: {self.refused} cells were not run, {self.budget.tightest()} ran out; add credits "
            '(`runsheet credits add N`) or raise the cap, then run again. The cells: `runsheet query "SELECT '
            f"column_name, row_id FROM activity WHERE run_id = {self.report.run_id} AND outcome = 'refused'\"`"
        )

    def _calls(self, claims: list[Claim]) -> Iterator[PaidCall]:
        json_columns = frozenset(c.name for c in self.tables.spec.columns if c.value_type == "JSON")
        for claim in claims:
            spec = self.tables.spec.column(claim.column)
            env = PrepareEnv(
                claim.column,
                claim.force,
                self.context,
                self.settings.tiers,
                json_columns,
                frozenset(self.settings.allowed_hosts),
                self.tables.spec.record_fields,
                frozenset(self.tables.spec.names),
            )
            for call in kind_named(spec.kind).prepare(spec.options, claim.frame, env):
                repeat = _repeat_key(call)
                answered = None if repeat is None else self._answered.get(repeat)
                if answered is not None:  # asked already in an earlier window of this run: sent once per run
                    self._on_result(shared_outcome(call, answered))
                    continue
                if repeat is not None:
                    self._asking[(call.column, call.row_id)] = repeat
                yield call

    def _on_result(self, result: CellResult) -> None:
        repeat = self._asking.pop((result.column, result.row_id), None)
        if repeat is not None and shareable(result):
            self._answered.setdefault(repeat, result)
        self.pending.append(result)
        outcome = PUT_BACK.get(result.error_code, result.status.value) if result.error_code else result.status.value
        self.refused += outcome == REFUSED
        self.outcomes[(result.column, outcome)].append(result.row_id)
        self.progress.done += 1
        self.progress.errors += outcome == Status.ERROR.value
        self.progress.credits += result.credits
        self.progress.cache_hits += result.cached
        self.report.credits += result.credits
        self.report.tokens += result.tokens
        self.report.cache_hits += result.cached
        self.report.credits_saved += result.saved
        self.report_progress()

    def report_progress(self) -> None:
        """Hand the run's progress to the caller's callback, when there is paid work to show."""
        if self.options.progress is not None and self.progress.total:
            self.options.progress(self.progress)

    async def run_claims(self, claims: list[Claim], cache: ResultCache) -> None:
        spec = PoolSpec(
            concurrency=self.options.concurrency or self.settings.concurrency,
            budget=self.budget,
            on_result=self._on_result,
            stop=self.stop,
            cache=cache,
            rate_limits={m: (v.get("rpm"), v.get("tpm")) for m, v in self.settings.rate_limits.items()},
            policy=RetryPolicy(max_attempts=self.settings.max_attempts),
        )
        pool = self.backend.pool(spec, self.progress.total)
        self.outcomes.clear()
        self.closing = False
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            await pool.run(self._calls(claims))
        finally:
            self.closing = True  # the flusher ends after the write it may be doing; never cancel a write midway
            await flusher
            await self._flush()
            await close_transports()
        for (column, status), rows in self.outcomes.items():
            listed = tuple(sorted(rows)) if len(rows) <= ROW_LIST_LIMIT else None
            self.report.events.append(ExecutionEvent(column, status, len(rows), listed, pa.array(rows, pa.int64())))

    async def _flush_periodically(self) -> None:
        last = time.monotonic()
        while not self.closing:
            await asyncio.sleep(0.05)
            if not self.stop.is_set() and self.stop_path.exists():
                self.stop.set()
            if len(self.pending) >= self.options.flush_every or time.monotonic() - last >= self.options.flush_seconds:
                await self._flush()
                last = time.monotonic()

    async def _flush(self) -> None:
        batch, self.pending = self.pending, []
        kept: dict[tuple[str, str], list[int]] = defaultdict(list)  # refused or cancelled cells that held an outcome
        held: dict[str, list[int]] = defaultdict(list)  # refused cells that held nothing, with hold_refused
        for result in batch:
            if result.error_code in PUT_BACK and result.row_id in self._previous_rows[result.column]:
                kept[(result.column, PUT_BACK[result.error_code])].append(result.row_id)
            elif result.error_code is ErrorCode.INSUFFICIENT_CREDITS and self.options.hold_refused is not None:
                held[result.column].append(result.row_id)
        self.held.update((column, row) for column, rows in held.items() for row in rows)
        if kept or held:
            back = {(column, row) for (column, _), rows in kept.items() for row in rows}
            back |= {(column, row) for column, rows in held.items() for row in rows}
            batch = [r for r in batch if (r.column, r.row_id) not in back]
            await asyncio.to_thread(self._put_back, kept, held)
        written = await asyncio.to_thread(write_results, self.db, self.tables, self.report.run_id, self.who, batch)
        self.written_credits += written.credits
        self.budget.refresh(written.balance, self.written_credits)
        if written.stop_requested:
            self.stop.set()

    def _put_back(self, kept: dict[tuple[str, str], list[int]], held: dict[str, list[int]]) -> None:
        with self.db.transaction() as con:
            for column, rows in held.items():
                hold_back(con, self.tables, column, rows, self.report.run_id, self.who, self.held_why())
            for (column, outcome), rows in kept.items():
                previous = pa.concat_tables(self._previous[column])
                chosen = previous.filter(pc.is_in(previous.column("row_id"), value_set=pa.array(rows, pa.int64())))
                put_back(con, self.tables, column, chosen, self.report.run_id, self.who, outcome)


def _repeat_key(call: PaidCall) -> str | None:
    """The request a call shares its outcome with across the run's windows, when the cache cannot give it back
    (Run Again bypasses the cache; some requests are never cached); None otherwise (the cache answers)."""
    if call.request_key is None or not (call.force or call.cache_key is None):
        return None
    return f"{call.request_key}|again" if call.force else call.request_key
