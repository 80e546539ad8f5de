"""A lean client for OpenAI-compatible endpoints (`api_base` + `openai/<model>`): the same request body litellm
sends, the same response fields read and the same failure classification, at about a tenth of litellm's CPU per
call, which is what lets one process keep hundreds of calls in flight. Other providers go through litellm.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from engine.llm.prices import provider_cost
from engine.llm.types import (
    Completion,
    CompletionRequest,
    ProviderFailure,
    classify_status,
    output_params,
    parse_retry_after,
)
from engine.types import ErrorCode

_sessions: dict[int, aiohttp.ClientSession] = {}


def _session() -> aiohttp.ClientSession:
    """One pooled session per event loop (a session cannot cross loops)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(id(loop))
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        _sessions[id(loop)] = session
    return session


async def close_sessions() -> None:
    """Close this loop's session (the runner calls it before its loop ends)."""
    session = _sessions.pop(id(asyncio.get_running_loop()), None)
    if session is not None:
        await session.close()


def request_body(request: CompletionRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model.split("/", 1)[1], "messages": request.message_dicts()}
    body.update({k: v for k, v in request.params.items() if v is not None})
    body.update(output_params(request))
    return body


async def complete_direct(request: CompletionRequest) -> Completion:
    assert request.api_base, "the direct transport needs api_base"
    url = request.api_base.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    key = request.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        async with _session().post(url, data=json.dumps(request_body(request)), headers=headers) as response:
            raw = await response.read()
            if response.status >= 400:
                message = f"HTTP {response.status}: {raw[:200].decode('utf-8', 'replace')}"
                raise classify_status(response.status, message, parse_retry_after(response.headers.get("Retry-After")))
    except aiohttp.ClientError as err:
        raise ProviderFailure(ErrorCode.PROVIDER_ERROR, f"connection failed: {err}", retryable=True) from err
    try:
        payload = json.loads(raw)
        message = payload["choices"][0]["message"]
        calls = message.get("tool_calls") or []  # asked through a tool: the call's arguments are the answer
        text = calls[0]["function"]["arguments"] if calls else message["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise ProviderFailure(
            ErrorCode.PROVIDER_ERROR, f"the provider sent a malformed response: {raw[:120]!r}", retryable=True
        ) from err
    usage = payload.get("usage") or {}
    prompt_tokens, completion_tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        provider_cost=provider_cost(request.model, prompt_tokens, completion_tokens),
        model=request.model,
    )
