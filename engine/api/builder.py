"""The HTTP API's routes for the action builder chat (engine/builder/): describe a change or ask a question,
read the chat, confirm a priced preview, accept a proposal exactly as it was shown, Reset Chat.

The model is named per request (any model the workspace can call; the offline one by default). A key is never
sent: `api_key_env` names the environment variable the server reads it from, as everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from engine import ActionBuilder, BuilderModel, Workspace
from engine.api.users import User


class ModelIn(BaseModel):
    """Which model writes: the offline one (drafts from the built-in templates) unless named."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(default=BuilderModel.model, description="a litellm model name, or openai/NAME with api_base")
    api_base: str | None = Field(default=None, description="an OpenAI-compatible server for the model")
    api_key_env: str | None = Field(default=None, description="the server's environment variable holding the key")
    tools: bool = Field(default=True, description="ask through tool calling; false: in JSON mode")


class ChatIn(ModelIn):
    message: str = Field(description="what the action should do, or a question about it")
    campaign: str | None = Field(default=None, description="check and preview against this campaign")
    attachments: dict[str, str] | None = Field(default=None, description="API documentation to read: name -> text")
    confirm_preview: bool = Field(default=False, description="run a paid preview at the estimate shown")


def add_builder_routes(app: FastAPI, workspace_for: Callable[[str], Workspace]) -> None:
    """Add the builder chat's routes; `workspace_for(user)` is the workspace acting as that user. Added before
    the action library's routes, whose `/actions/{name}/{switch}` would otherwise take `/actions/{name}/chat`."""
    router = APIRouter(tags=["action builder"])

    def builder(who: str, given: ModelIn | None = None) -> ActionBuilder:
        chosen = given or ModelIn()
        model = BuilderModel(chosen.model, api_base=chosen.api_base, api_key_env=chosen.api_key_env, tools=chosen.tools)
        return workspace_for(who).builder(model, actor=who, trigger="api")

    @router.get("/actions/{name}/chat")
    def chat_history(name: str, who: User) -> list[dict[str, Any]]:
        """The action's chat, oldest first: requests, replies with their proposals, accepts."""
        return builder(who).history(name)

    @router.post("/actions/{name}/chat")
    def chat(name: str, body: ChatIn, who: User) -> dict[str, Any]:
        """One turn: a question is answered; a request gets a proposal (diff, estimate, preview). Nothing is
        applied until POST /action-proposals/{id}/accept."""
        return builder(who, body).chat(
            name,
            body.message,
            campaign=body.campaign,
            attachments=body.attachments,
            confirm_preview=body.confirm_preview,
        )

    @router.delete("/actions/{name}/chat")
    def reset_chat(name: str, who: User) -> dict[str, int]:
        """Reset Chat: the action's chat starts over; the action is unchanged."""
        return {"removed": builder(who).reset(name)}

    @router.post("/action-proposals/{proposal_id}/preview")
    def confirm_preview(proposal_id: int, who: User) -> dict[str, Any]:
        """Run a proposal's priced preview, its estimate confirmed by this call."""
        return builder(who).confirm_preview(proposal_id)

    @router.post("/action-proposals/{proposal_id}/accept")
    def accept(proposal_id: int, who: User) -> dict[str, Any]:
        """Apply the proposal exactly as its diff showed it; refused if the action changed since."""
        return builder(who).accept(proposal_id)

    app.include_router(router)
