"""Records that enrich themselves: what records posted to the HTTP API set off in the background.

The records' free steps compute as they are stored; their paid auto-run steps (ai, http, export...) are queued.
`Intake` then runs those steps over the rows that came in, without a schedule, so form fill -> enrich -> push
works on its own: for each campaign one worker thread at a time, each batch a run of its own (trigger `intake`,
the poster as actor: in `runs` and `runsheet log`, stoppable, logged in `activity`, billed once like any run,
and given back by `reclaim` if the server dies). Rows that arrive while a batch runs join the next batch.

Each batch may spend what is left of the campaign's intake budget today (the `intake_budget` setting, or the
campaign's entry in `intake_budgets`: credits per calendar day of the server, spent by `intake` runs; 0 turns
this off, null means no limit). Past it, calls are refused before they are made and their cells stay `queued`,
saying "intake budget reached: N credits of M today" and how to go on (what costs nothing, a cache hit, still
runs); the API's reply says so too when the budget is already spent. Only the steps that may run now are run:
not paused (the step or the campaign), enabled, auto-run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import RunsheetError
from engine.run.reports import RunOptions
from engine.run.selection import RunSelection
from engine.store.catalog import load_campaign
from engine.store.pause import pause_state
from engine.store.settings import intake_spent_today, load_settings
from engine.workspace import Workspace

log = logging.getLogger(__name__)
TRIGGER = "intake"
IDLE = ("paused", "none", "off")  # what runs nothing: the records' cells stay queued


@dataclass(frozen=True)
class IntakePlan:
    """What records posted to a campaign set off now: the steps a batch runs, the intake budget (credits a day,
    None for no limit) and what intake runs spent of it today."""

    campaign: str
    steps: tuple[str, ...]
    budget: float | None
    spent: float
    paused: bool

    @property
    def room(self) -> float | None:
        """Credits a batch may spend now (None: no limit)."""
        return None if self.budget is None else max(0.0, self.budget - self.spent)

    @property
    def enrichment(self) -> str:
        """`background` (a batch will run), `budget_reached` (it will run only what costs nothing), `off` (the
        budget is 0: records only queue), `paused` (the campaign is paused: nothing runs until resumed) or `none`
        (no paid auto-run step may run)."""
        if self.paused:
            return "paused"
        if not self.steps:
            return "none"
        if self.budget == 0:
            return "off"
        return "budget_reached" if self.room is not None and self.room <= 0 else "background"

    def why(self, spent: float) -> tuple[str, str]:
        """What a cell held back by the budget says (message, hint), `spent` credits into today's budget."""
        return (
            f"intake budget reached: {spent:g} credits of {self.budget or 0:g} today",
            f"run `runsheet run -c {self.campaign}` or raise the budget "
            f"(`runsheet settings intake_budgets '{{\"{self.campaign}\": N}}'`)",
        )

    @property
    def message(self) -> str | None:
        """The reply's note when the budget is already spent."""
        if self.enrichment != "budget_reached":
            return None
        message, hint = self.why(self.spent)
        return f"{message}; {hint}"


def intake_plan(ws: Workspace, campaign: str) -> IntakePlan:
    """The campaign's intake plan, read in one transaction (NotFoundError for an unknown campaign)."""
    with ws.db.transaction() as con:
        tables = load_campaign(con, campaign)
        paused = pause_state(con, tables.campaign_id)
        settings = load_settings(con)
        spent = intake_spent_today(con, tables.campaign_id)
    graph = tables.spec.graph
    steps = tuple(
        c
        for c in graph.auto_steps()
        if not graph.nodes[c].free and tables.spec.column(c).enabled and not paused.stops(c, False)
    )
    return IntakePlan(campaign, steps, settings.intake_budget_of(campaign), spent, paused.campaign)


class Intake:
    """The background enrichment of one server: per campaign a queue of rows (by who posted them) and at most one
    worker thread, which runs batches until the queue is empty. `close` stops it with the server."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Condition()
        self._pending: dict[str, dict[str, set[int]]] = {}  # campaign -> actor -> rows
        self._workers: dict[str, threading.Thread] = {}
        self._stop = threading.Event()

    def submit(self, campaign: str, actor: str, rows: Iterable[int]) -> IntakePlan:
        """Queue `rows` of `campaign`, posted by `actor`, for the campaign's worker (started if idle); returns the
        plan as it stands, for the reply. Nothing is queued while the campaign is paused (resuming runs its
        queued cells) or has no paid auto-run step that may run."""
        plan = intake_plan(self.ws, campaign)
        chosen = set(rows)
        if plan.enrichment in IDLE or not chosen:
            return plan
        with self._lock:
            if self._stop.is_set():
                return plan
            self._pending.setdefault(campaign, {}).setdefault(actor, set()).update(chosen)
            if campaign not in self._workers:
                worker = threading.Thread(target=self._work, args=(campaign,), name=f"intake-{campaign}", daemon=True)
                self._workers[campaign] = worker
                worker.start()
        return plan

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every worker is idle (their queues empty, their runs over); False if `timeout` passed
        first. Tests use it to see a batch through."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._workers, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """With the server: no new batch starts, a batch running is stopped (calls in flight cancelled, its cells
        given back), and the workers are waited for. Rows still queued stay queued in the campaign."""
        with self._lock:
            self._stop.set()
            self._pending.clear()
        self.wait(timeout)

    def _work(self, campaign: str) -> None:
        while True:
            with self._lock:
                queue = self._pending.get(campaign)
                if self._stop.is_set() or not queue:
                    self._pending.pop(campaign, None)
                    del self._workers[campaign]
                    self._lock.notify_all()
                    return
                actor = next(iter(queue))
                rows = queue.pop(actor)
            try:
                self._enrich(campaign, actor, sorted(rows))
            except RunsheetError as error:  # e.g. the poster may not run, or the campaign is gone: logged, go on
                log.warning("intake of %d row(s) of %s could not run: %s", len(rows), campaign, error)
            except Exception:  # a failing batch must not end the campaign's intake
                log.exception("intake of %d row(s) of %s failed", len(rows), campaign)

    def _enrich(self, campaign: str, actor: str, rows: list[int]) -> None:
        """One batch: a run of the campaign's active paid auto-run steps over `rows`, capped at the budget left."""
        plan = intake_plan(self.ws, campaign)
        if plan.enrichment in IDLE:
            return  # paused or turned off meanwhile: the cells stay queued
        handle = self.ws.handle(campaign, actor=actor, trigger=TRIGGER)
        report = handle.start_run(RunSelection.of(list(plan.steps), rows))
        options = RunOptions(
            max_credits=plan.room, stop=self._stop, hold_refused=lambda spent: plan.why(plan.spent + spent)
        )
        handle.finish_run(report, options)
