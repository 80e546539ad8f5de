"""Estimates: what a run would call and spend, worked out from the cells it would claim, before spending.

Claimed cells are prepared exactly as the runner would (rendered prompts, cache keys, prices), so cache hits are
real lookups, and a request repeated by other cells of the run is counted once, its repeats as hits (the runner
sends identical requests once: engine/runner/flights.py). Paid auto-run columns downstream of them would run too
once their inputs change; their calls are counted per row, without cache hits (their prompts depend on answers
not yet known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from engine.cache import ResultCache
from engine.cells import kind_named
from engine.cells.base import PrepareEnv
from engine.executor import Claim
from engine.store.catalog import CampaignTables
from engine.store.context import read_context
from engine.store.settings import load_settings

SAMPLE_ROWS = (
    20_000  # above this many claimed cells a column's hits and tokens are extrapolated from a sample
)


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
        }


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
            env = PrepareEnv(claim.column, claim.force, context, settings.tiers, json_columns)
            sample = (
                claim.frame if claim.frame.height <= SAMPLE_ROWS else claim.frame.sample(SAMPLE_ROWS, seed=0)
            )
            scale = claim.frame.height / max(1, sample.height)
            hits = tokens = 0
            price = 0.0
            for call in kind_named(spec.kind).prepare(spec.options, sample, env):  # type: ignore[attr-defined]
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
    for column in graph.sorted(graph.downstream(list(claimed_rows))):
        node = graph.nodes[column]
        if node.free or not node.auto or column in claimed_rows:
            continue
        rows: set[int] = set()
        for upstream in graph.upstream([column]):
            rows |= claimed_rows.get(upstream, set())
        spec = tables.spec.column(column)
        options = spec.options
        model = getattr(options, "model", None)
        price = 0.0 if model == "offline" else settings.tiers.get(getattr(options, "tier", ""), 0.0)
        price = getattr(options, "credits", price) if spec.kind == "probe" else price
        per_call = len(getattr(options, "prompt", "")) // 4 + (getattr(options, "max_tokens", None) or 256)
        estimate.columns.append(
            ColumnEstimate(
                column, len(rows), 0, len(rows) * price, len(rows) * per_call, downstream=True, exact=False
            )
        )
    return estimate
