"""Fixtures for the action builder (engine/builder/): the contacts campaign of the library's tests, the fake
provider with scripted replies, and a builder writing through it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import ActionBuilder, BuilderModel, Workspace
from tests.library import conftest as library_fixtures
from tests.runner import conftest as runner_fixtures
from tests.runner.conftest import KEY_ENV
from tests.support.provider import ProviderProcess

# The contacts campaign of the library's tests and the fake provider of the runner's, shared rather than copied.
people = library_fixtures.people
provider, fresh_provider = runner_fixtures.provider, runner_fixtures.fresh_provider


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
