"""Estimates: what a run would call and spend, worked out from the cells it would claim, before spending.

Claimed cells are prepared exactly as the runner would (rendered prompts, cache keys, prices), so cache hits are
real lookups, and a request repeated by other cells of the run is counted once, its repeats as hits (the runner
sends identical requests once: engine/runner/flights.py). Paid columns downstream of them run too once the
claimed cells land (auto-run ones, and asked-for ones waiting on them): counted per row where the run's
transaction left the cell waiting on a claimed column (not where run_if already skipped it), without cache hits
(their prompts depend on answers not yet known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

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


def estimate_claims(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    claims: list[Claim],
    cache_dir: Path,
    memo_hits: dict[str, int] | None = None,
) -> Estimate:
    """The estimate of a planned run: `claims` are the cells it would call for, `memo_hits` (per column) the cells
    it would answer from the memo without a call."""
    settings = load_settings(con)
    context = {n: d.text for n, d in read_context(con).items()}
    json_columns = frozenset(c.name for c in tables.spec.columns if c.value_type == "JSON")
    estimate = Estimate()
    claimed_rows: dict[str, set[int]] = {}
    cache = ResultCache(cache_dir) if cache_dir.exists() else None
    asked: set[tuple[str, bool]] = set()  # the requests the run makes, and whether under Run Again
    try:
        for claim in claims:
            spec = tables.spec.column(claim.column)
            env = PrepareEnv(
                claim.column,
                claim.force,
                context,
                settings.tiers,
                json_columns,
                record=tables.spec.record_fields,
                columns=frozenset(tables.spec.names),
            )
            sample = claim.frame if claim.frame.height <= SAMPLE_ROWS else claim.frame.sample(SAMPLE_ROWS, seed=0)
            scale = claim.frame.height / max(1, sample.height)
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
            calls = claim.frame.height
            hit_count = round(hits * scale)
            estimate.columns.append(
                ColumnEstimate(
                    claim.column,
                    calls,
                    hit_count,
                    (calls - hit_count) * price,
                    round(tokens * scale),
                    exact=scale == 1,
                )
            )
            claimed_rows[claim.column] = set(claim.frame["row_id"].to_list())
    finally:
        if cache is not None:
            cache.close()
    by_column = {c.column: c for c in estimate.columns}
    for column, hits in (memo_hits or {}).items():
        found = by_column.get(column)
        if found is None:
            found = by_column[column] = ColumnEstimate(column)
            estimate.columns.append(found)
        found.calls += hits
        found.cache_hits += hits
    graph = tables.spec.graph
    claimed = sorted(claimed_rows)
    for column in graph.sorted(graph.downstream(claimed)):
        node = graph.nodes[column]
        if node.free or column in claimed_rows:
            continue
        rows: set[int] = set()
        for upstream in graph.upstream([column]):
            rows |= claimed_rows.get(upstream, set())
        moving = set(claimed) | graph.downstream(claimed)  # columns whose values this run may change
        rows = _computed(con, tables, column, rows, claimed, moving)
        if not rows:
            continue
        spec = tables.spec.column(column)
        price = call_price(spec, settings.tiers)
        per_call = kind_named(spec.kind).guess_tokens(spec.options)
        estimate.columns.append(
            ColumnEstimate(column, len(rows), 0, len(rows) * price, len(rows) * per_call, downstream=True, exact=False)
        )
    return estimate


def _computed(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    column: str,
    rows: set[int],
    claimed: list[str],
    moving: set[str],
) -> set[int]:
    """Of `rows`, those whose `column` cell the run may compute once the claimed cells land (engine/run/paid.py
    computes them as after an edit). The estimate runs the run's transaction (rolled back after), which leaves
    waiting on a claimed column every cell it will compute: auto-run or asked for, and none that run_if already
    skipped (verdicts.decide). An auto-run cell holding an answer runs again if its inputs come back changed
    (Run Again): counted unless its run_if, reading no column this run changes, is false now."""
    table = tables.tables[column]
    marks = ", ".join("?" for _ in claimed)
    found = con.execute(
        f"SELECT row_id FROM {table} WHERE status = ? AND waiting_on IN ({marks})", [Status.WAITING.value, *claimed]
    ).fetchall()
    computed = {row for (row,) in found} & rows
    spec = tables.spec.column(column)
    if spec.is_input or spec.options.run != "auto":  # type: ignore[union-attr]
        return computed
    answered = sql_in("status", frozenset({Status.DONE, Status.NOT_FOUND, Status.SKIPPED}))
    found = con.execute(f"SELECT row_id FROM {table} WHERE {answered}").fetchall()
    again = {row for (row,) in found} & rows
    run_if = spec.options.run_if  # type: ignore[union-attr]
    if again and run_if:
        reads = sorted(sql_references(run_if) & set(tables.tables))
        if not moving.intersection(reads):  # decided now, as the run will decide it
            joins = " ".join(
                f"LEFT JOIN (SELECT row_id, value AS {quote(dep)} FROM {tables.tables[dep]}) d{i} USING (row_id)"
                for i, dep in enumerate(reads)
            )
            found = con.execute(
                f"SELECT row_id FROM {tables.rows_table} r {joins} WHERE coalesce(({run_if})::BOOLEAN, FALSE)"
            ).fetchall()
            again &= {row for (row,) in found}
    return computed | again


def compare_with_budget(estimate: Estimate, claims: list[Claim], room: float, limit: str) -> BudgetCheck:
    """Walk the estimate's paid calls in the order the runner makes them (claimed columns in claim order and
    row order, then downstream columns) against `room` credits: how many it covers, and where it would stop.
    Cache hits are free; within a column they are taken as spread evenly over its rows."""
    rows = {claim.column: claim.frame["row_id"] for claim in claims}
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
