"""The HTTP API `runsheet serve` runs: records in (batch, upsert on a key; their paid auto-run steps then run by
themselves in the background, within the intake budget: engine/intake.py), runs triggered, watched and stopped,
a step's result saved to its record, hand edits confirmed, campaigns paused and resumed; and reads: records
(paged, filtered by an SQL condition run in the query sandbox), one record with every cell's state, the run log,
the activity log and credits.

Every route but /health needs `Authorization: Bearer <token>` (`runsheet token create USER`); the token's user
is the actor, so roles (engine/auth.py) apply exactly as on the command line. Errors are JSON
`{"error": ..., "hint": ...}`: 401 no or unknown token, 403 refused by role, 404 unknown campaign, record or run,
409 a run that is not running, 422 a body that is not what the route takes (nothing is stored), 503 with
`Retry-After` while the workspace is busy (nothing is stored: send the request again), 400 the rest.
OpenAPI at /openapi.json, browsable at /docs.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import decimal
import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from engine import (
    Campaign,
    CampaignSpec,
    Cell,
    Intake,
    IntakePlan,
    NotFoundError,
    PermissionDeniedError,
    RunReport,
    RunSelection,
    RunsheetError,
    Workspace,
    WorkspaceBusyError,
    check_records,
)
from engine.api.actions import add_action_routes
from engine.api.builder import add_builder_routes
from engine.api.copilot import add_copilot_routes
from engine.api.models import (
    CellOut,
    ConfirmIn,
    CreditsOut,
    EditOut,
    ErrorOut,
    RecordOut,
    RecordsIn,
    RecordsOut,
    RecordsPage,
    ResumeOut,
    RunIn,
    RunOut,
    SaveIn,
)
from engine.api.users import User

MAX_PAGE = 1000  # records (or runs, activity rows, ledger rows) one read answers with
TOKEN_SECONDS = 5.0
TOKENS_REMEMBERED = 1024  # answers kept; unknown tokens count too, so a flood of them cannot grow memory
RETRY_AFTER_SECONDS = 1  # what a 503 (the workspace busy) asks the client to wait before sending the request again


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422)}


class ApiState:
    """The workspace the app serves and the runs it started in the background."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Workspace(workspace)
        self.threads: dict[int, threading.Thread] = {}
        self.starters: dict[int, str] = {}  # who started each of those runs (asks it to stop on shutdown)
        self.intake = Intake(self.workspace)  # records posted here enrich themselves (engine/intake.py)
        self._tokens: dict[str, tuple[str | None, float]] = {}

    def user_for(self, token: str) -> str | None:
        """The token's user. Answers are remembered for TOKEN_SECONDS (each lookup opens the workspace file),
        so a revoked token stops working within that time; by the token's digest, never the token itself."""
        now = time.monotonic()
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = self._tokens.get(digest)
        if found is None or now - found[1] > TOKEN_SECONDS:
            found = (self.workspace.user_for_token(token), now)
            if len(self._tokens) >= TOKENS_REMEMBERED:
                self._tokens.clear()
            self._tokens[digest] = found
        return found[0]

    def stop_background_runs(self) -> None:
        """On shutdown: runs this server started are asked to stop, each on behalf of whoever started it, and
        waited for (their cells go back)."""
        self.intake.close()
        for run_id, thread in self.threads.items():
            if thread.is_alive():
                try:
                    self.as_user(self.starters[run_id]).stop_runs([run_id])
                except PermissionDeniedError:  # its starter lost the right to stop meanwhile: the run is waited for
                    continue
        for thread in self.threads.values():
            thread.join(timeout=60)
        self.threads.clear()
        self.starters.clear()

    def finish_in_background(self, handle: Campaign, report: RunReport) -> None:
        """Compute the paid cells a started run claimed, and its windows left, in a thread of its own (stopped and
        joined on shutdown)."""
        if report.unfinished:
            thread = threading.Thread(target=handle.finish_run, args=(report,), name=f"run-{report.run_id}")
            self.threads[report.run_id] = thread
            self.starters[report.run_id] = handle.actor
            thread.start()

    def campaign_and_pause(self, user: str, name: str) -> tuple[Campaign, CampaignSpec, bool]:
        """A handle on the campaign (raising NotFoundError), its spec and whether it is paused: one transaction."""
        spec, paused = self.workspace.campaign_state(name)
        return self.campaign(user, name), spec, paused.campaign

    def as_user(self, user: str) -> Workspace:
        acting = copy.copy(self.workspace)
        acting.actor = user
        return acting

    def campaign(self, user: str, name: str, trigger: str = "webhook") -> Campaign:
        return self.workspace.handle(name, actor=user, trigger=trigger)


Offset = Annotated[int, Query(ge=0, description="records to skip")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}")]


def _busy(message: str, hint: str) -> JSONResponse:
    """503 with Retry-After: the request changed nothing and may be sent again as it is."""
    return JSONResponse(
        {"error": message, "hint": hint}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def create_app(workspace: str | Path) -> FastAPI:
    """The API for one workspace."""
    state = ApiState(Path(workspace))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(state.stop_background_runs)

    app = FastAPI(
        title="Runsheet API",
        version="1",
        description=__doc__ or "",
        responses=ERRORS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.runsheet = state

    @app.exception_handler(RunsheetError)
    async def _runsheet_error(request: Request, error: RunsheetError) -> JSONResponse:
        status = 400
        if isinstance(error, PermissionDeniedError):
            status = 403
        elif isinstance(error, NotFoundError):
            status = 404
        elif isinstance(error, WorkspaceBusyError):
            return _busy(error.message, error.hint)
        hint = error.hint_for("api") if isinstance(error, PermissionDeniedError) else error.hint
        return JSONResponse({"error": error.message, "hint": hint}, status_code=status)

    @app.exception_handler(duckdb.TransactionException)
    async def _conflict(request: Request, error: duckdb.TransactionException) -> JSONResponse:
        # DuckDB aborted the transaction (a write conflict): it rolled back, so the request can simply be sent again
        return _busy("the workspace was busy with another write", "send the request again")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        hints = {401: "send `Authorization: Bearer <token>`; create one with `runsheet token create USER`"}
        return JSONResponse(
            {"error": str(error.detail), "hint": hints.get(error.status_code, "")},
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            "the body is not valid JSON"
            if first.get("type") == "json_invalid"
            else (f"{where or 'body'}: {first.get('msg')}")
        )
        return JSONResponse(
            {"error": message, "hint": "see the request schema at /docs; nothing was stored"}, status_code=422
        )

    @app.get("/health", tags=["service"])
    def health() -> dict[str, bool]:
        """Liveness, without a token."""
        return {"ok": True}

    @app.get("/campaigns", tags=["campaigns"])
    def campaigns(who: User) -> list[str]:
        return state.as_user(who).campaigns()

    @app.post("/campaigns/{name}/records", response_model=RecordsOut, tags=["campaigns"])
    def add_records(name: str, body: RecordsIn, who: User) -> RecordsOut:
        """Add records (and with `key`, update the ones that match): durable when this answers. Their free steps
        are computed; their paid auto-run steps are queued, then run in the background (`enrichment`), within the
        campaign's intake budget. A paused campaign stores them and runs nothing until resumed."""
        handle, spec, paused = state.campaign_and_pause(who, name)
        if body.key is None:  # appending: straight into the tables, after a check of every value's type
            inserted, _ = handle.add_rows(check_records(spec, body.records), run=not paused)
            plan = state.intake.submit(name, who, inserted)
            return RecordsOut(
                campaign=name, inserted=len(inserted), updated=0, unchanged=0, queued=not paused, **_enrichment(plan)
            )
        # An upsert goes through the importer: one transaction, matched on the key, errors naming the record.
        with tempfile.TemporaryDirectory(prefix="runsheet-intake-") as folder:
            path = Path(folder) / "records.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in body.records), encoding="utf-8")
            report = handle.import_file(path, key=body.key, run=not paused, add_columns=False)
        plan = state.intake.submit(name, who, [*report.inserted, *report.updated_rows])
        return RecordsOut(
            campaign=name,
            inserted=len(report.inserted),
            updated=report.updated,
            unchanged=report.unchanged,
            queued=not paused,
            **_enrichment(plan),
        )

    @app.post("/campaigns/{name}/runs", status_code=202, response_model=RunOut, tags=["runs"])
    def start_run(name: str, body: RunIn, who: User) -> RunOut:
        """Start a run of columns and/or rows; it continues in the background (watch GET /runs/{run_id})."""
        handle = state.campaign(who, name, trigger="api")
        selection = RunSelection.of(
            body.columns,
            body.rows,
            only_stale=body.only_stale,
            force=body.force,
            errors=body.errors,
            error_code=body.code,
        )
        report = handle.start_run(selection)
        state.finish_in_background(handle, report)
        return _run_out(state.workspace, report.run_id)

    @app.post("/campaigns/{name}/records/{row_id}/save", response_model=EditOut, tags=["records"])
    def save_to_record(name: str, row_id: int, body: SaveIn, who: User) -> EditOut:
        """Save to Record: copy a step cell's current value into a field of the record (`notes` gets a line
        `column: value`), so later steps use it as context; the row's downstream reacts before this answers."""
        handle = state.campaign(who, name, trigger="api")
        report = handle.save_to_record(row_id, body.column, body.field)
        return _edit_out(handle, row_id, body.field, report)

    @app.post("/campaigns/{name}/records/{row_id}/confirm", response_model=EditOut, tags=["records"])
    def confirm(name: str, row_id: int, body: ConfirmIn, who: User) -> EditOut:
        """Confirm a step cell edited by hand: it stays pinned, and exports downstream may now send it."""
        handle = state.campaign(who, name, trigger="api")
        report = handle.confirm(row_id, body.column)
        return _edit_out(handle, row_id, body.column, report)

    @app.get("/campaigns/{name}/records", response_model=RecordsPage, tags=["records"])
    def read_records(
        name: str, who: User, offset: Offset = 0, limit: PageLimit = 50, where: str | None = None
    ) -> RecordsPage:
        """A page of records with every input and step value; `where` is an SQL condition over the campaign's
        columns (`employees > 10 AND domain LIKE '%.io'`), run read-only in the query sandbox."""
        handle = state.campaign(who, name)
        page = handle.page(offset, limit, where=where if where and where.strip() else None)
        json_columns = _json_columns(handle)
        records = [
            {"row_id": row_id, **{c: _json_safe(cell.value, c in json_columns) for c, cell in row.items()}}
            for row_id, row in zip(page.row_ids, page.rows, strict=True)
        ]
        after = offset + len(records)
        return RecordsPage(
            campaign=name,
            total=page.total_rows,
            offset=offset,
            limit=limit,
            next_offset=after if records and after < page.total_rows else None,
            records=records,
        )

    @app.get("/campaigns/{name}/records/{row_id}", response_model=RecordOut, tags=["records"])
    def read_record(name: str, row_id: int, who: User) -> RecordOut:
        """One record with every cell: value, status, error (code, message, hint), credits, run and times."""
        handle = state.campaign(who, name)
        page = handle.page(rows=[row_id])
        json_columns = _json_columns(handle)
        cells = {c: _cell_out(cell, c in json_columns) for c, cell in page.rows[0].items()}
        return RecordOut(campaign=name, row_id=row_id, cells=cells)

    @app.get("/runs", response_model=list[RunOut], tags=["runs"])
    def list_runs(who: User, campaign: str | None = None, limit: PageLimit = 20) -> list[RunOut]:
        """The run log, newest first: who ran what and why, scope, outcomes, credits and progress."""
        acting = state.as_user(who)
        if campaign is not None:
            acting.campaign_state(campaign)  # NotFoundError for an unknown campaign
        return [_as_run(r) for r in acting.run_log(campaign=campaign, limit=limit)]

    @app.get("/activity", tags=["runs"])
    def read_activity(who: User, campaign: str | None = None, limit: PageLimit = 100) -> list[dict[str, Any]]:
        """The activity log, newest first: what was done to which column and row, by whom, with what outcome."""
        rows = state.as_user(who).activity(limit, campaign=campaign)
        return [{k: _json_safe(v) for k, v in row.items() if k != "campaign_id"} for row in rows]

    @app.get("/campaigns/{name}/spec/history", tags=["campaigns"])
    def read_spec_history(name: str, who: User, limit: PageLimit = 50) -> list[dict[str, Any]]:
        """The campaign's spec changes, newest first: when, who, where from (file, ui, api, import, edit), the diff."""
        return [{k: _json_safe(v) for k, v in row.items()} for row in state.as_user(who).spec_history(name, limit)]

    @app.get("/credits", response_model=CreditsOut, tags=["service"])
    def read_credits(who: User, limit: PageLimit = 20) -> CreditsOut:
        """The workspace's credit balance and its most recent ledger rows."""
        acting = state.as_user(who)
        ledger = [{k: _json_safe(v) for k, v in r.items() if k != "campaign_id"} for r in acting.credit_ledger(limit)]
        return CreditsOut(balance=acting.credits(), ledger=ledger)

    @app.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
    def read_run(run_id: int, who: User) -> RunOut:
        """A run's status and live progress (done of total cells, credits, cache hits, counts by outcome)."""
        return _run_out(state.workspace, run_id)

    @app.post("/runs/{run_id}/stop", response_model=RunOut, tags=["runs"])
    def stop_run(run_id: int, who: User) -> RunOut:
        """Stop a running run: calls in flight are cancelled, nothing new starts, no further side effects."""
        _run_out(state.workspace, run_id)
        if not state.as_user(who).stop_run(run_id):
            raise HTTPException(409, f"run {run_id} is not running")
        thread = state.threads.pop(run_id, None)
        if thread is not None:
            thread.join(timeout=30)
        return _run_out(state.workspace, run_id)

    @app.post("/campaigns/{name}/pause", tags=["campaigns"])
    def pause(name: str, who: User, column: str | None = None) -> dict[str, bool]:
        """Pause a campaign (or one step with ?column=): records are still accepted, nothing runs."""
        return {"changed": state.as_user(who).pause(name, column)}

    @app.post("/campaigns/{name}/resume", response_model=ResumeOut, tags=["campaigns"])
    def resume(name: str, who: User, column: str | None = None, run: bool = True) -> ResumeOut:
        """Resume a paused campaign (or step): what was accepted while paused (queued auto-run cells, records
        that came in) starts running in the background, as with POST /runs; `?run=false` only resumes."""
        resumed = state.as_user(who).resume(name, column, run=run, trigger="api")
        if resumed.run is None:
            return ResumeOut(changed=resumed.changed)
        state.finish_in_background(resumed.campaign, resumed.run)
        return ResumeOut(changed=resumed.changed, run=_run_out(state.workspace, resumed.run.run_id))

    add_builder_routes(app, state.as_user)  # first: /actions/{name}/chat before /actions/{name}/{switch}
    add_action_routes(app, state.as_user)
    add_copilot_routes(app, state.as_user)
    return app


def _enrichment(plan: IntakePlan) -> dict[str, Any]:
    return {"enrichment": plan.enrichment, "message": plan.message}


def _edit_out(handle: Campaign, row_id: int, column: str, report: RunReport) -> EditOut:
    cell = handle.cell(row_id, column)
    return EditOut(
        campaign=handle.name,
        row=row_id,
        column=column,
        value=cell.value,
        status=cell.status.value,
        run_id=report.run_id,
        counts={c: dict(o) for c, o in report.counts().items()},
    )


def _run_out(workspace: Workspace, run_id: int) -> RunOut:
    found = workspace.run_record(run_id)  # a run whose runner died is shown interrupted
    if found is None:
        raise NotFoundError(f"no run {run_id}", hint="list runs with GET /runs")
    return _as_run(found)


def _as_run(row: dict[str, Any]) -> RunOut:
    counts = row.get("counts")
    return RunOut(
        run_id=row["run_id"],
        campaign=row.get("campaign"),
        status=row["status"],
        trigger=row.get("trigger"),
        actor=row.get("actor"),
        total=row.get("total") or 0,
        done=row.get("done") or 0,
        credits=row.get("credits") or 0.0,
        cache_hits=row.get("cache_hits") or 0,
        counts=json.loads(counts) if isinstance(counts, str) else counts,
        started_at=None if row.get("started_at") is None else str(row["started_at"]),
        finished_at=None if row.get("finished_at") is None else str(row["finished_at"]),
        message=row.get("message"),
        scope=row.get("scope"),
        outcomes=row.get("outcomes"),
    )


def _json_columns(handle: Campaign) -> set[str]:
    return {c.name for c in handle.spec.columns if c.value_type == "JSON"}


def _cell_out(cell: Cell, is_json: bool) -> CellOut:
    return CellOut(
        value=_json_safe(cell.value, is_json),
        status=cell.status.value,
        waiting_on=cell.waiting_on,
        error_code=cell.error_code,
        error_message=cell.error_message,
        error_hint=cell.error_hint,
        cost=cell.cost,
        run_id=cell.run_id,
        started_at=_json_safe(cell.started_at),
        finished_at=_json_safe(cell.finished_at),
        cached=cell.cached,
        attempts=cell.attempts,
        tokens=cell.tokens,
    )


def _json_safe(value: Any, is_json: bool = False) -> Any:
    """A stored value as JSON: times as ISO 8601 text, decimals as numbers, a JSON column's text as the object it
    holds (text that is not JSON stays text), bytes as hex."""
    if is_json and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return value
