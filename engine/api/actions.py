"""The HTTP API's routes for the action library (engine/actions/): list, read and change actions, run one on a
record (and wait for it, or start it and read its result while it goes), trigger one by webhook over several
records (named by key, or created by the body), Save to Record, and the documents actions produced.

Roles apply as everywhere: a run the token's user may not make is refused with 403 `permission_denied` and the
fix. A webhook is this API with a token: `POST /actions/{name}/trigger`.

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from engine import ActionLibrary, RunsheetError, Workspace
from engine.api.users import User

Scalar = str | int | float | bool | None
MAX_TRIGGER = 1000  # records one webhook call may name or create


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    template: str | None = Field(default=None, description="a built-in template that supplies what is not given")
    kind: str | None = Field(default=None, description="ai, http, export, formula or python")
    options: dict[str, Any] | None = Field(default=None, description="the step's options, as in a campaign spec")
    category: str | None = None
    description: str | None = Field(default=None, description="what the action does, in plain words")
    roles: list[str] | None = Field(default=None, description="who may see and run it (admin, member, viewer)")
    produces: Literal["result", "document"] | None = None


class ActionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    options: dict[str, Any] | None = None
    category: str | None = None
    description: str | None = None
    produces: Literal["result", "document"] | None = None


class RenameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_name: str


class RolesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[str] = Field(min_length=1)


class RunActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str
    record: str | int = Field(description="a row id, or a name, email or domain one record holds")
    regenerate: bool = Field(default=False, description="ask the provider anew instead of the cache")
    wait: bool = Field(default=True, description="answer with the finished result; false: at once, while running")


class TriggerIn(BaseModel):
    """A webhook's body: the records to run the action on, named by key, or created (then run)."""

    model_config = ConfigDict(extra="forbid")
    campaign: str
    records: list[str | int] = Field(default_factory=list, max_length=MAX_TRIGGER)
    create: list[dict[str, Scalar]] = Field(default_factory=list, max_length=MAX_TRIGGER)


class ColumnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str
    name: str | None = Field(default=None, description="the column's name (default: the action's)")
    after: str | None = Field(default=None, description="the column to put it after (default: last)")


class SaveResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(default="notes", description="notes (a line `action: text` is appended) or a field")


def add_action_routes(app: FastAPI, workspace_for: Callable[[str], Workspace]) -> None:
    """Add the action library's routes; `workspace_for(user)` is the workspace acting as that user."""
    router = APIRouter(tags=["actions"])

    def library(who: str) -> ActionLibrary:
        return workspace_for(who).actions(actor=who, trigger="api")

    @router.get("/actions")
    def list_actions(who: User, runnable: bool = False, search: str = "") -> list[dict[str, Any]]:
        """The actions the token's user may see; `runnable`: only those they may run now."""
        return library(who).listed(runnable=runnable, search=search)

    @router.get("/actions/{name}")
    def show_action(name: str, who: User) -> dict[str, Any]:
        return library(who).show(name)

    @router.post("/actions", status_code=201)
    def add_action(body: ActionIn, who: User) -> dict[str, Any]:
        """Add an action (admins). It starts paused: POST /actions/{name}/resume lets it run."""
        given = body.model_dump(exclude={"name", "kind", "options"})
        return library(who).add(body.name, body.kind, body.options, **given)

    @router.patch("/actions/{name}")
    def change_action(name: str, body: ActionChange, who: User) -> dict[str, Any]:
        changes = body.model_dump(exclude_none=True)
        if not changes:
            raise RunsheetError("nothing to change", hint="send options, category, description or produces")
        workspace_for(who).update_action(name, actor=who, **changes)  # columns made from it follow
        return library(who).show(name)

    @router.post("/actions/{name}/rename")
    def rename_action(name: str, body: RenameIn, who: User) -> dict[str, Any]:
        return library(who).rename(name, body.new_name)

    @router.delete("/actions/{name}")
    def delete_action(name: str, who: User, confirm: bool = False) -> dict[str, int]:
        """Delete an action with its results, documents and log; refused (400, with what it would remove) unless
        `?confirm=true`."""
        return library(who).delete(name, confirm=confirm)

    @router.put("/actions/{name}/roles")
    def set_roles(name: str, body: RolesIn, who: User) -> dict[str, Any]:
        return library(who).set_roles(name, body.roles)

    @router.post("/actions/{name}/run")
    def run_action(name: str, body: RunActionIn, who: User) -> dict[str, Any]:
        """Run the action on one record: the finished result, or (`wait: false`) the running one at once."""
        found = library(who)
        if body.wait:
            return found.run(name, body.campaign, body.record, force=body.regenerate)
        result_id = found.start(name, body.campaign, body.record, force=body.regenerate)
        return found.result(result_id)

    @router.post("/actions/{name}/column", status_code=201)
    def add_column(name: str, body: ColumnIn, who: User) -> dict[str, Any]:
        """Add a column made from the action to a campaign: a free step fills at once, a paid one starts paused.
        A column of that name already there is refused (400), never replaced."""
        result = workspace_for(who).add_action_column(body.campaign, name, name=body.name, after=body.after, actor=who)
        return {"campaign": result.campaign, **result.changes.as_dict(), "paused": result.paused}

    @router.post("/actions/{name}/trigger", status_code=202)
    def trigger_action(name: str, body: TriggerIn, who: User) -> dict[str, Any]:
        """The action's webhook: run it on the records the body names (by key) and on the records it creates,
        in the background; answers with the result ids to read at GET /action-results/{id}."""
        if not body.records and not body.create:
            raise RunsheetError("the body names no record", hint="send `records` (keys) or `create` (new records)")
        acting = workspace_for(who)
        found = acting.actions(actor=who, trigger="webhook")
        keys: list[str | int] = [found.record_id(body.campaign, key) for key in body.records]
        if body.create:
            handle = acting.campaign(body.campaign, actor=who, trigger="webhook")
            added, _ = handle.add_rows(body.create)
            keys += list(added)
        started = found.start_many(name, body.campaign, keys)
        return {"action": name, "campaign": body.campaign, "results": started}

    @router.post("/actions/{name}/{switch}")
    def switch_action(name: str, switch: Literal["enable", "disable", "pause", "resume"], who: User) -> dict[str, Any]:
        """Enable or disable (admins); pause or resume (members): a new action runs once resumed. (Declared after
        the other POST /actions/{name}/... routes, which it would otherwise shadow.)"""
        found = library(who)
        chosen = {
            "enable": lambda: found.set_enabled(name, True),
            "disable": lambda: found.set_enabled(name, False),
            "pause": lambda: found.pause(name),
            "resume": lambda: found.resume(name),
        }[switch]
        return chosen()

    @router.get("/action-results")
    def list_results(
        who: User, action: str | None = None, campaign: str | None = None, row: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return library(who).results(action=action, campaign=campaign, row_id=row, limit=min(limit, 1000))

    @router.get("/action-results/{result_id}")
    def read_result(result_id: int, who: User) -> dict[str, Any]:
        return library(who).result(result_id)

    @router.post("/action-results/{result_id}/save")
    def save_result(result_id: int, body: SaveResultIn, who: User) -> dict[str, Any]:
        """Save to Record: the result's text into the record (a timeline entry marked AI generated)."""
        return library(who).save_result(result_id, body.field)

    @router.get("/documents")
    def list_documents(
        who: User, action: str | None = None, campaign: str | None = None, row: int | None = None
    ) -> list[dict[str, Any]]:
        return library(who).documents(action=action, campaign=campaign, row_id=row)

    @router.get("/documents/{document_id}")
    def read_document(document_id: int, who: User) -> dict[str, Any]:
        return library(who).document(document_id)

    @router.get("/campaigns/{name}/records-search")
    def search_records(name: str, q: str, who: User, limit: int = 20) -> list[dict[str, Any]]:
        """Records of a campaign by row id, name, email or domain (for the record page, or a run's `record`)."""
        return library(who).find_records(name, q, min(limit, 200))

    app.include_router(router)
