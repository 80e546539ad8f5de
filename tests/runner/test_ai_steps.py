"""The ai step on the offline model and the fake provider: templates, context, JSON fields, the cache, Run Again,
estimates and the activity log."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from engine import SpecError, Status, Workspace
from engine.cache import ResultCache
from tests.runner.conftest import ai_spec
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess

OFFLINE = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: title, kind: input}
  - name: research
    kind: ai
    required: [company]
    prompt: "Research {{ company }} for a {{ title }}. ICP: {{ context.icp }}"
  - name: fit
    kind: ai
    tier: fast
    prompt: "Score {{ company }}: {{ research }}"
    output_schema: {type: object, properties: {score: {type: integer, minimum: 0, maximum: 100},
                    reason: {type: string}}, required: [score, reason]}
  - name: score
    kind: formula
    expression: "(fit->>'score')::INTEGER"
  - name: opener
    kind: ai
    run: manual
    prompt: "Opener for {{ title }} at {{ company }} because {{ fit.reason }}"
  - name: plain
    kind: ai
    prompt: "About {{ company }}"
"""


@pytest.fixture()
def offline(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    ws.set_context("icp", "B2B SaaS")
    ws.apply(OFFLINE)
    ws.campaign("c").add_rows([{"company": f"Acme{i}", "title": "CTO"} for i in range(1, 6)])
    return ws


def test_offline_answers_are_labelled_deterministic_and_free(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    report = campaign.run()
    assert report.counts()["research"] == {"done": 5} and report.counts()["score"] == {"done": 5}
    research = campaign.cell(1, "research")
    assert research.value.startswith("[offline model] Research Acme1 for a CTO. ICP B2B SaaS")
    assert research.cost == 0 and offline.credits() == 1000
    fit = json.loads(campaign.cell(1, "fit").value)
    assert 0 <= fit["score"] <= 100 and campaign.cell(1, "score").value == fit["score"]
    detail = json.loads(research.detail)
    assert (
        detail["model"] == "offline" and detail["messages"][-1]["content"] == "Research Acme1 for a CTO. ICP: B2B SaaS"
    )
    # the same inputs in another workspace give the same answer
    assert campaign.cell(2, "research").value != research.value


def test_json_fields_reach_templates(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    campaign.run()
    campaign.run(["opener"], rows=[1])
    reason = json.loads(campaign.cell(1, "fit").value)["reason"]
    prompt = json.loads(campaign.cell(1, "opener").detail)["messages"][-1]["content"]
    assert prompt == f"Opener for CTO at Acme1 because {reason}"


def test_editing_context_makes_only_its_readers_stale(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    campaign.run()
    offline.set_context("icp", "Fintech")
    counts = campaign.status_counts()
    assert counts["research"] == {"stale": 5}
    assert counts["plain"] == {"done": 5} and counts["fit"] == {"done": 5}
    assert offline.set_context("icp", "Fintech") == []  # unchanged text: nothing goes stale
    report = campaign.run()
    assert report.counts()["research"] == {"done": 5}
    assert "ICP: Fintech" in json.loads(campaign.cell(1, "research").detail)["messages"][-1]["content"]
    offline.set_context("brand", "unrelated")
    assert campaign.status_counts()["research"] == {"done": 5}


def test_missing_required_field_is_a_cell_error_with_the_hint(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    campaign.add_rows([{"company": " ", "title": "CEO"}])
    campaign.run()
    cell = campaign.cell(6, "research")
    assert (cell.status, cell.error_code, cell.error_hint) == (
        Status.ERROR,
        "missing_required_field",
        "enrich the record first",
    )
    assert campaign.cell(6, "fit").error_code == "upstream_error"


def test_estimate_counts_calls_cache_hits_credits_and_downstream(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    first = campaign.estimate()
    by_column = {c.column: c for c in first.columns}
    assert by_column["research"].calls == 5 and not by_column["research"].downstream
    assert by_column["fit"].downstream and by_column["fit"].calls == 5
    assert campaign.status_counts()["research"] == {"queued": 5}  # a dry run stores nothing
    campaign.run()
    assert campaign.estimate().calls == 0
    again = campaign.estimate(["research"], force=True)
    assert {c.column: (c.calls, c.cache_hits) for c in again.columns}["research"] == (
        5,
        0,
    )  # Run Again bypasses


def test_cache_hits_cost_nothing_across_campaigns(
    tmp_path: Path, fresh_provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNSHEET_TEST_PROVIDER_KEY", "k")
    ws = Workspace.init(tmp_path / "ws")
    apply_active(ws, ai_spec(fresh_provider.api_base, transport="direct"))
    apply_active(
        ws, ai_spec(fresh_provider.api_base, transport="direct").replace("campaign: enrich", "campaign: other")
    )
    for name in ("enrich", "other"):
        ws.campaign(name).add_rows([{"company": f"Acme{i}"} for i in range(10)])
    assert ws.campaign("enrich").run().counts()["research"] == {"done": 10}
    estimate = ws.campaign("other").estimate()
    assert {c.column: c.cache_hits for c in estimate.columns}["research"] == 10
    ws.campaign("other").run()
    assert len(fresh_provider.ledger()["billed"]) == 10
    run = ws.runs(1)[0]
    assert (run["cache_hits"], run["credits"], run["credits_saved"]) == (10, 0, 10)
    assert ws.credits() == 990
    cell = ws.campaign("other").cell(1, "research")
    assert cell.cached is True and cell.cost == 0 and cell.value == "answer: Research Acme0"
    # Run Again bypasses the cache and pays for a new sample
    ws.campaign("other").run(["research"], rows=[1], force=True)
    assert len(fresh_provider.ledger()["billed"]) == 11
    assert ws.campaign("other").cell(1, "research").cached is False


def test_the_cache_is_configured_for_the_job(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    cache.put("k", {"value": "v"})
    assert cache.get("k") == {"value": "v"}
    settings = dict(cache._cache._sql("SELECT key, value FROM Settings").fetchall())  # noqa: SLF001
    assert settings["eviction_policy"] == "none"
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert type(cache._cache.disk).__name__ == "JsonValueDisk"  # noqa: SLF001
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir() if p.is_file())
    assert b'{"value": "v"}' in stored  # JSON text, not a pickle
    cache.close()


def test_every_execution_is_in_the_activity_log(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    campaign.run()
    rows = [a for a in offline.activity(1000) if a["column_name"] == "research" and a["row_id"] is not None]
    assert len(rows) == 5
    assert {(a["row_id"], a["outcome"], a["actor"], a["trigger"]) for a in rows} == {
        (r, "done", "api", "api") for r in range(1, 6)
    }
    assert all(a["tokens"] > 0 and a["duration_ms"] is not None for a in rows)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("{name: a, kind: ai, prompt: '{{ nope }}'}", "nope"),
        ("{name: a, kind: ai, prompt: '{{ company '}", "invalid template"),
        (
            "{name: a, kind: ai, prompt: x, inputs: [company], output_schema: {type: 12}}",
            "not a valid JSON schema",
        ),
        ("{name: a, kind: ai, prompt: '{{ company }}', api_key: sk-123}", "unknown option 'api_key'"),
        ("{name: a, kind: ai, prompt: '{{ company }}', tier: huge}", "tier"),
        ("{name: a, kind: ai, prompt: '{{ company }}', temperature: 5}", "temperature"),
    ],
)
def test_bad_ai_specs_are_refused_naming_the_column(tmp_path: Path, column: str, message: str) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(SpecError) as caught:
        ws.apply(f"campaign: c\ncolumns:\n  - {{name: company, kind: input}}\n  - {column}\n")
    assert message in str(caught.value) and caught.value.column == "a"


def test_a_template_that_fails_on_one_row_fails_that_cell_only(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply("""
campaign: t
columns:
  - {name: n, kind: input, type: BIGINT}
  - {name: ratio, kind: ai, prompt: "{{ 10 // n }}"}
""")
    campaign = ws.campaign("t")
    campaign.add_rows([{"n": 2}, {"n": 0}, {"n": 5}])
    report = campaign.run()
    assert report.counts()["ratio"] == {"done": 2, "error": 1}
    cell = campaign.cell(2, "ratio")
    assert (cell.error_code, cell.error_hint) == (
        "template_error",
        "fix the prompt template or the input value",
    )
    assert "division" in (cell.error_message or "")


def test_run_only_the_cells_never_computed(offline: Workspace) -> None:
    campaign = offline.campaign("c")
    campaign.run()
    campaign.run(["opener"], rows=[1])
    offline.set_context("icp", "Fintech")  # research goes stale everywhere
    assert campaign.estimate(["opener"], only_empty=True).calls == 4
    report = campaign.run(["opener"], only_empty=True)
    assert report.counts()["opener"] == {"done": 4}
    assert campaign.status_counts()["research"] == {"stale": 5}  # stale cells were not part of it
