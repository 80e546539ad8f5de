"""The workspace: a folder holding `runsheet.duckdb` (records, cells, runs, activity) and, later, the result cache."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.action_columns import LibraryStep, follow_action, with_action_column
from engine.actions import ActionLibrary
from engine.auth import authorize, current_user
from engine.builder import ActionBuilder, BuilderModel
from engine.campaign import CACHE_DIR, Campaign
from engine.copilot import Copilot
from engine.errors import EditError, NotFoundError, SpecConflictError
from engine.estimate import Estimate, Tally, call_price
from engine.facade import WorkspaceFacade
from engine.graph import Request
from engine.graph.references import ALL_CONTEXT
from engine.io.exporter import export_query
from engine.run.lifecycle import run_transaction
from engine.run.reports import RunReport
from engine.run.windows import Windows
from engine.spec import CampaignSpec, load_spec, parse_spec
from engine.sql.query import run_query
from engine.sql.sandbox import Limits
from engine.store.actions import read_actions
from engine.store.catalog import CampaignTables, campaign_names, load_campaign
from engine.store.cells import Scope
from engine.store.changes import Prune, SpecChanges, store_spec, stored_source, upgrade_value_types
from engine.store.context import ContextDocument, delete_context, read_context, save_context
from engine.store.database import DB_FILE, Database
from engine.store.pause import pause_state, requeue_disabled, set_paused
from engine.store.runlog import history_counts, purge_history
from engine.store.schema import create_metadata, upgrade_metadata
from engine.store.settings import STARTING_CREDITS, Settings, balance, grant, load_settings, store_setting
from engine.store.spec_history import Origin, check_file_apply, live_source, record_change


@dataclass
class ApplyResult:
    """What applying a spec changed, and the recompute it caused."""

    campaign: str
    changes: SpecChanges
    report: RunReport | None
    estimate: Estimate | None = None  # what re-running the paid auto-run cells it made stale would cost
    paid_report: RunReport | None = None  # that re-run, when it cost no more than the confirm threshold
    paused: list[str] = dataclasses.field(default_factory=list)  # new paid steps, paused until someone resumes them
    paused_estimate: Estimate | None = None  # what running those over every row would cost

    @property
    def needs_confirmation(self) -> bool:
        return self.estimate is not None and self.estimate.calls > 0 and self.paid_report is None


@dataclass
class Resumed:
    """What `Workspace.resume` did: whether anything was paused, and the run it started (claimed, not yet
    computed: `campaign.finish_run(run)` computes it) or None."""

    changed: bool
    campaign: Campaign
    run: RunReport | None


class Workspace(WorkspaceFacade):
    """Owns one workspace folder: opens short transactions on its database and hands out campaigns (what the
    CLI, API and UI ask beyond that, people, tokens, the run log, is in engine/facade.py)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0, actor: str | None = None) -> None:
        self.path = Path(path)
        self.actor = actor or current_user()  # who acts, for the methods that take no `actor` (engine/auth.py)
        if not (self.path / DB_FILE).exists():
            raise NotFoundError(f"no workspace at {self.path}", hint=f"create one with `runsheet init {self.path}`")
        self.db = Database(self.path / DB_FILE, busy_timeout=busy_timeout)
        with self.db.transaction() as con:
            upgrade_metadata(con)
            upgrade_value_types(con)

    @classmethod
    def init(cls, path: str | Path, *, busy_timeout: float = 30.0) -> Workspace:
        """Create the workspace folder and its tables; an existing workspace is kept as it is."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        database = Database(folder / DB_FILE, busy_timeout=busy_timeout)
        with database.transaction() as con:
            fresh = not con.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'credit_ledger'"
            ).fetchall()
            create_metadata(con)
            if fresh:
                grant(con, STARTING_CREDITS, "starting credits")
        return cls(folder, busy_timeout=busy_timeout)

    def release(self) -> None:
        """Give the database file up now. Between transactions this process keeps it open for a moment (a reopen
        costs more than most edits); a program that hands the file to another process at once calls this."""
        self.db.release()

    def campaigns(self) -> list[str]:
        with self.db.transaction() as con:
            return campaign_names(con)

    def campaign_overview(self) -> list[dict[str, object]]:
        """Each campaign by name: `rows` (its record count), `paused` (the whole campaign) and `paused_steps`
        (the steps paused on their own, new paid steps among them)."""
        with self.db.transaction() as con:
            overview: list[dict[str, object]] = []
            for name in campaign_names(con):
                tables = load_campaign(con, name)
                state = pause_state(con, tables.campaign_id)
                [(rows,)] = con.execute(f"SELECT count(*) FROM {tables.rows_table}").fetchall()
                steps = [c for c in tables.spec.names if c in state.columns]
                overview.append({"name": name, "rows": int(rows), "paused": state.campaign, "paused_steps": steps})
            return overview

    def actions(self, *, actor: str | None = None, trigger: str = "api") -> ActionLibrary:
        """The workspace's action library, acted on as `actor` (the workspace's actor by default)."""
        return ActionLibrary(self.db, self.path / CACHE_DIR, actor=actor or self.actor, trigger=trigger)

    def builder(
        self,
        model: str | BuilderModel | None = None,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        tools: bool = True,
        actor: str | None = None,
        trigger: str = "api",
    ) -> ActionBuilder:
        """The action builder chat, as `actor`, writing with `model` (any model the workspace can call; the
        offline one, by default, drafts from the built-in templates). An accepted change of an existing action is
        carried to the campaign columns made from it, as `update_action` does."""
        who = actor or self.actor
        chosen = model if isinstance(model, BuilderModel) else BuilderModel()
        if isinstance(model, str):
            chosen = BuilderModel(model, api_base=api_base, api_key_env=api_key_env, tools=tools)

        def update(name: str, **changes: Any) -> None:
            self.update_action(name, actor=who, **changes)

        return ActionBuilder(self.db, self.path / CACHE_DIR, actor=who, trigger=trigger, model=chosen, update=update)

    def copilot(
        self,
        model: str | BuilderModel | None = None,
        *,
        api_base: str | None = None,
        api_key_env: str | None = None,
        actor: str | None = None,
        trigger: str = "api",
    ) -> Copilot:
        """Copilot's chats, as `actor`: replies from `model` when given, else from the model of the result's ai
        step (when its key is set), else from the offline model, which says so."""
        chosen = model if isinstance(model, BuilderModel) else None
        if isinstance(model, str):
            chosen = BuilderModel(model, api_base=api_base, api_key_env=api_key_env)
        return Copilot(self.db, self.path / CACHE_DIR, actor=actor or self.actor, trigger=trigger, model=chosen)

    def campaign(self, name: str, *, actor: str = "api", trigger: str = "api") -> Campaign:
        """The campaign called `name`; raises NotFoundError if no spec of that name was applied."""
        with self.db.transaction() as con:
            load_campaign(con, name)
        return Campaign(self.db, name, actor=actor, trigger=trigger)

    def apply(
        self,
        spec: CampaignSpec | str | Path,
        *,
        actor: str = "api",
        prune: Prune = False,
        allow_lossy: bool = False,
        dry_run: bool = False,
        origin: Origin = "api",
        force: bool = False,
    ) -> ApplyResult:
        """Create or update a campaign from a spec (a CampaignSpec, a YAML file path, or YAML text).

        The spec is validated as a whole before anything is stored, and applying never loses data
        (engine/store/changes.py): a column the spec leaves out that holds values is kept (an input) or refused
        (a step) unless `prune` (True, or the names to drop) drops it; a retype that would change stored values
        needs `allow_lossy`; `renamed_from` keeps a column's cells, keys and history. `dry_run` works the
        changes out (with what would be refused, in `changes.refusals`) and writes nothing.

        Every change is recorded in the spec history (`spec_history`) with `actor`, `origin` (where it was made:
        "file" for a spec file applied from the command line, "ui", "api") and a diff. A file (`origin="file"`)
        that would undo changes made elsewhere since the campaign's spec was last applied from a file is refused
        with SpecConflictError (its `diff` shows them) unless `force`.

        Changed steps and their downstream become stale; free auto-run steps recompute at once. A new paid step
        (its calls cost credits: engine/estimate.py's `call_price`) starts paused, with the estimate of running
        it in `paused_estimate`; `resume` starts it. Other paid auto-run steps are re-run only if the estimate is
        within the workspace's confirm threshold (rule 4); otherwise they stay stale and `estimate` says what
        confirming (`campaign.run(...)`) would cost.
        """
        if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
            spec = load_spec(spec, self.library_steps())
        elif isinstance(spec, str):
            spec = parse_spec(spec, actions=self.library_steps())
        paid: list[str] = []
        with self.db.transaction(commit=not dry_run) as con:
            authorize(self.db, actor, "apply_spec", con=con, what=spec.name)
            live = live_source(con, spec.name)
            changes = store_spec(con, spec, prune=prune, allow_lossy=allow_lossy, dry_run=dry_run)
            if origin == "file" and not force:
                try:
                    applied = json.loads(stored_source(spec))
                    check_file_apply(con, spec.name, live, applied, list(changes.kept), list(changes.pruned))
                except SpecConflictError as conflict:
                    if not dry_run:
                        raise  # the transaction is rolled back: nothing changed
                    changes.refusals.append(conflict)
            if dry_run:
                return ApplyResult(spec.name, changes, None)
            record_change(con, spec.name, live, actor, origin)
            campaign = load_campaign(con, spec.name)
            graph = campaign.spec.graph
            settings = load_settings(con)
            new_paid = [c for c in changes.new_steps if call_price(campaign.spec.column(c), settings.tiers) > 0]
            for column in new_paid:  # nothing paid starts without consent
                set_paused(con, campaign.campaign_id, column, True, actor)
            report = None
            if changes.changed or changes.added:
                steps = [c for c in changes.changed + changes.added if c in graph.steps()]
                retyped_inputs = [c for c in changes.changed if campaign.spec.column(c).is_input]
                # a retyped input changes the values its downstream steps read
                request = Request.spec_change([*steps, *graph.downstream(retyped_inputs)])
                report = run_transaction(
                    con,
                    campaign,
                    request,
                    Scope.all(),
                    actor=actor,
                    trigger="apply",
                    describe={"apply": spec.name, "changed": changes.changed, "added": changes.added},
                )
                affected = set(request.columns) | graph.downstream(request.columns)
                paused = pause_state(con, campaign.campaign_id)
                paid = [
                    c
                    for c in graph.auto_steps()
                    if c in affected and not graph.nodes[c].free and not paused.stops(c, False)
                ]
        result = ApplyResult(spec.name, changes, report, paused=new_paid)
        if new_paid:
            result.paused_estimate = self._estimate_paused(spec.name, new_paid, actor)
        if report is not None and paid:
            campaign_handle = Campaign(self.db, spec.name, actor=actor, trigger="apply")
            result.estimate = campaign_handle.estimate(paid)
            threshold = settings.confirm_threshold
            if result.estimate.calls and threshold is not None and result.estimate.credits <= threshold:
                result.paid_report = campaign_handle.run(paid)
        return result

    def library_steps(self) -> dict[str, LibraryStep]:
        """The action library as spec columns may name it (`action: NAME`), by lower-cased name."""
        with self.db.transaction() as con:
            return {a.name.lower(): LibraryStep(a.action_id, a.kind, a.options) for a in read_actions(con)}

    def update_action(self, name: str, *, actor: str | None = None, **changes: Any) -> list[ApplyResult]:
        """Change a library action (ActionLibrary.update) and carry a change of its options to the campaign
        columns made from it (`from_action`), by applying each such campaign's spec again: the columns go stale
        and paid re-runs wait for consent over the threshold, as for any spec change (rule 4). What a column set
        itself beside the action stays. Returns the applies made."""
        who = actor or self.actor
        library = self.actions(actor=who)
        before = library.show(name)
        after = library.update(name, **changes)
        if after["options"] == before["options"]:
            return []
        applied = []
        for campaign in self.campaigns():
            with self.db.transaction() as con:
                source = live_source(con, campaign) or {}
            columns = list(source.get("columns", []))
            followed = [
                follow_action(c, before["options"], after["options"])
                if c.get("from_action") == after["action_id"]
                else c
                for c in columns
            ]
            if followed != columns:
                applied.append(self.apply(parse_spec({**source, "columns": followed}), actor=who, origin="api"))
        return applied

    def add_action_column(
        self,
        campaign: str,
        action: str,
        *,
        name: str | None = None,
        after: str | None = None,
        run: str | None = None,
        actor: str | None = None,
    ) -> ApplyResult:
        """Add to `campaign` a column made from library action `action` (named as the action unless `name`),
        by applying its spec with `{name, action}` added: a free step fills at once, a paid one starts paused for
        consent, as for any new column. A column of that name already in the campaign is refused, never replaced."""
        with self.db.transaction() as con:
            load_campaign(con, campaign)  # NotFoundError names the campaigns there are
            source = live_source(con, campaign) or {}
        found = self.actions(actor=actor).show(action)
        column = name or found["name"]
        changed = with_action_column(source, found["name"], column, after=after, run=run)
        return self.apply(parse_spec(changed, actions=self.library_steps()), actor=actor or self.actor, origin="api")

    def _estimate_paused(self, campaign: str, columns: list[str], actor: str) -> Estimate:
        """What running paused `columns` over every row would cost, worked out as if they were resumed (in
        transactions rolled back: nothing is stored), window by window for a large campaign (engine/run/windows.py)."""
        handle = Campaign(self.db, campaign, actor=actor, trigger="estimate")
        request = Request.run(columns)

        def rehearse(con: duckdb.DuckDBPyConnection, tables: CampaignTables, scope: Scope) -> None:
            for column in columns:
                set_paused(con, tables.campaign_id, column, False, actor)
            report = run_transaction(con, tables, request, scope, actor=actor, trigger="estimate")
            tally.add(con, report.claims, report.memo_hits)

        with self.db.transaction(commit=False) as con:
            tables = load_campaign(con, campaign)
            tally = Tally(con, tables)
            windows = Windows.over(con, tables, request, Scope.all())
            if windows is None:
                rehearse(con, tables, Scope.all())
        while windows is not None and windows.left:
            with windows.window(self.db, campaign, commit=False) as (con, tables, window):
                if window is None:
                    break
                rehearse(con, tables, window)
        return tally.estimate(handle.cache_dir)

    def purge_history(self, campaign: str, column: str, *, confirm: bool = False) -> dict[str, int]:
        """Delete the history of a column no longer in `campaign` (its activity rows and export deliveries; runs
        and credit rows stay, they add up the balance): the only way history is deleted. Without `confirm`
        nothing is deleted. Returns how many rows (would) go, per table."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "apply_spec", con=con, what=campaign)
            tables = load_campaign(con, campaign)
            if column in tables.spec.names:
                raise EditError(
                    f"'{column}' is a column of campaign '{campaign}': its history is in use",
                    hint="remove it from the spec (runsheet apply, --prune if it holds data) first",
                )
            if not confirm:
                return history_counts(con, tables.campaign_id, column)
            return purge_history(con, tables.campaign_id, column)

    # ---- global context ----------------------------------------------------------------------------------

    def context(self) -> dict[str, ContextDocument]:
        """The global context documents by name (brand brief, value propositions, ICP, offer, personas...)."""
        with self.db.transaction() as con:
            return read_context(con)

    def set_context(self, name: str, text: str, *, actor: str = "api") -> list[RunReport]:
        """Save a context document. Steps that read it become stale in every campaign (paid ones are not re-run
        here: that costs credits, so a run does it). Returns the reports of those stale-marking runs."""
        return self._context_changed(name, lambda con: save_context(con, name, text, actor) is not None, actor)

    def delete_context(self, name: str, *, actor: str = "api") -> list[RunReport]:
        """Remove a context document; steps that read it become stale."""
        return self._context_changed(name, lambda con: delete_context(con, name, actor), actor)

    def _context_changed(
        self, name: str, change: Callable[[duckdb.DuckDBPyConnection], bool], actor: str
    ) -> list[RunReport]:
        reports = []
        with self.db.transaction() as con:
            authorize(self.db, actor, "edit_context", con=con, what=name)
            if not change(con):
                return []
            for campaign_name in campaign_names(con):
                campaign = load_campaign(con, campaign_name)
                readers = [c.name for c in campaign.spec.columns if name in c.context or ALL_CONTEXT in c.context]
                if readers:
                    reports.append(
                        run_transaction(
                            con,
                            campaign,
                            Request.spec_change(readers),
                            Scope.all(),
                            actor=actor,
                            trigger="context",
                            describe={"context": name},
                        )
                    )
        return reports

    # ---- credits, settings, runs -----------------------------------------------------------------------------

    def credits(self) -> float:
        """The workspace's credit balance."""
        with self.db.transaction() as con:
            return balance(con)

    def add_credits(self, amount: float, *, reason: str = "grant") -> float:
        """Add credits (a negative amount removes them); returns the new balance."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "add_credits", con=con)
            return grant(con, amount, reason)

    def settings(self) -> Settings:
        with self.db.transaction() as con:
            return load_settings(con)

    def set_setting(self, key: str, value: Any) -> Settings:
        """Change one setting (see `Settings`); raises EditError naming the fix for a bad key or value."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "edit_settings", con=con, what=key)
            store_setting(con, key, value)
            return load_settings(con)

    def pause(self, campaign: str, column: str | None = None, *, resume: bool = False) -> bool:
        """Pause a campaign (every paid step) or one step, or `resume` it (without running anything: see
        `resume`); False if it already was so. A paused step's cells keep what they hold when asked to run, empty
        ones show `paused` (engine/store/pause.py)."""
        if resume:
            return self.resume(campaign, column, run=False).changed
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "pause", con=con, what=campaign)
            tables = load_campaign(con, campaign)
            if column is not None and tables.column(column).is_input:
                raise EditError(f"'{column}' is an input column", hint="pause a step column, or the campaign")
            return set_paused(con, tables.campaign_id, column, True, self.actor)

    def resume(self, campaign: str, column: str | None = None, *, run: bool = True, trigger: str = "api") -> Resumed:
        """Resume a paused campaign or step: cells shown `paused` are queued again. With `run`,
        the work accepted while paused (queued auto-run cells, records that came in) starts: a run of the
        campaign's auto-run steps (or of the step, if it is auto-run) is planned and claimed, and `Resumed.run`
        holds its report for `Campaign.finish_run` to compute. Nothing runs if nothing was paused."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "pause", con=con, what=campaign)
            tables = load_campaign(con, campaign)
            if column is not None and tables.column(column).is_input:
                raise EditError(f"'{column}' is an input column", hint="resume a step column, or the campaign")
            changed = set_paused(con, tables.campaign_id, column, False, self.actor)
            requeue_disabled(con, tables, column)
            still = pause_state(con, tables.campaign_id)
        graph = tables.spec.graph
        auto = graph.auto_steps()
        targets = [
            c
            for c in ([column] if column is not None else auto)
            if graph.nodes[c].auto and not still.stops(c, graph.nodes[c].free)
        ]
        handle = Campaign(self.db, campaign, actor=self.actor, trigger=trigger)
        report = None
        if run and changed and targets:
            report = handle.start_run(None if targets == auto else targets)
        return Resumed(changed, handle, report)

    def query(self, sql: str, *, timeout: float = 30.0, memory_limit: str = "1GB") -> pl.DataFrame:
        """Run one read-only SELECT in the SQL sandbox (engine/sql/): each campaign is a wide table named after
        it; `cells`, `runs`, `activity` and `campaigns` are tables too, and the action library's `actions`,
        `action_results` and `documents`, holding what this workspace's actor may see. Changes nothing."""
        limits = Limits(timeout, memory_limit)
        return run_query(self.db.path, sql, limits=limits, busy_timeout=self.db.busy_timeout, reader=self.actor)

    def query_to_file(
        self,
        sql: str,
        path: str | Path,
        *,
        format: str | None = None,
        escape: bool = True,
        timeout: float = 30.0,
        memory_limit: str = "1GB",
    ) -> int:
        """Write the result of a read-only SELECT to a CSV or Parquet file, atomically (CSV formula-escaped
        unless `escape` is False). Returns the number of rows written."""
        return export_query(
            self.db.path,
            sql,
            path,
            format=format or "",
            escape=escape,
            limits=Limits(timeout, memory_limit),
            busy_timeout=self.db.busy_timeout,
            reader=self.actor,
        )
