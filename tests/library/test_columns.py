"""A campaign column may name a library action instead of repeating it (issue 17): `action: NAME` is written out
into the action's definition when the spec is applied (`from_action` keeps where it came from), what the column
sets beside it overrides, and a change of the action's options reaches the column as a spec change."""

from __future__ import annotations

import pytest

from engine import Campaign, EditError, NotFoundError, SpecError, Status, Workspace, parse_spec

SPEC = """
campaign: people
columns:
  - {name: full_name, kind: input}
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: title, kind: input}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: opener, action: Opener, tier: fast}
  - {name: opener_length, kind: formula, expression: "length(opener)"}
"""


@pytest.fixture()
def library_campaign(ws: Workspace, people: Campaign) -> Campaign:
    ws.actions().add(
        "opener",
        "ai",
        {"prompt": "Write an opener to {{ full_name }} at {{ company }}", "tier": "deep"},
        description="An opener",
    )
    ws.apply(SPEC)
    return ws.campaign("people")


def test_a_column_takes_the_action_and_keeps_its_own_overrides(ws: Workspace, library_campaign: Campaign) -> None:
    column = library_campaign.spec.column("opener")
    assert column.kind == "ai" and column.deps == ("company", "full_name")
    assert column.options.prompt == "Write an opener to {{ full_name }} at {{ company }}"  # type: ignore[union-attr]
    assert column.options.tier == "fast"  # type: ignore[union-attr]  # the column's own choice wins
    action_id = ws.actions().show("opener")["action_id"]
    assert library_campaign.spec.source["columns"][5]["from_action"] == action_id
    library_campaign.run(["opener"], rows=[1])
    cell = library_campaign.cell(1, "opener")
    assert cell.status is Status.DONE and cell.value.startswith("[offline model] Write an opener to Ada Lovelace")
    assert library_campaign.cell(1, "opener_length").value == len(cell.value)


def test_the_written_out_spec_applies_again_unchanged(ws: Workspace, library_campaign: Campaign) -> None:
    exported = ws.spec_yaml("people")
    assert "from_action:" in exported and "action: Opener" not in exported
    result = ws.apply(exported)
    assert not result.changes.changed and not result.changes.added


def test_a_change_of_the_action_reaches_its_columns(ws: Workspace, library_campaign: Campaign) -> None:
    library_campaign.run(["opener"], rows=[1, 2])
    before = library_campaign.cell(1, "opener").value
    applied = ws.update_action("opener", options={"prompt": "Say hello to {{ full_name }}", "tier": "deep"})
    assert [a.campaign for a in applied] == ["people"] and applied[0].changes.changed == ["opener"]
    column = ws.campaign("people").spec.column("opener")
    assert column.options.prompt == "Say hello to {{ full_name }}"  # type: ignore[union-attr]
    assert column.options.tier == "fast"  # type: ignore[union-attr]  # still the column's own
    assert column.deps == ("full_name",)
    cell = ws.campaign("people").cell(1, "opener")  # a spec change within the confirm threshold (free): re-run
    assert cell.status is Status.DONE and cell.value.startswith("[offline model] Say hello to Ada Lovelace")
    assert cell.value != before
    assert ws.update_action("opener", description="Says hello") == []  # no option changed: no column touched


def test_bad_references_are_refused_with_the_fix(ws: Workspace, people: Campaign) -> None:
    with pytest.raises(SpecError, match="no library action named 'nope'") as unknown:
        ws.apply(SPEC.replace("action: Opener", "action: nope"))
    assert "runsheet action list" in unknown.value.hint
    ws.actions().add("opener", "ai", {"prompt": "Hi {{ full_name }}"}, description="x")
    with pytest.raises(SpecError, match="kind 'ai' and library action"):
        ws.apply(SPEC.replace("action: Opener,", "action: Opener, kind: ai,"))
    with pytest.raises(SpecError, match="only a workspace can read") as outside:
        parse_spec(SPEC)
    assert "runsheet apply" in outside.value.hint


def test_the_cli_edit_says_which_columns_followed(ws: Workspace, library_campaign: Campaign) -> None:
    from tests.library.test_faces import cli

    edited = cli(ws.path, "action", "edit", "opener", "--options", "{prompt: 'Hello {{ full_name }}', tier: deep}")
    assert edited.exit_code == 0, edited.output
    assert "campaign people: columns made from it changed: opener" in edited.output
    assert ws.campaign("people").spec.column("opener").deps == ("full_name",)


def test_add_action_column_fills_a_free_step_and_never_replaces_a_column(ws: Workspace, people: Campaign) -> None:
    ws.actions().add("domain", "formula", {"expression": "lower(split_part(email, '@', 2))"}, description="Domain.")
    applied = ws.add_action_column("people", "domain", name="company_domain", after="email")
    assert applied.changes.added == ["company_domain"] and applied.paused == []
    handle = ws.campaign("people")
    assert handle.spec.names.index("company_domain") == handle.spec.names.index("email") + 1
    assert [handle.cell(r, "company_domain").value for r in (1, 2, 3)] == ["analytical.io", "cobol.dev", "bletchley.uk"]
    handle.set(1, "title", "CEO")
    with pytest.raises(EditError, match="column named 'title' already: it is kept"):
        ws.add_action_column("people", "domain", name="TITLE")
    assert ws.campaign("people").cell(1, "title").value == "CEO"  # the user's column and value stay
    with pytest.raises(EditError, match="no column named 'nope'"):
        ws.add_action_column("people", "domain", name="d2", after="nope")
    with pytest.raises(NotFoundError):
        ws.add_action_column("people", "no_such_action")
    assert "d2" not in ws.campaign("people").spec.names


def test_a_paid_action_added_as_a_column_waits_for_consent(ws: Workspace, people: Campaign) -> None:
    ws.actions().add(
        "opener", "ai", {"prompt": "Hi {{ full_name }}", "tier": "deep", "model": "openai/x"}, description="An opener."
    )
    start = ws.credits()
    applied = ws.add_action_column("people", "opener")
    assert applied.paused == ["opener"] and ws.credits() == start
    assert ws.campaign("people").cell(1, "opener").status is not Status.DONE
