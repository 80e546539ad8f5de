"""Issue 15, "Retry what failed", over real HTTP: after a provider outage, the cells left in provider_error are not
retried by a plain run (rule 9), and `run --errors` (a RunSelection with `errors`) computes exactly them once the
provider is back, billing each once and feeding downstream."""

from __future__ import annotations

from engine import RunSelection, Status, Workspace
from tests.runner.conftest import ai_spec
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess


def test_cells_failed_in_an_outage_are_retried_only_when_asked(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": f"Acme{i}"} for i in range(1, 6)])
    campaign.run()
    fresh_provider.control(mode="401")  # the outage: every call is refused, the cells end in provider_error
    campaign.add_rows([{"company": f"Late{i}"} for i in range(6, 9)])
    outage = campaign.run()
    assert outage.counts()["research"] == {"error": 3}
    assert {campaign.cell(r, "research").error_code for r in (6, 7, 8)} == {"provider_error"}
    assert campaign.errors() == {"provider_error": 3, "upstream_error": 3}

    fresh_provider.control(mode=None)  # the provider is back
    fresh_provider.reset()
    plain = campaign.run()
    assert plain.counts() == {} and fresh_provider.ledger()["requests"] == 0  # rule 9: not retried unasked
    assert campaign.estimate(RunSelection(errors=True)).calls == 3

    retried = campaign.run(RunSelection.of(["research"], errors=True, error_code="provider_error"))
    assert retried.counts()["research"] == {"done": 3}
    assert fresh_provider.ledger()["requests"] == 3 and len(fresh_provider.ledger()["billed"]) == 3
    for row in (6, 7, 8):
        assert campaign.cell(row, "research").value == f"answer: Research Late{row}"
        assert campaign.cell(row, "research_length").status is Status.DONE  # downstream followed
    for row in range(1, 6):
        assert campaign.cell(row, "research").run_id != retried.run_id  # the good cells were left alone
    assert campaign.errors() == {}
