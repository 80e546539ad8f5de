"""Each provider failure ends in the right state after the right attempts, over real HTTP through both
transports (litellm, and the direct client for OpenAI-compatible endpoints)."""

from __future__ import annotations

import pytest

from engine import Status, Workspace
from tests.runner.conftest import ai_spec
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess

TRANSPORTS = ["litellm", "direct"]


def one_cell(
    workspace: Workspace,
    provider: ProviderProcess,
    transport: str,
    company: str,
    *,
    timeout: float = 10.0,
    schema: bool = False,
):  # type: ignore[no-untyped-def]
    apply_active(workspace, ai_spec(provider.api_base, transport=transport, timeout=timeout, schema=schema))
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": company}])
    campaign.run()
    return campaign.cell(1, "research")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_is_stored_with_its_cost(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str
) -> None:
    cell = one_cell(workspace, fresh_provider, transport, "Acme")
    assert (cell.status, cell.value, cell.attempts) == (Status.DONE, "answer: Research Acme", 1)
    assert cell.tokens and cell.tokens > 0 and cell.cost == 1.0
    assert workspace.credits() == 999.0
    assert len(fresh_provider.ledger()["billed"]) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_waits_at_least_retry_after(workspace: Workspace, fresh_provider: ProviderProcess, transport: str) -> None:
    cell = one_cell(workspace, fresh_provider, transport, "Acme [[fake:429x1:1.5]]")
    assert (cell.status, cell.attempts) == (Status.DONE, 2)
    assert cell.latency_ms >= 1500


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_5xx_backs_off_then_succeeds(workspace: Workspace, fresh_provider: ProviderProcess, transport: str) -> None:
    cell = one_cell(workspace, fresh_provider, transport, "Acme [[fake:500x2]]")
    assert (cell.status, cell.attempts, cell.value) == (Status.DONE, 3, "answer: Research Acme")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_5xx_that_persists_ends_as_provider_error(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str
) -> None:
    workspace.set_setting("max_attempts", 2)
    cell = one_cell(workspace, fresh_provider, transport, "Acme [[fake:503]]")
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "provider_error", 2)
    assert cell.error_hint and workspace.credits() == 1000.0  # failures cost no credits


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", ["401", "400"])
def test_client_errors_make_exactly_one_attempt(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str, status: str
) -> None:
    cell = one_cell(workspace, fresh_provider, transport, f"Acme [[fake:{status}]]")
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "provider_error", 1)
    assert sum(fresh_provider.ledger()["attempts"].values()) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_a_hang_or_slow_drip_ends_at_the_deadline(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str, mode: str
) -> None:
    workspace.set_setting("max_attempts", 1)
    cell = one_cell(workspace, fresh_provider, transport, f"Acme [[fake:{mode}]]", timeout=2.0)
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "timeout", 1)
    assert 1000 <= cell.latency_ms <= 3000


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_responses_are_retried_then_fail(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str
) -> None:
    workspace.set_setting("max_attempts", 2)
    cell = one_cell(workspace, fresh_provider, transport, "Acme [[fake:malformed]]")
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "provider_error", 2)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_json_output_is_validated_and_retried(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str
) -> None:
    cell = one_cell(workspace, fresh_provider, transport, "Acme [[fake:invalidx1]]", schema=True)
    assert cell.status is Status.DONE and cell.attempts == 2
    assert '"answer"' in cell.value and '"score"' in cell.value


def test_output_that_never_fits_the_schema_is_invalid_output(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    cell = one_cell(workspace, fresh_provider, "direct", "Acme [[fake:invalid]]", schema=True)
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "invalid_output", 3)
    assert cell.error_hint == "adjust the prompt or schema, then run again"
