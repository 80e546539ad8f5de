"""Completions through litellm, for every provider it covers. Imported only when an AI step runs on a provider
(importing litellm costs seconds and hundreds of MiB). Its own retries and the SDK's are off: the runner retries,
so every attempt is counted once."""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

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


@cache
def litellm_module() -> ModuleType:
    # Without these, importing litellm fetches its cost map (and tokenizers) from the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.drop_params = True
    return litellm


async def complete_litellm(request: CompletionRequest) -> Completion:
    litellm = litellm_module()
    kwargs = {k: v for k, v in request.params.items() if v is not None}
    kwargs.update(output_params(request))
    try:
        response = await litellm.acompletion(
            model=request.model,
            messages=request.message_dicts(),
            api_base=request.api_base,
            api_key=request.api_key(),
            num_retries=0,
            max_retries=0,
            **kwargs,
        )
    except Exception as err:  # litellm maps every provider's errors onto its own classes
        raise _classify(litellm, err) from err
    try:
        message = response.choices[0].message
        calls = getattr(message, "tool_calls", None) or []  # asked through a tool: its arguments are the answer
        text = calls[0].function.arguments if calls else message.content or ""
    except (AttributeError, IndexError) as err:
        raise ProviderFailure(ErrorCode.PROVIDER_ERROR, "the provider sent no choices", retryable=True) from err
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost: float | None
    try:
        cost = float(litellm.completion_cost(completion_response=response, model=request.model))
    except Exception:  # litellm could not price the response: price the step's model from the same cost map
        cost = None
    if not cost:
        cost = provider_cost(request.model, prompt_tokens, completion_tokens)
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        provider_cost=cost,
        model=request.model,
    )


def _classify(litellm: ModuleType, err: Exception) -> ProviderFailure:
    message = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    if isinstance(err, litellm.Timeout):
        return ProviderFailure(ErrorCode.TIMEOUT, message, retryable=True)
    status = getattr(err, "status_code", None)
    retry_after = None
    # litellm keeps the provider's headers in different places depending on the path the error took
    for headers in (
        getattr(err, "litellm_response_headers", None),
        getattr(err, "headers", None),
        getattr(getattr(err, "response", None), "headers", None),
    ):
        if headers and hasattr(headers, "get") and headers.get("retry-after") is not None:
            retry_after = parse_retry_after(headers.get("retry-after"))
            break
    if isinstance(status, int) and status >= 400:
        return classify_status(status, message, retry_after)
    if isinstance(err, litellm.APIConnectionError | litellm.APIError):
        return ProviderFailure(ErrorCode.PROVIDER_ERROR, message, retryable=True)
    return ProviderFailure(ErrorCode.PROVIDER_ERROR, message, retryable=False)
