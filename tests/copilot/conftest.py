"""Fixtures for Copilot (engine/copilot/): a campaign whose ai step writes through the fake provider, with a
formula and an export downstream of it (the export posts to the receiver), and the fake provider's scripted
replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Campaign, Workspace
from tests.actions import conftest as actions_fixtures
from tests.actions.conftest import Receiver
from tests.runner import conftest as runner_fixtures
from tests.runner.conftest import KEY_ENV
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess

provider, fresh_provider = runner_fixtures.provider, runner_fixtures.fresh_provider
receiver_process, receiver = actions_fixtures.receiver_process, actions_fixtures.receiver

LEADS = [
    {"full_name": "Ada Lovelace", "company": "Analytical"},
    {"full_name": "Grace Hopper", "company": "Cobol"},
]


def leads_spec(api_base: str, receiver: Receiver) -> str:
    return f"""
campaign: leads
columns:
  - {{name: full_name, kind: input}}
  - {{name: company, kind: input}}
  - name: opener
    kind: ai
    model: openai/fake-model
    api_base: {api_base}
    api_key_env: {KEY_ENV}
    tier: fast
    prompt: "Write an opener to {{{{ full_name }}}} at {{{{ company }}}}"
  - {{name: opener_length, kind: formula, expression: "length(opener::VARCHAR)"}}
  - {{name: summary, kind: ai, run: manual, prompt: "Summarise {{{{ company }}}}"}}
  - name: push
    kind: export
    url: "{receiver.base}/hooks/crm"
    fields: [full_name, opener]
"""


@pytest.fixture()
def ws(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    workspace = Workspace.init(tmp_path / "ws")
    workspace.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
    return workspace


@pytest.fixture()
def leads(ws: Workspace, fresh_provider: ProviderProcess, receiver: Receiver) -> Campaign:
    """The leads campaign, run: both openers written by the fake provider and pushed to the receiver."""
    apply_active(ws, leads_spec(fresh_provider.api_base, receiver))
    campaign = ws.campaign("leads")
    campaign.add_rows(LEADS)
    campaign.run()
    return campaign


def script(provider: ProviderProcess, *replies: object) -> None:
    provider.control(replies=list(replies))
