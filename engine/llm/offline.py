"""The built-in `offline` model: no network, no cost, a deterministic answer derived from the rendered prompt.

Its text says plainly that it is offline. With a JSON schema it returns an object that satisfies the schema, its
values drawn from a hash of the prompt, so downstream columns and tests see stable, valid data.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from engine.llm.types import OFFLINE_MODEL, Completion, CompletionRequest

LABEL = "[offline model]"
WORDS = re.compile(r"\w[\w'\-.@]*")


def complete_offline(request: CompletionRequest) -> Completion:
    prompt = "\n".join(content for _, content in request.messages)
    digest = hashlib.sha256(prompt.encode()).digest()
    if request.schema is not None:
        text = json.dumps(_instance(request.schema, digest, "$"), sort_keys=True)
    else:
        text = _text(request.messages[-1][1] if request.messages else "", digest)
    tokens_in = max(1, len(prompt) // 4)
    return Completion(
        text=text,
        prompt_tokens=tokens_in,
        completion_tokens=max(1, len(text) // 4),
        provider_cost=0.0,
        model=OFFLINE_MODEL,
    )


def _text(last_message: str, digest: bytes) -> str:
    """A short, readable answer: the label, the prompt's own words condensed, and a fingerprint."""
    words = WORDS.findall(last_message)
    gist = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
    return f"{LABEL} {gist} (#{digest[:4].hex()})"


def _number(digest: bytes, path: str) -> int:
    return int.from_bytes(hashlib.sha256(digest + path.encode()).digest()[:8], "big")


def _instance(schema: dict[str, Any], digest: bytes, path: str) -> Any:
    """A value valid for `schema` (the JSON-schema subset people write for LLM output), chosen by the digest."""
    if "enum" in schema:
        options = list(schema["enum"])
        return options[_number(digest, path) % len(options)]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    n = _number(digest, path)
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _instance(sub, digest, f"{path}.{name}") for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        low = int(schema.get("minItems", 1))
        high = max(low, int(schema.get("maxItems", low + 2)))
        return [_instance(items, digest, f"{path}[{i}]") for i in range(low + n % (high - low + 1))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", 100)
        value = int(low) + n % (int(high) - int(low) + 1)
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return bool(n % 2)
    if kind == "null":
        return None
    return f"{LABEL} {path.lstrip('$.') or 'value'} #{n % 0xFFFF:04x}"
