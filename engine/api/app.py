"""The HTTP API `runsheet serve` runs: records in (batch, upsert on a key), runs triggered, watched and stopped.

Every route but /health needs `Authorization: Bearer <token>` (`runsheet token create USER`); the token's user
is the actor, so roles (engine/auth.py) apply exactly as on the command line. Errors are JSON
`{"error": ..., "hint": ...}`: 401 no or unknown token, 403 refused by role, 404 unknown campaign or run,
409 a run that is not running, 422 a body that is not what the route takes (nothing is stored), 400 the rest.
OpenAPI at /openapi.json, browsable at /docs.
"""

from __future__ import annotations

import copy
import json
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from engine import Campaign, NotFoundError, RunsheetError, Workspace, WorkspaceBusyError
from engine.auth import user_for_token
from engine.errors import PermissionDeniedError

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


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str] | None = Field(default=None, description="steps to run (default: every auto-run step)")
    rows: list[int] | None = Field(default=None, description="row ids (default: all)")
    force: bool = Field(default=False, description="Run Again: recompute fresh cells, bypassing the cache")
    only_stale: bool = False


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


class ErrorOut(BaseModel):
    error: str
    hint: str = ""


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422)
}
bearer = HTTPBearer(auto_error=False, description="a token from `runsheet token create USER`")


class ApiState:
    """The workspace the app serves and the runs it started in the background."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Workspace(workspace)
        self.threads: dict[int, threading.Thread] = {}

    def as_user(self, user: str) -> Workspace:
        acting = copy.copy(self.workspace)
        acting.actor = user
        return acting

    def campaign(self, user: str, name: str, trigger: str = "webhook") -> Campaign:
        return Campaign(self.workspace.db, name, actor=user, trigger=trigger)


def _user(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The user the request's bearer token acts as; 401 without a known token."""
    if credentials is None:
        raise HTTPException(401, "no token", headers={"WWW-Authenticate": "Bearer"})
    found = user_for_token(request.app.state.runsheet.workspace.db, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return found


User = Annotated[str, Depends(_user)]


def create_app(workspace: str | Path) -> FastAPI:
    """The API for one workspace."""
    state = ApiState(Path(workspace))
    app = FastAPI(
        title="Runsheet API", version="1", description=__doc__ or "", responses=ERRORS,  # type: ignore[arg-type]
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
            status = 503
        return JSONResponse({"error": error.message, "hint": error.hint}, status_code=status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        hints = {401: "send `Authorization: Bearer <token>`; create one with `runsheet token create USER`"}
        return JSONResponse(
            {"error": str(error.detail), "hint": hints.get(error.status_code, "")},
            status_code=error.status_code, headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = "the body is not valid JSON" if first.get("type") == "json_invalid" else (
            f"{where or 'body'}: {first.get('msg')}"
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
        """Add records (and with `key`, update the ones that match): durable when this answers. Their auto-run
        steps are queued; free ones computed. A paused campaign stores them and runs nothing until resumed."""
        acting = state.as_user(who)
        paused = acting.pause_state(name).campaign
        handle = state.campaign(who, name)
        # Through the importer, key or not: one transaction, typed columns, and errors that name the record.
        with tempfile.TemporaryDirectory(prefix="runsheet-intake-") as folder:
            path = Path(folder) / "records.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in body.records), encoding="utf-8")
            report = handle.import_file(path, key=body.key, run=not paused, add_columns=False)
        return RecordsOut(
            campaign=name, inserted=len(report.inserted), updated=report.updated, unchanged=report.unchanged,
            queued=not paused,
        )

    @app.post("/campaigns/{name}/runs", status_code=202, response_model=RunOut, tags=["runs"])
    def start_run(name: str, body: RunIn, who: User) -> RunOut:
        """Start a run of columns and/or rows; it continues in the background (watch GET /runs/{run_id})."""
        handle = state.campaign(who, name, trigger="api")
        report = handle.start_run(body.columns, body.rows, only_stale=body.only_stale, force=body.force)
        if report.claims:
            thread = threading.Thread(target=handle.finish_run, args=(report,), name=f"run-{report.run_id}")
            state.threads[report.run_id] = thread
            thread.start()
        return _run_out(state.workspace, report.run_id)

    @app.get("/runs", response_model=list[RunOut], tags=["runs"])
    def list_runs(who: User, campaign: str | None = None, limit: int = 20) -> list[RunOut]:
        runs = state.as_user(who).runs(limit if campaign is None else 1000)
        chosen = [r for r in runs if campaign is None or r["campaign"] == campaign][:limit]
        return [_as_run(r) for r in chosen]

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

    @app.post("/campaigns/{name}/resume", tags=["campaigns"])
    def resume(name: str, who: User, column: str | None = None) -> dict[str, bool]:
        return {"changed": state.as_user(who).pause(name, column, resume=True)}

    return app


def _run_out(workspace: Workspace, run_id: int) -> RunOut:
    with workspace.db.transaction() as con:
        cursor = con.execute(
            "SELECT r.*, c.name AS campaign FROM runs r LEFT JOIN campaigns c USING (campaign_id) WHERE run_id = ?",
            [run_id],
        )
        names = [d[0] for d in cursor.description]
        found = cursor.fetchall()
    if not found:
        raise NotFoundError(f"no run {run_id}", hint="list runs with GET /runs")
    return _as_run(dict(zip(names, found[0], strict=True)))


def _as_run(row: dict[str, Any]) -> RunOut:
    counts = row.get("counts")
    return RunOut(
        run_id=row["run_id"], campaign=row.get("campaign"), status=row["status"], trigger=row.get("trigger"),
        actor=row.get("actor"), total=row.get("total") or 0, done=row.get("done") or 0,
        credits=row.get("credits") or 0.0, cache_hits=row.get("cache_hits") or 0,
        counts=json.loads(counts) if isinstance(counts, str) else counts,
        started_at=None if row.get("started_at") is None else str(row["started_at"]),
        finished_at=None if row.get("finished_at") is None else str(row["finished_at"]),
        message=row.get("message"),
    )
