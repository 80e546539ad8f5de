"""The shapes the HTTP API (engine/api/app.py) takes and answers with: request bodies, replies, errors. OpenAPI is
built from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 100_000
Scalar = str | int | float | bool | None


class RecordsIn(BaseModel):
    """A batch of records for one campaign: field names are its input columns."""

    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Scalar]] = Field(min_length=1, max_length=MAX_BATCH)
    key: str | None = Field(
        default=None, description="an input column identifying a record: matching records are updated (upsert)"
    )


class RecordsOut(BaseModel):
    campaign: str
    inserted: int
    updated: int
    unchanged: int
    queued: bool = Field(description="false when the campaign is paused: stored, run once it is resumed")
    enrichment: str = Field(
        default="none",
        description="what the records set off: `background` (their paid auto-run steps run in a run of trigger "
        "`intake`, within the campaign's intake budget), `budget_reached` (today's intake budget is spent: only "
        "what costs nothing runs, the rest stays queued), `off` (intake budget 0), `paused`, or `none` (no paid "
        "auto-run step may run)",
    )
    message: str | None = Field(default=None, description="why the records stay queued, and how to go on")


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str] | None = Field(default=None, description="steps to run (default: every auto-run step)")
    rows: list[int] | None = Field(default=None, description="row ids (default: all)")
    force: bool = Field(default=False, description="Run Again: recompute fresh cells, bypassing the cache")
    only_stale: bool = False
    errors: bool = Field(default=False, description="retry failed cells: only the cells in error, then downstream")
    code: str | None = Field(
        default=None, description="with errors: only cells that failed with this error code (implies errors)"
    )


class SaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field(description="the step column whose current value (done, or edited by hand) is saved")
    field: str = Field(
        default="notes",
        description="notes (a line `column: value` is appended) or an input column; a missing one is created",
    )


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field(description="a step column whose cell was edited by hand (pinned)")


class EditOut(BaseModel):
    """A cell after an edit, and the run the edit caused (the row's downstream reacting)."""

    campaign: str
    row: int
    column: str
    value: Any
    status: str
    run_id: int
    counts: dict[str, dict[str, int]]


class RunOut(BaseModel):
    run_id: int
    campaign: str | None
    status: str
    trigger: str | None = None
    actor: str | None = None
    total: int = 0
    done: int = 0
    credits: float = 0.0
    cache_hits: int = 0
    counts: dict[str, dict[str, int]] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None
    scope: str | None = Field(default=None, description="what it ran (in the run log: GET /runs)")
    outcomes: dict[str, int] | None = Field(default=None, description="cells by outcome, over its columns")


class ResumeOut(BaseModel):
    changed: bool = Field(description="false if it was not paused")
    run: RunOut | None = Field(default=None, description="the run of what was accepted while paused, if any")


class ErrorOut(BaseModel):
    error: str
    hint: str = ""


class RecordsPage(BaseModel):
    """A page of records in row order: each is `row_id` and the value of every input and step column."""

    campaign: str
    total: int = Field(description="records matching `where` (all records without it)")
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")
    records: list[dict[str, Any]]


class CellOut(BaseModel):
    """One cell: its value and state, and for a step, what its last computation did."""

    value: Any
    status: str
    waiting_on: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_hint: str | None = None
    cost: float | None = Field(default=None, description="credits it cost")
    run_id: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cached: bool | None = None
    attempts: int | None = None
    tokens: int | None = None


class RecordOut(BaseModel):
    campaign: str
    row_id: int
    cells: dict[str, CellOut] = Field(description="every column, in the spec's order")


class CreditsOut(BaseModel):
    balance: float
    ledger: list[dict[str, Any]] = Field(
        description="recent ledger rows, newest first: grants positive, spending negative, with run and campaign"
    )
