"""The one seam between Runsheet and AI providers: a completion request in, a completion or a classified failure
out. `complete` picks the transport: the built-in offline model, a lean HTTP client for OpenAI-compatible
endpoints, or litellm for every other provider. Tests swap nothing here; they point `api_base` at a local server.
"""

from __future__ import annotations

from engine.llm.types import Completion, CompletionRequest, ProviderFailure, pick_transport

__all__ = ["Completion", "CompletionRequest", "ProviderFailure", "complete", "pick_transport"]


async def complete(request: CompletionRequest) -> Completion:
    """One attempt at a completion. Raises ProviderFailure (classified, with retryability) on failure."""
    transport = pick_transport(request)
    if transport == "offline":
        from engine.llm.offline import complete_offline

        return complete_offline(request)
    if transport == "direct":
        from engine.llm.direct import complete_direct

        return await complete_direct(request)
    from engine.llm.litellm_transport import complete_litellm

    return await complete_litellm(request)
