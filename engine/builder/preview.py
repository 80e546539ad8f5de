"""The preview of a proposal: its step run on up to three sample records of the campaign, nothing stored in a
cell. A free step runs at once (a formula, a python function, an ai step on the offline model); a step that pays
(an ai step on a real model, an http lookup with credits) or reaches the network (an http lookup) is priced first
and runs only when the caller confirms the estimate. Paid calls go through the call pool and the result cache
(so a later run of the same request reuses them: one bill), and are logged in activity with a credit row."""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from engine.cache import ResultCache
from engine.cells import kind_named
from engine.cells.base import Batch, PrepareEnv, StepOptions
from engine.run.adhoc import gate_record, read_record
from engine.run.paid import close_transports, load_budget, run_coroutine
from engine.runner.calls import CellResult
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool
from engine.spec import ColumnSpec
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.context import read_context
from engine.store.database import Database
from engine.store.settings import load_settings
from engine.types import Status


@dataclass
class Preview:
    """`status`: `ran`, `priced` (waiting for the caller to confirm `credits`), or `none` (no campaign or no
    records to run on). `rows`: each sample record's outcome."""

    status: str
    credits: float = 0.0
    calls: int = 0
    reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "credits": self.credits,
            "calls": self.calls,
            "reason": self.reason,
            "rows": self.rows,
        }


def preview(
    db: Database,
    cache_dir: Path,
    campaign: str,
    column: ColumnSpec,
    row_ids: list[int],
    *,
    confirm: bool,
    who: tuple[str, str],
) -> Preview:
    """Run `column` (the proposal read as a column of `campaign`) on `row_ids`, or price it when it pays."""
    if not row_ids:
        return Preview("none", reason=f"campaign '{campaign}' has no records to preview on")
    assert isinstance(column.options, StepOptions)
    kind = kind_named(column.kind)
    with db.transaction() as con:
        tables = load_campaign(con, campaign)
        records = {r: read_record(con, tables, r, list(column.deps), column.options.run_if) for r in row_ids}
        settings = load_settings(con)
        budget = load_budget(con, campaign, tables.campaign_id)
        context = {n: d.text for n, d in read_context(con).items()}
        json_columns = frozenset(c.name for c in tables.spec.columns if c.value_type == "JSON")
        fields, names = tables.spec.record_fields, frozenset(tables.spec.names)  # a prompt naming none gets them
    gated = {r: gate_record(column, r, rec) for r, rec in records.items()}
    calling = [r for r, g in gated.items() if g is None]
    price = kind.price(column.options, settings.tiers)
    shown = Preview("ran", credits=price * len(calling), calls=0 if kind.free else len(calling))
    if not kind.free and calling and not confirm and (price > 0 or column.kind == "http"):
        shown.status = "priced"
        shown.reason = (
            f"the preview makes {len(calling)} call(s) for about {shown.credits:g} credits"
            if price > 0
            else f"the preview makes {len(calling)} request(s) to the step's URL"
        ) + ": confirm the estimate to run it"
        return shown
    outcomes: dict[int, CellResult] = {r: g for r, g in gated.items() if g is not None}
    if calling:
        frame = _frame(calling, {r: records[r].values for r in calling}, list(column.deps))
        if kind.free:
            outcomes |= _computed(db, column, frame)
        else:
            env = PrepareEnv(
                column.name,
                False,
                context,
                settings.tiers,
                json_columns,
                frozenset(settings.allowed_hosts),
                fields,
                names,
            )
            outcomes |= _paid(column, frame, env, cache_dir, settings, budget)
            _log(db, tables, column.name, [outcomes[r] for r in calling], who)
    shown.credits = sum(o.credits for o in outcomes.values())
    shown.rows = [_row(r, outcomes[r]) for r in row_ids]
    return shown


def _frame(row_ids: list[int], values: dict[int, dict[str, Any]], deps: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"row_id": row_ids, "key": [0] * len(row_ids), **{d: [values[r].get(d) for r in row_ids] for d in deps}},
        schema_overrides={"key": pl.UInt64},
        strict=False,
    )


def _computed(db: Database, column: ColumnSpec, frame: pl.DataFrame) -> dict[int, CellResult]:
    """A free step's values: a formula evaluated over the sample (in transactions rolled back: nothing stays),
    a python function called."""
    kind = kind_named(column.kind)
    expression = kind.sql(column.options)
    if expression is None:
        table = kind.compute(column.options, Batch(column.name, frame.drop("key"), 0))
        return {
            int(r["row_id"]): CellResult(
                column.name,
                int(r["row_id"]),
                0,
                Status(r["status"]),
                value=r["value"],
                error_message=r.get("error_message"),
            )
            for r in table.iter_rows(named=True)
        }
    sample = frame.drop("key").to_arrow()
    try:  # the whole sample in one statement; a failing row fails it, and then each row says for itself
        found = _evaluate(db, expression, sample, frame["row_id"].to_list())
    except duckdb.Error:
        found = {}
        for row_id in frame["row_id"].to_list():
            try:
                found |= _evaluate(db, expression, sample, [row_id])
            except duckdb.Error as err:
                message = str(err).strip().splitlines()[0]
                found[row_id] = CellResult(column.name, row_id, 0, Status.ERROR, error_message=message)
    return {
        r: c if isinstance(c, CellResult) else CellResult(column.name, r, 0, Status.DONE, value=c)
        for r, c in found.items()
    }


def _evaluate(db: Database, expression: str, sample: Any, row_ids: list[int]) -> dict[int, Any]:
    """`expression` over the sample's rows `row_ids`; raises duckdb.Error (DuckDB's own message) when it fails."""
    failure: duckdb.Error | None = None
    with db.transaction(commit=False) as con:
        con.register("_builder_sample", sample)
        try:
            rows = con.execute(
                f"SELECT row_id, ({expression}) FROM _builder_sample WHERE list_contains(?, row_id)", [row_ids]
            ).fetchall()
        except duckdb.Error as err:
            failure = err
        with suppress(duckdb.Error):  # an aborted transaction refuses it; the next register replaces the view
            con.unregister("_builder_sample")
        if failure is not None:
            raise failure
    return {int(r): v for r, v in rows}


def _paid(
    column: ColumnSpec, frame: pl.DataFrame, env: PrepareEnv, cache_dir: Path, settings: Any, budget: Any
) -> dict[int, CellResult]:
    calls = list(kind_named(column.kind).prepare(column.options, frame, env))
    results: list[CellResult] = []
    cache = ResultCache(cache_dir)
    try:
        pool = CallPool(
            concurrency=len(calls) or 1,
            budget=budget,
            on_result=results.append,
            stop=threading.Event(),
            cache=cache,
            limits=RateLimits({m: (v.get("rpm"), v.get("tpm")) for m, v in settings.rate_limits.items()}),
            policy=RetryPolicy(max_attempts=settings.max_attempts),
        )

        async def go() -> None:
            try:
                await pool.run(calls)
            finally:
                await close_transports()

        run_coroutine(go())
    finally:
        cache.close()
    return {r.row_id: r for r in results}


def _log(db: Database, tables: CampaignTables, name: str, results: list[CellResult], who: tuple[str, str]) -> None:
    """One activity row per previewed call, and a credit row for what the preview cost."""
    with db.transaction() as con:
        for result in results:
            con.execute(
                "INSERT INTO activity (campaign_id, column_name, row_id, cells, action, outcome, logged_at, "
                "duration_ms, cost, actor, trigger, tokens, provider_cost, cached, error_code) "
                "VALUES (?, ?, ?, 1, 'builder_preview', ?, now(), ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    tables.campaign_id,
                    name,
                    result.row_id,
                    result.status.value,
                    result.latency_ms,
                    result.credits,
                    *who,
                    result.tokens,
                    result.provider_cost,
                    result.cached,
                    result.error_code.value if result.error_code else None,
                ],
            )
        spent = sum(r.credits for r in results)
        if spent:
            con.execute(
                "INSERT INTO credit_ledger VALUES (now(), ?, NULL, ?, 'builder_preview')", [-spent, tables.campaign_id]
            )


def _row(row_id: int, result: CellResult) -> dict[str, Any]:
    return {
        "row_id": row_id,
        "status": result.status.value,
        "value": result.value,
        "error": result.error_message,
        "error_code": result.error_code.value if result.error_code else None,
        "credits": result.credits,
    }
