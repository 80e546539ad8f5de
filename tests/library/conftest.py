"""Fixtures for the action library (engine/actions/): a workspace with a small campaign of contacts, and the fake
provider for actions that pay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Campaign, Workspace
from tests.support.provider import ProviderProcess, start_provider

CONTACTS_SPEC = """
campaign: people
columns:
  - {name: full_name, kind: input}
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: title, kind: input}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
"""

CONTACTS = [
    {"full_name": "Ada Lovelace", "email": "ada@analytical.io", "company": "Analytical", "title": "CTO"},
    {"full_name": "Grace Hopper", "email": "grace@cobol.dev", "company": "Cobol", "title": "VP Engineering"},
    {"full_name": "Alan Turing", "email": "alan@bletchley.uk", "company": "Bletchley", "title": ""},
]


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


def workspace_at(path: Path, actor: str) -> Workspace:
    return Workspace(path, actor=actor)
