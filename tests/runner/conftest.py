"""Fixtures for the paid runner: the fake provider process and workspaces with AI steps pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Workspace
from tests.support.provider import ProviderProcess, start_provider

KEY_ENV = "RUNSHEET_TEST_PROVIDER_KEY"


@pytest.fixture(scope="session")
def provider() -> Iterator[ProviderProcess]:
    process = start_provider(lifetime=1800)
    yield process
    process.stop()


@pytest.fixture()
def fresh_provider(provider: ProviderProcess) -> ProviderProcess:
    provider.reset()
    provider.control(latency=0.0, mode=None)
    return provider


def ai_spec(
    api_base: str,
    *,
    transport: str = "auto",
    run: str = "auto",
    timeout: float = 10.0,
    schema: bool = False,
    extra: str = "",
) -> str:
    output = (
        "\n    output_schema: {type: object, properties: {answer: {type: string}, score: {type: integer}},"
        " required: [answer, score]}"
        if schema
        else ""
    )
    return f"""
campaign: enrich
columns:
  - {{name: company, kind: input}}
  - name: research
    kind: ai
    run: {run}
    model: openai/fake-model
    api_base: {api_base}
    api_key_env: {KEY_ENV}
    transport: {transport}
    tier: fast
    timeout: {timeout}
    prompt: "Research {{{{ company }}}}"{output}
  - name: research_length
    kind: formula
    expression: "length(research::VARCHAR)"
{extra}"""


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv(KEY_ENV, "sk-test-key")
    return Workspace.init(tmp_path / "ws")
