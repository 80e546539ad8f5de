"""The HTTP API's routes for Copilot (engine/copilot/): open the chat of a cell or an action result, send a
message (one model call), save a reply to the record or pin it as the cell's value, read and reset a chat.

Roles are those of running the step or action: a viewer's token reads chats; sending, saving or resetting is
refused with 403 `permission_denied` and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from engine import Copilot, Workspace
from engine.api.users import User


class CopilotStartIn(BaseModel):
    """The result to continue: a cell (campaign, row, column) or an action result (result)."""

    model_config = ConfigDict(extra="forbid")
    campaign: str | None = None
    row: int | None = None
    column: str | None = None
    result: int | None = Field(default=None, description="an action result's id (GET /action-results)")
    model: str | None = Field(default=None, description="the model that answers; default: the step's, or offline")
    api_base: str | None = None
    api_key_env: str | None = None


class CopilotSayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(description='how the result should change, e.g. "shorter"')
    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None


class CopilotSaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Literal["record", "cell"]
    message_id: int | None = Field(default=None, description="the reply to use; default: the latest")
    field: str = Field(default="notes", description="with to=record: notes (a line is appended) or a field")
    column: str | None = Field(default=None, description="with to=cell: the step column (default: the source's)")


def add_copilot_routes(app: FastAPI, workspace_for: Callable[[str], Workspace]) -> None:
    """Add Copilot's routes; `workspace_for(user)` is the workspace acting as that user."""
    router = APIRouter(tags=["copilot"])

    def copilot(who: str, model: str | None = None, api_base: str | None = None, key: str | None = None) -> Copilot:
        return workspace_for(who).copilot(model, api_base=api_base, api_key_env=key, actor=who, trigger="api")

    @router.post("/copilot/chats")
    def start_chat(body: CopilotStartIn, who: User) -> dict[str, Any]:
        """Send to Copilot: the chat kept for the result, or a new one seeded with it."""
        found = copilot(who, body.model, body.api_base, body.api_key_env)
        return found.start(campaign=body.campaign, row=body.row, column=body.column, result=body.result)

    @router.get("/copilot/chats/{chat_id}")
    def show_chat(chat_id: int, who: User) -> dict[str, Any]:
        return copilot(who).show(chat_id)

    @router.post("/copilot/chats/{chat_id}/messages")
    def say(chat_id: int, body: CopilotSayIn, who: User) -> dict[str, Any]:
        """One turn: the reply (role `assistant`), or why there is none (role `error`; nothing changed)."""
        return copilot(who, body.model, body.api_base, body.api_key_env).say(chat_id, body.message)

    @router.post("/copilot/chats/{chat_id}/save")
    def save(chat_id: int, body: CopilotSaveIn, who: User) -> dict[str, Any]:
        """Save a reply to the record, or pin it as the cell's value (exports wait until it is confirmed)."""
        return copilot(who).save(chat_id, to=body.to, message_id=body.message_id, field=body.field, column=body.column)

    @router.post("/copilot/chats/{chat_id}/reset")
    def reset(chat_id: int, who: User) -> dict[str, int]:
        return {"removed": copilot(who).reset(chat_id)}

    app.include_router(router)
