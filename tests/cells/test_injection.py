"""Context injection: an ai step that names no field is given the whole record and the global context in a
block after its prompt (checked on the rendered prompt its cell's provenance keeps); `context:` narrows the
documents, `inject: false` turns the block off, `{{ record }}` / `{{ context }}` place the parts; keys cover
exactly what was injected, so a context edit stales exactly its readers and a new field stales the record's
readers; specs that do not use injection keep their versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import SpecError, Status, Workspace
from engine.campaign import Campaign
from engine.spec import load_spec, parse_spec

FIELDS = """
campaign: p
columns:
  - {name: company, kind: input}
  - {name: title, kind: input}
  - {name: website, kind: input}
  - {name: tags, kind: input, type: JSON}
  - {name: employees, kind: input, type: BIGINT}
"""
ROW = {"company": "Acme", "title": "CTO", "website": None, "tags": '["saas", "b2b"]', "employees": 40}
RECORD_LINES = 'company: Acme\ntitle: CTO\ntags: ["saas","b2b"]\nemployees: 40'  # spec order; website is empty


def prompt_sent(campaign: Campaign, column: str, row_id: int = 1) -> str:
    """The user message the cell's call sent, from its provenance (the offline model makes the call)."""
    cell = campaign.cell(row_id, column)
    assert cell.status is Status.DONE, (cell.status, cell.error_message)
    messages = json.loads(cell.detail)["messages"]
    return str(messages[-1]["content"])


def with_steps(ws: Workspace, steps: str) -> Campaign:
    ws.apply(FIELDS + steps)
    campaign = ws.campaign("p")
    campaign.add_rows([ROW])
    campaign.run()
    return campaign


@pytest.fixture
def documents(ws: Workspace) -> Workspace:
    ws.set_context("offer", "Onboarding in a week.")
    ws.set_context("icp", "B2B SaaS, 20-500 people.")
    ws.set_context("brand", "Plain words.")
    return ws


def test_a_prompt_that_names_no_field_receives_every_field_and_every_document(documents: Workspace) -> None:
    campaign = with_steps(documents, "  - {name: pitch, kind: ai, prompt: 'Write a pitch.'}\n")
    assert prompt_sent(campaign, "pitch") == (
        "Write a pitch.\n\n## Record\n" + RECORD_LINES + "\n\n## Context\n"
        "### brand\nPlain words.\n\n### icp\nB2B SaaS, 20-500 people.\n\n### offer\nOnboarding in a week."
    )
    pitch = campaign.spec.column("pitch")
    assert pitch.deps == ("company", "employees", "tags", "title", "website")
    assert pitch.context == ("*",)


def test_narrowing_shows_only_the_named_documents_by_name(documents: Workspace) -> None:
    campaign = with_steps(documents, "  - {name: fit, kind: ai, prompt: 'Score the fit.', context: [offer, icp]}\n")
    assert prompt_sent(campaign, "fit") == (
        "Score the fit.\n\n## Record\n" + RECORD_LINES + "\n\n## Context\n"
        "### icp\nB2B SaaS, 20-500 people.\n\n### offer\nOnboarding in a week."
    )
    assert campaign.spec.column("fit").context == ("icp", "offer")


def test_inject_false_sends_the_prompt_alone_and_true_adds_the_block_to_any_prompt(documents: Workspace) -> None:
    campaign = with_steps(
        documents,
        """
  - {name: plain, kind: ai, prompt: "Hi {{ company }}.", inject: false}
  - {name: named, kind: ai, prompt: "Hi {{ company }}."}
  - {name: forced, kind: ai, prompt: "Hi {{ company }}.", inject: true, context: [brand]}
""",
    )
    assert prompt_sent(campaign, "plain") == "Hi Acme."
    assert prompt_sent(campaign, "named") == "Hi Acme."  # names a field: today's meaning, no block
    assert (
        prompt_sent(campaign, "forced")
        == f"Hi Acme.\n\n## Record\n{RECORD_LINES}\n\n## Context\n### brand\nPlain words."
    )
    assert campaign.spec.column("named").deps == ("company",)
    assert campaign.spec.column("forced").deps == ("company", "employees", "tags", "title", "website")


def test_inject_false_on_a_prompt_that_names_nothing_is_refused_as_before() -> None:
    with pytest.raises(SpecError, match="needs 'inputs'"):
        parse_spec(FIELDS + "  - {name: pitch, kind: ai, prompt: 'Write a pitch.', inject: false}\n")


def test_a_context_name_that_is_not_a_plain_name_is_refused() -> None:
    with pytest.raises(SpecError, match="option 'context'.*'icp brief' is not a context document name"):
        parse_spec(FIELDS + "  - {name: pitch, kind: ai, prompt: 'Hi.', context: ['icp brief']}\n")


def test_record_and_context_placed_by_the_template_are_not_repeated(documents: Workspace) -> None:
    campaign = with_steps(
        documents,
        """
  - name: both
    kind: ai
    prompt: "Lead:\\n{{ record }}\\nUse:\\n{{ context }}"
    context: [icp]
  - {name: lead_only, kind: ai, prompt: "Lead:\\n{{ record }}", context: [brand]}
  - {name: by_attribute, kind: ai, prompt: "Lead {{ record.company }}: {{ context.offer }}", inject: false}
""",
    )
    assert prompt_sent(campaign, "both") == f"Lead:\n{RECORD_LINES}\nUse:\n### icp\nB2B SaaS, 20-500 people."
    assert prompt_sent(campaign, "lead_only") == f"Lead:\n{RECORD_LINES}\n\n## Context\n### brand\nPlain words."
    assert prompt_sent(campaign, "by_attribute") == "Lead Acme: Onboarding in a week."
    assert campaign.spec.column("both").context == ("icp",)
    assert campaign.spec.column("by_attribute").context == ("offer",)  # placing the record reads no document
    assert "company" in campaign.spec.column("by_attribute").deps


def test_a_column_named_record_keeps_its_meaning(documents: Workspace) -> None:
    documents.apply("""
campaign: r
columns:
  - {name: record, kind: input}
  - {name: company, kind: input}
  - {name: echo, kind: ai, prompt: "Seen: {{ record }}"}
""")
    campaign = documents.campaign("r")
    campaign.add_rows([{"record": "a CRM id", "company": "Acme"}])
    campaign.run()
    assert prompt_sent(campaign, "echo") == "Seen: a CRM id"
    assert campaign.spec.column("echo").deps == ("record",)
    assert campaign.spec.column("echo").context == ()


def test_editing_a_context_document_stales_exactly_its_readers(documents: Workspace) -> None:
    campaign = with_steps(
        documents,
        """
  - {name: everything, kind: ai, prompt: "Pitch.", run: manual}
  - {name: icp_only, kind: ai, prompt: "Fit.", context: [icp], run: manual}
  - {name: no_block, kind: ai, prompt: "Hi {{ company }}.", run: manual}
""",
    )
    campaign.run(["everything", "icp_only", "no_block"])
    documents.set_context("offer", "Onboarding in a day.")
    statuses = {c: campaign.cell(1, c).status for c in ("everything", "icp_only", "no_block")}
    assert statuses == {"everything": Status.STALE, "icp_only": Status.DONE, "no_block": Status.DONE}
    documents.set_context("icp", "B2B SaaS, 50-500 people.")
    assert campaign.cell(1, "icp_only").status is Status.STALE
    campaign.run(["everything", "icp_only"], only_stale=True)
    assert "Onboarding in a day." in prompt_sent(campaign, "everything")
    assert "50-500" in prompt_sent(campaign, "icp_only") and "Onboarding" not in prompt_sent(campaign, "icp_only")


def test_a_field_saved_to_the_record_reaches_and_stales_the_steps_that_read_the_record(ws: Workspace) -> None:
    ws.apply("""
campaign: s
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company]}
  - {name: pitch, kind: ai, prompt: "Pitch.", run: manual}
  - {name: hello, kind: ai, prompt: "Hi {{ company }}.", run: manual}
""")
    campaign = ws.campaign("s")
    campaign.add_rows([{"company": "Acme"}, {"company": "Globex"}])
    campaign.run(["research", "pitch", "hello"])
    assert prompt_sent(campaign, "pitch") == "Pitch.\n\n## Record\ncompany: Acme"
    campaign.save_to_record(1, "research", "finding")
    assert "finding" in campaign.spec.column("pitch").deps
    statuses = {(r, c): campaign.cell(r, c).status for r in (1, 2) for c in ("pitch", "hello")}
    assert statuses == {
        (1, "pitch"): Status.STALE,
        (2, "pitch"): Status.STALE,  # its key covers the new field, empty in this row
        (1, "hello"): Status.DONE,
        (2, "hello"): Status.DONE,
    }
    campaign.run(["pitch"], only_stale=True)
    assert prompt_sent(campaign, "pitch", 1) == "Pitch.\n\n## Record\ncompany: Acme\nfinding: probe(Acme)"
    assert prompt_sent(campaign, "pitch", 2) == "Pitch.\n\n## Record\ncompany: Globex"  # empty fields are left out


def test_a_field_added_by_apply_or_by_an_import_stales_the_steps_that_read_the_record(
    ws: Workspace, tmp_path: Path
) -> None:
    spec = """
campaign: s
columns:
  - {name: company, kind: input}
  - {name: pitch, kind: ai, prompt: "Pitch.", run: manual}
  - {name: hello, kind: ai, prompt: "Hi {{ company }}.", run: manual}
"""
    ws.apply(spec)
    campaign = ws.campaign("s")
    campaign.add_rows([{"company": "Acme"}])
    campaign.run(["pitch", "hello"])
    result = ws.apply(spec + "  - {name: city, kind: input}\n")
    assert result.changes.changed == ["pitch"]
    assert (campaign.cell(1, "pitch").status, campaign.cell(1, "hello").status) == (Status.STALE, Status.DONE)
    campaign.run(["pitch"], only_stale=True)
    source = tmp_path / "more.csv"
    source.write_text("company,segment\nGlobex,enterprise\n")
    campaign.import_file(source)
    assert campaign.cell(1, "pitch").status is Status.STALE and campaign.cell(1, "hello").status is Status.DONE
    campaign.run(["pitch"])
    assert prompt_sent(campaign, "pitch", 1) == "Pitch.\n\n## Record\ncompany: Acme"
    assert prompt_sent(campaign, "pitch", 2) == "Pitch.\n\n## Record\ncompany: Globex\nsegment: enterprise"


def test_reordering_the_fields_changes_only_the_versions_of_the_steps_that_read_the_record() -> None:
    steps = "  - {name: pitch, kind: ai, prompt: 'Pitch.'}\n  - {name: hello, kind: ai, prompt: 'Hi {{ company }}.'}\n"
    one = parse_spec("campaign: o\ncolumns:\n  - {name: company, kind: input}\n  - {name: city, kind: input}\n" + steps)
    two = parse_spec("campaign: o\ncolumns:\n  - {name: city, kind: input}\n  - {name: company, kind: input}\n" + steps)
    assert one.column("pitch").version != two.column("pitch").version  # the block's lines come in a new order
    assert one.column("hello").version == two.column("hello").version


# The versions main's code gave the demo campaign's columns before injection existed (engine/spec.py `_version`).
DEMO_VERSIONS = {
    "email": "1a9d5f34787b9fec",
    "employees": "59e9260fe5d94769",
    "email_normalized": "274de5de75534780",
    "email_domain": "94583dc2b08fd1c8",
    "full_name": "616018364f19209d",
    "seniority": "4899a056e850daee",
    "company_size": "a169a801e61c5771",
    "is_free_email": "8a5ef136917aaf20",
    "region": "84b2721fbeb2d10b",
    "lead_score": "ce1371080a2e96a4",
    "priority": "7ca2420d3ee80199",
    "greeting": "719dee834ecbf34a",
    "research": "d8eeb4b534138deb",
    "icp_fit": "08a7d1626a8ef78d",
    "icp_score": "aa647d19dcda3542",
    "opener": "f55068bf7a9fe0da",
}


def test_the_demo_campaign_keeps_its_versions_dependencies_and_context() -> None:
    spec = load_spec("campaigns/outbound.yaml")
    assert {c.name: c.version for c in spec.columns if c.name in DEMO_VERSIONS} == DEMO_VERSIONS
    assert spec.column("research").context == ("brand",)
    assert spec.column("opener").deps == ("company", "first_name", "icp_fit", "priority", "research", "title")
    assert spec.column("opener").context == ("offer",)


def test_new_options_enter_the_version_only_when_set() -> None:
    base = "  - {name: hello, kind: ai, prompt: 'Hi {{ company }}.'"
    unset = parse_spec(FIELDS + base + "}\n").column("hello").version
    assert parse_spec(FIELDS + base + ", inject: null, context: null}\n").column("hello").version == unset
    assert parse_spec(FIELDS + base + ", inject: false}\n").column("hello").version != unset
    assert parse_spec(FIELDS + base + ", context: [icp]}\n").column("hello").version != unset
