"""AI prompts render a record's fields: an empty field is blank in the prompt, not the word "None"."""

from __future__ import annotations

import json

from engine import Workspace
from engine.cells.ai import render


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
