"""What one Copilot turn sends (the instructions with the chat's seed, the chat so far, the new message) and
which model answers it when none was chosen (the source's ai step's, when its key is set; else the offline one)."""

from __future__ import annotations

import json
import os
from typing import Any

from engine.builder.model import BuilderModel
from engine.llm.types import OFFLINE_MODEL

HISTORY_MESSAGES = 12  # earlier messages of the chat the model is shown
SYSTEM = """You are Runsheet's Copilot. A RevOps user is refining one result that a step produced for one record \
of a campaign. Below are the record, the step (its spec and description), the prompt it sent and its result. \
Each message of the user asks for a change ("shorter", "mention their Series B"): answer with the new version of \
the result only, ready to be saved to the record or used as the cell's value, with no preamble."""


def model_for(options: dict[str, Any]) -> BuilderModel:
    """The model of the source's ai step, when its key is set; else the offline model."""
    model = options.get("model")
    if not isinstance(model, str) or model == OFFLINE_MODEL:
        return BuilderModel()
    key_env = options.get("api_key_env")
    if isinstance(key_env, str) and not os.environ.get(key_env):
        return BuilderModel()
    return BuilderModel(
        model,
        api_base=options.get("api_base"),
        api_key_env=key_env,
        transport=options.get("transport", "auto"),
        tier=str(options.get("tier", "standard")),
        timeout=float(options.get("timeout", 120.0)),
    )


def conversation(chat: dict[str, Any], message: str) -> list[tuple[str, str]]:
    """The messages one turn sends: the instructions with the seed, the chat so far (turns that failed left
    out), then the user's new message."""
    seed = chat["seed"]
    step = seed.get("step", {})
    parts = [
        SYSTEM,
        "## The record\n" + json.dumps(seed.get("record", {}), default=str, indent=1),
        f"## The step: {step.get('name')} ({step.get('kind')})\n" + json.dumps(step.get("options", {}), default=str),
    ]
    if step.get("description"):
        parts.append("## What the step does\n" + str(step["description"]))
    if seed.get("prompt"):
        parts.append("## The prompt it sent\n" + str(seed["prompt"]))
    parts.append("## Its result\n" + str(seed.get("result", "")))
    history: list[tuple[str, str]] = []
    messages = chat["messages"]
    for index, earlier in enumerate(messages):
        answered = index + 1 < len(messages) and messages[index + 1]["role"] == "assistant"
        if earlier["role"] == "assistant" or (earlier["role"] == "user" and answered):
            history.append((earlier["role"], earlier["content"]))
    return [("system", "\n\n".join(parts)), *history[-HISTORY_MESSAGES:], ("user", message)]
