"""Fixtures for the action library (engine/actions/): a workspace with a small campaign of contacts, and the fake
provider for actions that pay."""

from __future__ import annotations

import pytest

from engine import Campaign, Workspace
from tests.runner import conftest as runner_fixtures

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


# The fake provider of the runner's tests, shared rather than copied.
provider, fresh_provider = runner_fixtures.provider, runner_fixtures.fresh_provider
