"""`provider_cost` (issue 15): a call to a model litellm's local cost map knows is priced from that map, on the
direct transport and the litellm one alike, over real HTTP to the fake OpenAI-compatible provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import RunOptions, Workspace
from engine.llm.prices import provider_cost
from tests.runner.conftest import KEY_ENV, ai_spec
from tests.support.provider import ProviderProcess

MODEL = "openai/gpt-4o-mini"


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_provider_cost_is_priced_for_a_known_model_on_both_transports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_provider: ProviderProcess, transport: str
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-key")
    workspace = Workspace.init(tmp_path / "ws")
    spec = ai_spec(fresh_provider.api_base, transport=transport).replace("openai/fake-model", MODEL)
    result = workspace.apply(spec)
    for column in result.paused:
        workspace.resume(result.campaign, column, run=False)
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": "Acme"}, {"company": "Globex"}])
    campaign.run(options=RunOptions(concurrency=2))
    cells = [campaign.cell(r, "research") for r in (1, 2)]
    assert all(c.status == "done" for c in cells)
    for cell in cells:
        assert cell.provider_cost is not None and cell.provider_cost > 0
    run = workspace.runs(1)[0]
    assert run["provider_cost"] == pytest.approx(sum(c.provider_cost or 0 for c in cells))


def test_the_cost_map_prices_known_models_only() -> None:
    # gpt-4o-mini in litellm's map: 0.15 USD per million input tokens, 0.6 per million output tokens
    assert provider_cost(MODEL, 1_000_000, 0) == pytest.approx(0.15)
    assert provider_cost("gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.6)
    assert provider_cost("openai/fake-model", 100, 100) is None
