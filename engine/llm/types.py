"""What a completion request and its answer look like, and how a failed attempt is described."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.redaction import read_secret
from engine.types import ErrorCode

Transport = Literal["auto", "litellm", "direct"]
OFFLINE_MODEL = "offline"


@dataclass(frozen=True)
class CompletionRequest:
    """A chat completion to make. `api_key_env` names the environment variable holding the key: keys are read
    at call time and never stored (not in the spec, the cache, the database or the logs)."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, top_p, seed
    schema: dict[str, Any] | None = None
    api_base: str | None = None
    # With a schema: the answer is asked for as a call of the function `tool` whose parameters are the schema
    # (tool calling); without one, in JSON mode. Not part of any cache key: only the builder's calls use it.
    tool: str | None = None
    api_key_env: str | None = None
    transport: Transport = "auto"

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def api_key(self) -> str | None:
        return read_secret(self.api_key_env) if self.api_key_env else None


def output_params(request: CompletionRequest) -> dict[str, Any]:
    """How the request asks for its answer's form, as OpenAI's API spells it: a forced call of `request.tool`
    with the schema as its parameters, JSON mode for a schema without a tool, nothing for free text."""
    if request.schema is None:
        return {}
    if request.tool is None:
        return {"response_format": {"type": "json_object"}}
    function = {
        "name": request.tool,
        "description": "Give your whole answer as this function's arguments.",
        "parameters": request.schema,
    }
    return {
        "tools": [{"type": "function", "function": function}],
        "tool_choice": {"type": "function", "function": {"name": request.tool}},
    }


@dataclass(frozen=True)
class Completion:
    """One answer: its text and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider_cost: float | None = None
    model: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ProviderFailure(Exception):
    """A failed attempt, classified into a cell error code. `retryable` attempts are retried with backoff;
    `retry_after` is the provider's own wait (seconds), honoured as a minimum. An attempt the provider answered
    (and billed) but whose answer was refused carries that answer's tokens and cost, so they are recorded."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.tokens = 0
        self.provider_cost: float | None = None

    def billed(self, tokens: int, provider_cost: float | None) -> ProviderFailure:
        """The same failure, carrying what the refused answer cost."""
        self.tokens, self.provider_cost = tokens, provider_cost
        return self


def classify_status(status: int, message: str, retry_after: float | None = None) -> ProviderFailure:
    """The failure an HTTP status stands for: 429 is rate limiting, 408/409/5xx are transient, other 4xx are
    permanent (a bad key or a bad request does not improve by asking again)."""
    if status == 429:
        return ProviderFailure(ErrorCode.RATE_LIMITED, message, retryable=True, retry_after=retry_after, status=status)
    if status in (408, 409) or status >= 500:
        return ProviderFailure(
            ErrorCode.PROVIDER_ERROR, message, retryable=True, retry_after=retry_after, status=status
        )
    return ProviderFailure(ErrorCode.PROVIDER_ERROR, message, retryable=False, status=status)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; rare from LLM providers, and the backoff still applies


def pick_transport(request: CompletionRequest) -> str:
    """offline for the built-in model; direct for OpenAI-compatible endpoints given by `api_base` (a lean client
    with the same request, response and error semantics, at a tenth of litellm's CPU per call); litellm else."""
    if request.model == OFFLINE_MODEL:
        return "offline"
    if request.transport == "litellm":
        return "litellm"
    if request.transport == "direct" or (request.api_base and request.model.startswith("openai/")):
        return "direct"
    return "litellm"
