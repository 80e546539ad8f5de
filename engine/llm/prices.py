"""What a provider charges for a call, from litellm's own cost map as shipped in its package
(`model_prices_and_context_window_backup.json`, the map litellm reads with LITELLM_LOCAL_MODEL_COST_MAP=True):
read as a file, never fetched, and without importing litellm (seconds and hundreds of MiB), so the direct
transport prices its calls as the litellm one does. Unknown models have no price (None)."""

from __future__ import annotations

import importlib.util
import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
COST_MAP = "model_prices_and_context_window_backup.json"


@cache
def cost_map() -> dict[str, Any]:
    """litellm's local cost map by model name (empty when litellm or its map is missing)."""
    found = importlib.util.find_spec("litellm")  # finds the package without running it
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / COST_MAP
        if path.is_file():
            try:
                return dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:
                log.warning("litellm's cost map %s could not be read: %s", path, err)
    return {}


def provider_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """What `model` (as a step names it, `openai/gpt-4o-mini` or `gpt-4o-mini`) charges for these tokens, in
    the provider's currency (USD), or None when the cost map does not know its prices."""
    prices = cost_map()
    for name in (model, model.split("/", 1)[-1]):
        entry = prices.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            rate_in = float(entry.get("input_cost_per_token") or 0.0)
            rate_out = float(entry.get("output_cost_per_token") or 0.0)
            return prompt_tokens * rate_in + completion_tokens * rate_out
    return None
