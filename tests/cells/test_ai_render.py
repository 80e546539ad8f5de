"""AI prompts render a record's fields: an empty field is blank in the prompt, not the word "None"."""

from __future__ import annotations

import json

from engine import Workspace
from engine.cells.ai import AiOptions
from engine.cells.prompt import Injection, messages_for, render


def test_an_empty_field_renders_blank_and_other_values_as_they_are() -> None:
    row = {"company": "Acme", "website": None, "employees": 0, "remote": False}
    text = render("{{ company }} | {{ website }} | {{ employees }} | {{ remote }}", row, {})
    assert text == "Acme |  | 0 | False"
    assert render("{{ website or 'no site' }}", row, {}) == "no site"


def test_the_offline_model_never_sees_none_for_an_empty_input(ws: Workspace) -> None:
    ws.apply("""
campaign: p
columns:
  - {name: company, kind: input}
  - {name: website, kind: input}
  - {name: research, kind: ai, model: offline, prompt: "About {{ company }} at {{ website }}."}
""")
    campaign = ws.campaign("p")
    campaign.add_rows([{"company": "Acme", "website": None}])
    campaign.run()
    cell = campaign.cell(1, "research")
    assert cell.value is not None and "None" not in cell.value  # the offline model echoes its prompt
    assert json.loads(cell.detail)["messages"] == [{"role": "user", "content": "About Acme at ."}]


def test_the_default_block_lists_non_empty_fields_in_order_with_compact_json_and_documents_by_name() -> None:
    row = {"company": "Acme", "website": "", "tags": ["saas", "b2b"], "meta": {"a": 1}, "remote": True, "n": 0}
    fields = ("company", "website", "tags", "meta", "remote", "n", "missing")
    given = Injection(record=True, context=True, block_record=True, block_context=True)
    options = AiOptions(prompt="Go.", system="Be brief.")
    messages = messages_for(options, row, {"offer": "O", "icp": "I"}, given, fields)
    assert messages == (
        ("system", "Be brief."),
        (
            "user",
            'Go.\n\n## Record\ncompany: Acme\ntags: ["saas","b2b"]\nmeta: {"a":1}\nremote: true\nn: 0'
            "\n\n## Context\n### icp\nI\n\n### offer\nO",
        ),
    )


def test_without_documents_or_fields_the_block_leaves_the_part_out() -> None:
    given = Injection(record=True, context=True, block_record=True, block_context=True)
    assert messages_for(AiOptions(prompt="Go."), {"company": None}, {}, given, ("company",)) == (("user", "Go."),)
    narrowed = AiOptions(prompt="Go.", context=("nope",))
    assert messages_for(narrowed, {"c": "x"}, {"icp": "I"}, given, ("c",)) == (("user", "Go.\n\n## Record\nc: x"),)


def test_a_placed_context_still_reads_any_document_by_name() -> None:
    options = AiOptions(prompt="{{ context.offer }} | {{ context }}", context=("icp",))
    given = Injection(context=True)
    assert messages_for(options, {}, {"offer": "O", "icp": "I"}, given) == (("user", "O | ### icp\nI"),)
