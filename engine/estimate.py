"""Estimates: what a run would call and spend, worked out from the cells it would claim, before spending.

A dry run runs the run's transactions, rolled back (one, or one per window of a large scope, as the run takes
them: engine/run/windows.py), and a Tally gathers what each claimed while it is open. Claimed cells are prepared
exactly as the runner would (rendered prompts, cache keys, prices), so cache hits are real lookups, and a request
repeated by other cells of the run is counted once, its repeats as hits (the runner sends identical requests
once: engine/runner/flights.py). Paid columns downstream of them run too once the claimed cells land (auto-run
ones, and asked-for ones waiting on them): counted per row where the run's transaction left the cell waiting on
a claimed column (not where run_if already skipped it), without cache hits (their prompts depend on answers not
yet known).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from engine.cache import ResultCache
from engine.cells import KINDS, kind_named
from engine.cells.base import PrepareEnv
from engine.graph.fate import sql_in
from engine.graph.references import sql_references
from engine.run.reports import Claim
from engine.spec import ColumnSpec
from engine.store.catalog import CampaignTables
from engine.store.context import read_context
from engine.store.schema import quote
from engine.store.settings import load_settings
from engine.types import Status

SAMPLE_ROWS = 20_000  # above this many claimed cells a column's hits and tokens are extrapolated from a sample


def call_price(column: ColumnSpec, tiers: dict[str, float]) -> float:
    """Credits one call of a step costs: an ai step its tier's price (the offline model is free), the other
    paid kinds their `credits`, free kinds and inputs nothing. The one price rule, for estimates and for the
    consent a new paid step waits for (it starts paused when this is above 0)."""
    if column.is_input or KINDS[column.kind].free:
        return 0.0
    return kind_named(column.kind).price(column.options, tiers)


@dataclass
class ColumnEstimate:
    column: str
    calls: int = 0  # cells to compute
    cache_hits: int = 0
    credits: float = 0.0
    tokens: int = 0
    downstream: bool = False  # not asked for: would run because a column it reads changes
    exact: bool = True


@dataclass
class Estimate:
    """The whole run: per column, and totals. Provider calls are `calls - cache_hits`."""

    columns: list[ColumnEstimate] = field(default_factory=list)
    budget: BudgetCheck | None = None  # the estimate against the balance and caps (compare_with_budget)
    # Cells in error in the run's scope, by code: those it would compute again (a retry of failed cells, or ones
    # that failed for a passing reason: rate limits, timeouts...) and those it would leave in error.
    retries: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(c.calls for c in self.columns)

    @property
    def cache_hits(self) -> int:
        return sum(c.cache_hits for c in self.columns)

    @property
    def credits(self) -> float:
        return sum(c.credits for c in self.columns)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.columns)

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "credits": self.credits,
            "tokens": self.tokens,
            "columns": [vars(c) for c in self.columns],
            "budget": None if self.budget is None else vars(self.budget),
            "retries": dict(self.retries),
            "errors": dict(self.errors),
        }


@dataclass
class BudgetCheck:
    """What the run may spend against what it would: `room` credits under `limit` (the tightest of the balance
    and the caps) cover `covered` of the `calls` provider calls; when not all, the run would stop for credits
    at about `stop_row` of `stop_column` (None when that row cannot be told: a downstream column)."""

    room: float
    limit: str
    calls: int
    covered: int
    stop_column: str | None = None
    stop_row: int | None = None

    @property
    def enough(self) -> bool:
        return self.covered >= self.calls

    def describe(self) -> str:
        if self.enough:
            return f"{self.limit} covers all {self.calls} paid calls"
        where = f" of {self.stop_column}" if self.stop_column else ""
        at = f"at about row {self.stop_row}{where}" if self.stop_row is not None else f"in {self.stop_column}"
        return (
            f"{self.limit} covers {self.covered} of {self.calls} paid calls: the run would stop for credits {at}; "
            "add credits (`runsheet credits add N`) or raise the cap, or run fewer rows (--rows, --limit)"
        )


@dataclass
class _Claimed:
    """One column's claimed cells over a dry run's transactions: their row ids (per transaction, in row order),
    whether under Run Again, and a sample of the cells (row_id, key and inputs) to prepare."""

    force: bool
    rows: list[pl.Series] = field(default_factory=list)
    sample: pl.DataFrame | None = None

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows)


class Tally:
    """What a dry run would compute, gathered from each of its transactions while it is open (one, or one per
    window of a large scope: engine/run/windows.py), then priced once all are in (`estimate`), outside them.

    The answer does not depend on the windows: per claimed column it keeps every claimed cell up to SAMPLE_ROWS
    (exact), above that the SAMPLE_ROWS cells whose row ids hash lowest (the same cells however the rows were
    cut); per paid column downstream, the rows its cells may be computed in, with what decides that only once
    every window is in (which columns were claimed anywhere, and so may change)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: CampaignTables) -> None:
        self.tables = tables
        self.tiers = load_settings(con).tiers
        self.context = {n: d.text for n, d in read_context(con).items()}
        self.claimed: dict[str, _Claimed] = {}
        self.memo_hits: Counter[str] = Counter()
        # Per downstream column: its cells waiting, by the column they wait on; its auto-run cells holding an
        # answer (run again if their inputs change); of those, the ones whose run_if holds now.
        self.waiting: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self.answered: dict[str, set[int]] = defaultdict(set)
        self.run_if_holds: dict[str, set[int]] = defaultdict(set)

    def add(self, con: duckdb.DuckDBPyConnection, claims: list[Claim], memo_hits: dict[str, int]) -> None:
        """Gather one transaction's run, before it is rolled back: the cells it claimed (`claims`), those the memo
        answers (`memo_hits`, per column) and the cells downstream that its run left to compute."""
        claimed_rows: dict[str, set[int]] = {}
        for claim in claims:
            found = self.claimed.setdefault(claim.column, _Claimed(claim.force))
            found.rows.append(claim.frame["row_id"])
            sample = (
                claim.frame if found.sample is None else pl.concat([found.sample, claim.frame], how="vertical_relaxed")
            )
            if sample.height > SAMPLE_ROWS:
                sample = sample.sort(pl.col("row_id").hash(seed=0)).head(SAMPLE_ROWS).sort("row_id")
            found.sample = sample
            claimed_rows[claim.column] = set(claim.frame["row_id"].to_list())
        self.memo_hits.update(memo_hits)
        graph = self.tables.spec.graph
        for column in graph.sorted(graph.downstream(claimed_rows)):
            if graph.nodes[column].free or column in claimed_rows:
                continue
            rows: set[int] = set()
            for upstream in graph.upstream([column]):
                rows |= claimed_rows.get(upstream, set())
            if rows:
                self._look_downstream(con, column, sorted(rows), set(claimed_rows) | graph.downstream(claimed_rows))

    def _look_downstream(self, con: duckdb.DuckDBPyConnection, column: str, rows: list[int], moving: set[str]) -> None:
        """Of `rows`, note the `column` cells the run may compute once the claimed cells land (engine/run/paid.py
        computes them as after an edit). The run's transaction (rolled back after) leaves waiting on a claimed
        column every cell it will compute: auto-run or asked for, and none that run_if already skipped
        (verdicts.decide). An auto-run cell holding an answer runs again if its inputs come back changed (Run
        Again): counted unless its run_if, reading no column this run changes, is false now. `moving` are the
        columns this transaction's run may change."""
        table = self.tables.tables[column]
        within = f"row_id BETWEEN {rows[0]} AND {rows[-1]} AND row_id IN (SELECT unnest($rows))"
        found = con.execute(
            f"SELECT row_id, waiting_on FROM {table} WHERE status = $waiting AND waiting_on IS NOT NULL AND {within}",
            {"waiting": Status.WAITING.value, "rows": rows},
        ).fetchall()
        for row, on in found:
            self.waiting[column][on].add(row)
        spec = self.tables.spec.column(column)
        if spec.is_input or spec.options.run != "auto":  # type: ignore[union-attr]
            return
        answered = sql_in("status", frozenset({Status.DONE, Status.NOT_FOUND, Status.SKIPPED}))
        found = con.execute(f"SELECT row_id FROM {table} WHERE {answered} AND {within}", {"rows": rows}).fetchall()
        again = {row for (row,) in found}
        self.answered[column] |= again
        run_if = spec.options.run_if  # type: ignore[union-attr]
        reads = sorted(sql_references(run_if) & set(self.tables.tables)) if run_if else []
        if not again or not run_if or moving.intersection(reads):
            return  # no run_if to decide now (where a window's run may change what it reads, no window decides it)
        joins = " ".join(
            f"LEFT JOIN (SELECT row_id, value AS {quote(dep)} FROM {self.tables.tables[dep]} "
            f"WHERE row_id BETWEEN {rows[0]} AND {rows[-1]}) d{i} USING (row_id)"
            for i, dep in enumerate(reads)
        )
        found = con.execute(
            f"SELECT row_id FROM {self.tables.rows_table} r {joins} WHERE r.{within} "
            f"AND coalesce(({run_if})::BOOLEAN, FALSE)",
            {"rows": rows},
        ).fetchall()
        self.run_if_holds[column] |= {row for (row,) in found} & again

    def claimed_rows(self) -> dict[str, pl.Series]:
        """Per claimed column, the row ids of its claimed cells in row order (the order the runner calls them)."""
        return {column: pl.concat(c.rows) for column, c in self.claimed.items()}

    def estimate(self, cache_dir: Path) -> Estimate:
        """The estimate of everything added: claimed columns (their cache hits looked up and their requests
        counted once, as the runner sends them), those the memo answers, then the paid columns downstream."""
        graph = self.tables.spec.graph
        claimed = graph.sorted(self.claimed)
        estimate = Estimate()
        cache = ResultCache(cache_dir) if cache_dir.exists() else None
        asked: set[tuple[str, bool]] = set()  # the requests the run makes, and whether under Run Again
        try:
            for column in claimed:
                estimate.columns.append(self._priced(column, self.claimed[column], cache, asked))
        finally:
            if cache is not None:
                cache.close()
        by_column = {c.column: c for c in estimate.columns}
        for column in graph.sorted(self.memo_hits):
            found = by_column.get(column)
            if found is None:
                found = by_column[column] = ColumnEstimate(column)
                estimate.columns.append(found)
            found.calls += self.memo_hits[column]
            found.cache_hits += self.memo_hits[column]
        moving = set(claimed) | graph.downstream(claimed)  # columns whose values this run may change
        for column in graph.sorted(graph.downstream(claimed)):
            if graph.nodes[column].free or column in self.claimed:
                continue
            rows = {row for on, waiting in self.waiting[column].items() if on in self.claimed for row in waiting}
            rows |= self._again(column, moving)
            if not rows:
                continue
            spec = self.tables.spec.column(column)
            price = call_price(spec, self.tiers)
            per_call = kind_named(spec.kind).guess_tokens(spec.options)
            estimate.columns.append(
                ColumnEstimate(
                    column, len(rows), 0, len(rows) * price, len(rows) * per_call, downstream=True, exact=False
                )
            )
        return estimate

    def _again(self, column: str, moving: set[str]) -> set[int]:
        """The `column` cells holding an answer that run again when their inputs come back changed: all of them,
        unless its run_if reads no column this run changes (then decided now: where it holds)."""
        again = self.answered.get(column, set())
        run_if = self.tables.spec.column(column).options.run_if  # type: ignore[union-attr]
        if again and run_if and not moving.intersection(sql_references(run_if) & set(self.tables.tables)):
            return again & self.run_if_holds[column]
        return again

    def _priced(
        self, column: str, claimed: _Claimed, cache: ResultCache | None, asked: set[tuple[str, bool]]
    ) -> ColumnEstimate:
        """A claimed column's calls, cache hits, credits and tokens: its sample prepared as the runner would
        (rendered prompts, cache keys, prices), scaled up to all its cells when it is a sample. A request asked
        already (`asked`, by this or an earlier column) is a hit: the runner sends it once."""
        spec = self.tables.spec.column(column)
        json_columns = frozenset(c.name for c in self.tables.spec.columns if c.value_type == "JSON")
        env = PrepareEnv(
            column,
            claimed.force,
            self.context,
            self.tiers,
            json_columns,
            record=self.tables.spec.record_fields,
            columns=frozenset(self.tables.spec.names),
        )
        calls = claimed.count
        sample = claimed.sample
        assert sample is not None
        scale = calls / max(1, sample.height)
        hits = tokens = 0
        price = 0.0
        for call in kind_named(spec.kind).prepare(spec.options, sample, env):
            price = call.credits
            if call.request_key is not None:
                request = (call.request_key, call.force)
                if request in asked:
                    hits += 1
                    continue
                asked.add(request)
            if cache is not None and call.cache_key and not call.force and call.cache_key in cache:
                hits += 1
                continue
            tokens += call.est_tokens
        hit_count = round(hits * scale)
        return ColumnEstimate(
            column, calls, hit_count, (calls - hit_count) * price, round(tokens * scale), exact=scale == 1
        )


def compare_with_budget(estimate: Estimate, rows: dict[str, pl.Series], room: float, limit: str) -> BudgetCheck:
    """Walk the estimate's paid calls in the order the runner makes them (claimed columns in claim order and
    row order, then downstream columns) against `room` credits: how many it covers, and where it would stop.
    `rows` are the claimed cells' row ids per column (Tally.claimed_rows). Cache hits are free; within a column
    they are taken as spread evenly over its rows."""
    calls = sum(c.calls - c.cache_hits for c in estimate.columns)
    check = BudgetCheck(room=room, limit=limit, calls=calls, covered=calls)
    left, covered = room, 0
    for column in estimate.columns:
        paid = column.calls - column.cache_hits
        if paid <= 0 or column.credits <= 0:
            covered += max(paid, 0)
            continue
        if column.credits <= left + 1e-9:
            left -= column.credits
            covered += paid
            continue
        affordable = max(0, int((left + 1e-9) // (column.credits / paid)))
        check.covered, check.stop_column = covered + affordable, column.column
        ids = rows.get(column.column)
        if ids is not None and len(ids):
            check.stop_row = int(ids[min(len(ids) - 1, affordable * column.calls // paid)])
        return check
    return check
