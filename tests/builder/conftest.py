"""Fixtures for the action builder (engine/builder/): the contacts campaign of the library's tests, the fake
provider with scripted replies, and a builder writing through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine import ActionBuilder, BuilderModel, Campaign, Workspace
from tests.library.conftest import CONTACTS, CONTACTS_SPEC
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess, start_provider


@pytest.fixture
def people(ws: Workspace) -> Campaign:
    ws.apply(CONTACTS_SPEC)
    campaign = ws.campaign("people")
    campaign.add_rows(CONTACTS)
    return campaign


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


@pytest.fixture()
def builder(ws: Workspace, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch) -> ActionBuilder:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    return ws.builder(BuilderModel("openai/fake-builder", api_base=fresh_provider.api_base, api_key_env=KEY_ENV))


def proposal(kind: str, options: dict[str, Any], description: str, changes: str = "new step") -> str:
    """A scripted model reply: a JSON proposal as the builder asks for one."""
    return json.dumps(
        {"kind": kind, "options": options, "description": description, "plan": ["read", "write"], "changes": changes}
    )


def script(provider: ProviderProcess, *replies: Any) -> None:
    provider.control(replies=list(replies))
