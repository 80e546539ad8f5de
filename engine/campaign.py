"""A campaign: its records, its cells, and the requests people make of them (add, import, edit, run, Run Again,
estimate, export). Looking at it (a cell, a page, counts, values) is engine/campaign_reads.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.auth import authorize
from engine.campaign_reads import CampaignReads, Cell
from engine.cells import kind_named
from engine.errors import ImportError_
from engine.estimate import Estimate, Tally, compare_with_budget
from engine.graph import Request
from engine.io.exporter import ExportReport, export_campaign
from engine.io.importer import ImportedFile, ImportOptions, Written, import_file
from engine.run.lifecycle import run_transaction
from engine.run.paid import complete_run, load_budget, run_backend
from engine.run.reports import RunOptions, RunReport
from engine.run.selection import (
    RunSelection,
    as_selection,
    check_rows,
    count_errors,
    plan_selection,
    split_errors,
)
from engine.run.windows import Windows
from engine.runner.backend import Backend, LocalBackend
from engine.store.catalog import CampaignTables
from engine.store.cells import Scope
from engine.store.database import scalar
from engine.store.edits import (
    NOTES,
    SavedField,
    cell_text,
    confirm_pin,
    log_edit,
    pin,
    save_text,
    save_to_record,
    write_input,
)
from engine.store.schema import quote
from engine.store.settings import load_settings
from engine.types import Status

CACHE_DIR = "cache"


@dataclass(frozen=True)
class ImportReport(ImportedFile):
    """What an import did to the records (engine/io/importer.py) and the runs it set off: `edit_run` for the
    updated rows' changed inputs (None if none changed), `new_rows_run` for the new rows."""

    edit_run: RunReport | None
    new_rows_run: RunReport

    @property
    def runs(self) -> list[RunReport]:
        return [r for r in (self.edit_run, self.new_rows_run) if r is not None]


class Campaign(CampaignReads):
    """Requests on one campaign: add and import records, edit, run, Run Again, estimate (reads: CampaignReads).
    Each method runs in its own short transaction."""

    # ---- records in -------------------------------------------------------------------------------------

    def add_rows(
        self, records: pl.DataFrame | Sequence[dict[str, Any]], *, run: bool = True
    ) -> tuple[range, RunReport]:
        """Append records (columns named after input columns) and queue their auto-run steps; free ones compute
        now unless `run` is False. Returns the new row ids and the run's report."""
        frame = records if isinstance(records, pl.DataFrame) else pl.DataFrame(list(records))
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "add_records", con=con, what=self.name)
            tables = self._load(con)
            con.register("_incoming", frame.to_arrow())
            try:
                new_ids = _append(con, tables, "_incoming")
            finally:
                con.unregister("_incoming")
            report = self._new_rows(con, tables, new_ids, run)
        return new_ids, report

    def import_file(
        self,
        path: str | Path,
        *,
        key: str | None = None,
        run: bool = True,
        rejects: str | Path | None = None,
        progress: Callable[[str], None] | None = None,
        **options: Any,
    ) -> ImportReport:
        """Import a CSV, Parquet or JSON-lines file in one transaction (engine/io/importer.py). New columns become
        input columns; with `key`, matching records are updated and only changed inputs recompute downstream.
        `options` are the other ImportOptions fields (format, delimiter, quote, escape, encoding, header, types,
        skip, max_line_size, add_columns, unescape)."""
        authorize(self.db, self.actor, "add_records", what=self.name)
        chosen = ImportOptions(key=key, run=run, rejects=Path(rejects) if rejects else None, **options)
        file = Path(path).name
        imported, (edit_run, new_rows_run) = import_file(
            self.db, self.name, path, chosen, lambda con, written: self._imported(con, written, file, run), progress
        )
        return ImportReport(**vars(imported), edit_run=edit_run, new_rows_run=new_rows_run)

    def export(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        with_state: bool = False,
        escape: bool = True,
    ) -> ExportReport:
        """Write the campaign's values (and with `with_state` each step's status, error and credits) to a CSV or
        Parquet file, atomically; `where` is SQL over the wide table, run in the query sandbox."""
        return export_campaign(
            self.db.path,
            self.name,
            path,
            format=format,
            columns=columns,
            where=where,
            with_state=with_state,
            escape=escape,
            busy_timeout=self.db.busy_timeout,
            reader=self.actor,
        )

    def _new_rows(self, con: duckdb.DuckDBPyConnection, tables: CampaignTables, ids: range, run: bool) -> RunReport:
        auto = tables.spec.graph.auto_steps() if run else []
        request = Request.run(auto, statuses={Status.EMPTY}, run_paid=False)
        scope = Scope.range(ids.start, ids.stop - 1) if len(ids) else Scope.rows([])
        # the caller's trigger (webhook, cli, ui...): new rows are logged as the way they came in
        return run_transaction(
            con, tables, request, scope, actor=self.actor, trigger=self.trigger, describe={"new_rows": len(ids)}
        )

    def _imported(
        self, con: duckdb.DuckDBPyConnection, written: Written, file: str, run: bool
    ) -> tuple[RunReport | None, RunReport]:
        """Run what an import's records set off, in its transaction: changed inputs like `set`, new rows like
        `add_rows`. Returns the edit run (None if no input changed) and the new rows' run."""
        edit_run = None
        changes = written.changes
        if written.added:
            self._fields_added(con, written.tables, written.added, {"import": file, "added": list(written.added)})
        if changes is not None and changes.rows:
            edit_run = run_transaction(
                con,
                written.tables,
                Request.edit(changes.columns, run_paid=False),
                Scope.rows(changes.rows),
                actor=self.actor,
                trigger=self.trigger,  # how the records came in (cli, ui, webhook), like the new rows' run
                describe={"import": file, "updated": len(changes.rows)},
            )
        return edit_run, self._new_rows(con, written.tables, written.inserted, run)

    def _fields_added(
        self, con: duckdb.DuckDBPyConnection, tables: CampaignTables, fields: Sequence[str], describe: dict[str, Any]
    ) -> RunReport | None:
        """New input columns are new dependencies of the steps that read the whole record (context injection):
        their keys changed in every row, so they go stale as after a change of their spec (nothing paid runs)."""
        readers = [c.name for c in tables.spec.columns if not c.is_input and set(c.deps) & set(fields)]
        if not readers:
            return None
        return run_transaction(
            con,
            tables,
            Request.spec_change(readers),
            Scope.all(),
            actor=self.actor,
            trigger=self.trigger,
            describe={**describe, "new_fields": list(fields)},
        )

    # ---- edits -------------------------------------------------------------------------------------------

    def set(self, row_id: int, column: str, value: Any, *, run_paid: bool = True) -> RunReport:
        """Edit one cell. An input edit recomputes that row's downstream closure; editing a step cell pins it
        (unconfirmed: exports downstream wait until `confirm`).

        Free auto steps recompute at once; paid auto steps run now (or are queued if `run_paid` is False);
        manual steps whose inputs changed become stale and keep their value.
        """
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "edit_inputs", con=con, what=column)
            tables = self._load(con)
            check_rows(con, tables, [row_id])
            old = cell_text(con, tables, row_id, column)
            typed: str | None = None  # an input's new value as text (a run never writes an input cell)
            if tables.column(column).is_input:
                typed = write_input(con, tables, row_id, column, value)
            else:
                pin(con, tables, row_id, column, value)
            report = self._edited(con, tables, column, row_id, run_paid, {"edit": column, "row": row_id})
            new = typed if tables.column(column).is_input else cell_text(con, tables, row_id, column)
            who = (self.actor, self.trigger)
            log_edit(con, tables, report.run_id, "edit", column, row_id, who, old != new, (old, new))
        return self._drive(report, RunOptions())

    def save_to_record(self, row_id: int, column: str, field: str = NOTES, *, run_paid: bool = True) -> RunReport:
        """Save to Record: copy the current value of a step cell (done, or edited by hand) into a field of the
        record, so later steps use it as context. Into `notes` (the default) it appends a line
        `<column>: <value>`; into any other name it sets that input field. A missing field is created as an
        input column; a step column is refused. It is an input edit: the row's downstream reacts as for `set`."""
        return self._save(
            row_id,
            field,
            column,
            run_paid,
            lambda con, tables: save_to_record(con, tables, row_id, column, field, self.actor),
        )

    def save_text(
        self,
        row_id: int,
        label: str,
        text: str,
        field: str = NOTES,
        *,
        action_id: int | None = None,
        run_paid: bool = True,
    ) -> RunReport:
        """Save to Record for a result that is no cell (an action's, from the record page): `text` goes into
        `field` as `save_to_record` puts a cell's value; the activity row carries `action_id`, which marks the
        timeline entry as AI generated by that action."""
        return self._save(
            row_id,
            field,
            label,
            run_paid,
            lambda con, tables: save_text(con, tables, row_id, label, text, field, actor=self.actor),
            action_id,
        )

    def _save(
        self,
        row_id: int,
        field: str,
        source: str,
        run_paid: bool,
        write: Callable[[duckdb.DuckDBPyConnection, CampaignTables], tuple[CampaignTables, SavedField]],
        action_id: int | None = None,
    ) -> RunReport:
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "edit_inputs", con=con, what=field)
            tables = self._load(con)
            check_rows(con, tables, [row_id])
            old = cell_text(con, tables, row_id, field) if field in tables.spec.names else None
            tables, saved = write(con, tables)
            describe = {"save_to_record": source, "field": saved.field, "row": row_id}
            if saved.created:
                self._fields_added(con, tables, [saved.field], describe)
            report = self._edited(con, tables, saved.field if saved.changed else None, row_id, run_paid, describe)
            who = (self.actor, self.trigger)
            values = (old, cell_text(con, tables, row_id, saved.field))
            log_edit(
                con, tables, report.run_id, "save_to_record", saved.field, row_id, who, saved.changed, values, action_id
            )
        return self._drive(report, RunOptions())

    def confirm(self, row_id: int, column: str, *, run_paid: bool = True) -> RunReport:
        """Confirm a step cell edited by hand: it stays pinned (recompute never overwrites it, Run Again unpins
        it) and exports downstream, which wait on unconfirmed edits, may now send it. Editing it again makes
        it unconfirmed."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "edit_inputs", con=con, what=column)
            tables = self._load(con)
            check_rows(con, tables, [row_id])
            changed = confirm_pin(con, tables, row_id, column)
            describe = {"confirm": column, "row": row_id}
            report = self._edited(con, tables, column if changed else None, row_id, run_paid, describe)
            log_edit(con, tables, report.run_id, "confirm", column, row_id, (self.actor, self.trigger), changed)
        return self._drive(report, RunOptions())

    def _edited(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: CampaignTables,
        column: str | None,
        row_id: int,
        run_paid: bool,
        describe: dict[str, Any],
    ) -> RunReport:
        """The run an edit of (`row_id`, `column`) causes: that row's downstream reacts (rule 3)."""
        request = Request.edit([] if column is None else [column], run_paid=run_paid)
        return run_transaction(
            con, tables, request, Scope.rows([row_id]), actor=self.actor, trigger=self.trigger, describe=describe
        )

    # ---- runs --------------------------------------------------------------------------------------------

    def run(
        self,
        columns: RunSelection | Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
        *,
        only_stale: bool = False,
        only_empty: bool = False,
        force: bool = False,
        limit: int | None = None,
        options: RunOptions | None = None,
    ) -> RunReport:
        """Compute cells, paid ones included; returns when the run is over (done, stopped or out of credits).

        What to compute is a RunSelection, given as one or as its loose arguments. Without `columns`, every
        auto-run step; with them, those columns (manual ones too). Cells run when empty, stale, queued or waiting
        (only stale and queued ones with `only_stale`); auto ancestors without a fresh value are computed first;
        `only_empty` keeps the cells never computed. `force` is Run Again: recompute whatever the status,
        bypassing the cache, then propagate downstream; pinned cells are unpinned only when both `columns` and
        `rows` are given (Run Again on chosen cells). `limit` keeps the first N rows of the selection. `options`
        sets a credit cap, the concurrency, a progress callback and a stop event.
        """
        selection = as_selection(columns, rows, only_stale=only_stale, only_empty=only_empty, force=force, limit=limit)
        options = options or RunOptions()
        report, backend = self._start(selection, options)
        try:
            return self._drive(report, options, backend)
        finally:
            backend.close()

    def start_run(
        self,
        columns: RunSelection | Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
        *,
        only_stale: bool = False,
        only_empty: bool = False,
        force: bool = False,
        limit: int | None = None,
    ) -> RunReport:
        """The first half of `run` (same arguments): plan and claim in one transaction, the first window of a
        large selection (engine/run/windows.py). The report carries the run id, the paid cells claimed and the
        windows left; `finish_run` computes them (e.g. in the background, for the API)."""
        selection = as_selection(columns, rows, only_stale=only_stale, only_empty=only_empty, force=force, limit=limit)
        return self._start(selection, None)[0]

    def _start(self, selection: RunSelection, options: RunOptions | None) -> tuple[RunReport, Backend]:
        """`start_run`, with the run's backend (chosen by `options` and the settings; None: this process), which
        computes the first window's row-wise python steps and which the caller closes."""
        backend: Backend | None = None
        try:
            backend = self._asked_backend(options)
            with self.db.transaction() as con:
                authorize(self.db, self.actor, "run", con=con, what=self.name)
                tables = self._load(con)
                request, scope = plan_selection(con, tables, selection)
                settings = load_settings(con)
                if backend is None:
                    backend = LocalBackend() if options is None else run_backend(options, settings, self.db.path.parent)
                windows = Windows.over(
                    con,
                    tables,
                    request,
                    scope,
                    rows=settings.claim_window_rows,
                    seconds=settings.claim_window_seconds,
                )
                report = run_transaction(
                    con,
                    tables,
                    request,
                    scope,
                    actor=self.actor,
                    trigger=self.trigger,
                    selection=selection,
                    windows=windows,
                    backend=backend,
                )
        except BaseException:
            if backend is not None:
                backend.close()
            raise
        return report, backend

    def _asked_backend(self, options: RunOptions | None) -> Backend | None:
        """A run asked to go to Ray gets its backend before its first transaction, connected there when the campaign
        has a row-wise step (starting a cluster takes seconds the workspace would be held for); None otherwise (the
        settings choose it inside the transaction)."""
        if options is None or options.backend != "ray":
            return None
        with self.db.transaction(commit=False) as con:
            settings, spec = load_settings(con), self._load(con).spec
        backend = run_backend(options, settings, self.db.path.parent)
        if any(kind_named(c.kind).rowwise(c.options) for c in spec.columns if not c.is_input):
            try:
                backend.connect()
            except BaseException:
                backend.close()
                raise
        return backend

    def finish_run(self, report: RunReport, options: RunOptions | None = None) -> RunReport:
        """The second half of `run`: compute the paid cells `report` claimed, then what they feed."""
        return self._drive(report, options or RunOptions())

    def estimate(
        self,
        columns: RunSelection | Iterable[str] | None = None,
        rows: Iterable[int] | None = None,
        *,
        only_stale: bool = False,
        only_empty: bool = False,
        force: bool = False,
        limit: int | None = None,
        max_credits: float | None = None,
    ) -> Estimate:
        """What `run` with the same arguments would call and spend (a dry run: nothing is stored): calls, cache
        hits, credits and tokens per column, downstream auto-run columns included; and, against the balance and
        the caps (`max_credits` as the run's), how many calls those cover and where the run would stop."""
        selection = as_selection(columns, rows, only_stale=only_stale, only_empty=only_empty, force=force, limit=limit)
        failed: Counter[str] = Counter()  # cells in error in the scope, by code, before the run
        with self.db.transaction(commit=False) as con:
            tables = self._load(con)
            request, scope = plan_selection(con, tables, selection)
            budget = load_budget(con, self.name, tables.campaign_id, max_credits)
            tally = Tally(con, tables)
            windows = Windows.over(con, tables, request, scope)
            if windows is None:  # planned as it is, like the run
                failed.update(count_errors(con, tables, request.columns, scope))
                self._rehearse(con, tables, request, scope, tally, selection)
        # A large selection is planned window by window, as the run plans it, each window in a transaction of its
        # own (rolled back), so that other processes get the workspace between them (engine/run/windows.py).
        while windows is not None and windows.left:
            with windows.window(self.db, self.name, commit=False) as (con, tables, window):
                if window is None:
                    break
                failed.update(count_errors(con, tables, request.columns, window))
                self._rehearse(con, tables, request, window, tally, selection)
        estimate = tally.estimate(self.cache_dir)
        estimate.retries, estimate.errors = split_errors(dict(failed.most_common()), request)
        estimate.budget = compare_with_budget(estimate, tally.claimed_rows(), budget.room(), budget.tightest())
        return estimate

    def _rehearse(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: CampaignTables,
        request: Request,
        scope: Scope,
        tally: Tally,
        selection: RunSelection,
    ) -> None:
        """Run `request` over `scope` on a transaction that is rolled back after, adding what it would compute to
        `tally`."""
        report = run_transaction(con, tables, request, scope, actor=self.actor, trigger="estimate", selection=selection)
        tally.add(con, report.claims, report.memo_hits)

    def errors(self, selection: RunSelection | None = None) -> dict[str, int]:
        """How many cells are in error in `selection`'s columns and rows (default: every auto-run step, every
        row), by error code, most first: what a face reports instead of "up to date" (retry them with a
        selection with `errors`)."""
        with self.db.transaction(commit=False) as con:
            tables = self._load(con)
            request, scope = plan_selection(con, tables, (selection or RunSelection()).plain)
            return count_errors(con, tables, request.columns, scope)

    @property
    def cache_dir(self) -> Path:
        return self.db.path.parent / CACHE_DIR

    def _drive(self, report: RunReport, options: RunOptions, backend: Backend | None = None) -> RunReport:
        """Compute the paid cells a committed request claimed (outside any transaction), then what they feed,
        window after window, on `backend` (None: the one `options` and the settings choose)."""
        if not report.unfinished:
            return report
        return complete_run(
            self.db,
            self.cache_dir,
            self.name,
            report,
            actor=self.actor,
            trigger=self.trigger,
            options=options,
            backend=backend,
        )

    # ---- looking -----------------------------------------------------------------------------------------

    def cell(self, row_id: int, column: str, *, compute: bool = False) -> Cell:
        """One cell. With `compute`, a lazy pull: an auto cell that is empty, stale or queued is computed first,
        with its auto ancestors; a manual cell is never run by looking at it."""
        if compute:
            with self.db.transaction() as con:
                tables = self._load(con)
                spec = tables.column(column)
                check_rows(con, tables, [row_id])
                report = None
                if not spec.is_input:
                    targets = [column] if spec.run == "auto" else []
                    report = run_transaction(
                        con,
                        tables,
                        Request.run(targets, run_paid=True),
                        Scope.rows([row_id]),
                        actor=self.actor,
                        trigger="pull",
                    )
            if report is not None:
                self._drive(report, RunOptions())
        return self.page(rows=[row_id], columns=[column]).rows[0][column]


def _append(con: duckdb.DuckDBPyConnection, tables: CampaignTables, source: str) -> range:
    incoming = [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description]
    inputs = [c.name for c in tables.spec.columns if c.is_input]
    unknown = [c for c in incoming if c not in inputs]
    if unknown:
        raise ImportError_(
            f"column(s) {', '.join(unknown)} are not input columns of campaign '{tables.spec.name}'",
            hint="add them to the spec as `kind: input`, or remove them from the data",
        )
    start = int(scalar(con, "SELECT next_row_id FROM campaigns WHERE campaign_id = ?", [tables.campaign_id]))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _numbered AS "
        f"SELECT {start - 1} + row_number() OVER () AS row_id, * FROM {source}"
    )
    count = int(scalar(con, "SELECT count(*) FROM _numbered"))
    con.execute(f"INSERT INTO {tables.rows_table} SELECT row_id, now() FROM _numbered")
    for name in incoming:
        column = tables.spec.column(name)
        try:
            con.execute(
                f"INSERT INTO {tables.tables[name]} SELECT row_id, {quote(name)}::{column.value_type} FROM _numbered"
            )
        except duckdb.Error as err:
            raise ImportError_(
                f"column '{name}' has values that are not {column.value_type}: {_first_line(err)}",
                hint=f"fix the values, or declare '{name}' with a wider type",
            ) from err
    con.execute("UPDATE campaigns SET next_row_id = ? WHERE campaign_id = ?", [start + count, tables.campaign_id])
    return range(start, start + count)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]
