"""Spec history (issue 15): every spec change is recorded with who, when, where and a diff; the live spec exports
as YAML that `apply` takes back unchanged; a file that would undo changes made elsewhere since it was last
applied is refused with the diff (nothing changes) unless forced."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine import SpecConflictError, Workspace, parse_spec
from tests.conftest import BASIC_ROWS, BASIC_SPEC, snapshot

# The UI's edit of a column: the live spec with one option changed, applied as the UI does (origin "ui").
GREET_LOUD = "'HELLO ' || first"


def ui_edit(ws: Workspace, column: str, **changes: object) -> None:
    source = parse_spec(ws.spec_yaml("t")).source
    for entry in source["columns"]:
        if entry["name"] == column:
            entry.update(changes)
    import yaml

    ws.apply(yaml.safe_dump(source, sort_keys=False), actor="alice", origin="ui")


def unchanged_tables(ws: Workspace) -> dict[str, object]:
    """Every table but `campaigns`, whose `updated_at` an apply moves, and the stored spec."""
    tables = snapshot(ws)
    with ws.db.transaction(commit=False) as con:
        tables["campaigns"] = con.execute("SELECT name, spec FROM campaigns ORDER BY 1").fetchall()
    return tables


@pytest.fixture
def applied(ws: Workspace) -> Workspace:
    ws.apply(BASIC_SPEC, actor="bob", origin="file")
    ws.campaign("t").add_rows(BASIC_ROWS)
    return ws


def test_each_change_is_recorded_with_who_where_and_a_diff(applied: Workspace) -> None:
    ui_edit(applied, "greet", expression=GREET_LOUD)
    applied.apply(BASIC_SPEC.replace("length(opener)", "length(opener) + 1"), actor="carol", origin="file", force=True)
    history = applied.spec_history("t")
    assert [(h["change_id"], h["actor"], h["origin"]) for h in history] == [
        (3, "carol", "file"),
        (2, "alice", "ui"),
        (1, "bob", "file"),
    ]
    assert all(h["changed_at"] is not None for h in history)
    assert "+  expression: '''HELLO '' || first'" in history[1]["diff"]
    assert "-  expression: '''Hi '' || first || '' at '' || domain'" in history[1]["diff"]
    assert "+  expression: length(opener) + 1" in history[0]["diff"]
    assert history[2]["diff"].startswith("--- t (before)\n+++ t (after)\n")


def test_an_apply_that_changes_nothing_records_nothing(applied: Workspace) -> None:
    applied.apply(BASIC_SPEC, actor="bob", origin="file")
    applied.apply(BASIC_SPEC, actor="bob", origin="file", dry_run=True)
    assert len(applied.spec_history("t")) == 1


def test_a_field_added_by_an_import_is_a_recorded_change(applied: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "more.csv"
    data.write_text("email,first,employees,city\ndee@x.io,Dee,5,Oslo\n")
    applied.campaign("t").import_file(data)
    latest = applied.spec_history("t")[0]
    assert latest["origin"] == "import"
    assert "+- name: city" in latest["diff"]


def test_the_exported_spec_applies_back_unchanged(applied: Workspace, tmp_path: Path) -> None:
    ui_edit(applied, "greet", expression=GREET_LOUD)
    exported = applied.spec_yaml("t")
    assert exported.startswith("campaign: t\n")
    assert "HELLO" in exported
    before = unchanged_tables(applied)
    result = applied.apply(exported, actor="bob", origin="file")
    assert result.changes.nothing and result.report is None
    assert unchanged_tables(applied) == before  # the spec, every cell, no run, not even a history entry
    assert applied.spec_yaml("t") == exported


def test_a_file_that_would_undo_a_ui_edit_is_refused_and_changes_nothing(applied: Workspace) -> None:
    ui_edit(applied, "greet", expression=GREET_LOUD)
    before = snapshot(applied)
    with pytest.raises(SpecConflictError) as refused:
        applied.apply(BASIC_SPEC, actor="bob", origin="file")
    assert refused.value.undone == ["column greet"]
    assert "--force" in str(refused.value)
    assert "-  expression: '''HELLO '' || first'" in refused.value.diff
    assert snapshot(applied) == before
    dry = applied.apply(BASIC_SPEC, actor="bob", origin="file", dry_run=True)
    assert [type(r) for r in dry.changes.refusals] == [SpecConflictError]
    assert snapshot(applied) == before

    forced = applied.apply(BASIC_SPEC, actor="bob", origin="file", force=True)
    assert forced.changes.changed == ["greet"]
    assert applied.campaign("t").cell(1, "greet").value == "Hi Ann at acme.com"
    assert applied.spec_history("t")[0]["origin"] == "file"
    applied.apply(BASIC_SPEC.replace("length(opener)", "length(opener) + 1"), origin="file")  # no edit since


def test_a_file_that_keeps_the_ui_edit_and_changes_another_column_is_accepted(applied: Workspace) -> None:
    ui_edit(applied, "greet", expression=GREET_LOUD)
    merged = parse_spec(applied.spec_yaml("t")).source
    import yaml

    text = yaml.safe_dump(merged, sort_keys=False).replace("length(opener)", "length(opener) + 1")
    result = applied.apply(text, actor="bob", origin="file")
    assert result.changes.changed == ["opener_length"]


def test_ui_and_api_applies_are_never_refused(applied: Workspace) -> None:
    ui_edit(applied, "greet", expression=GREET_LOUD)
    applied.apply(BASIC_SPEC, actor="api-user")  # the API's origin: it is the later edit, not a stale file
    assert applied.spec_history("t")[0]["origin"] == "api"


def test_spec_history_of_an_unknown_campaign_names_the_fix(applied: Workspace) -> None:
    from engine import NotFoundError

    with pytest.raises(NotFoundError, match="no campaign named 'nope'"):
        applied.spec_history("nope")
    with pytest.raises(NotFoundError):
        applied.spec_yaml("nope")


def test_spec_yaml_puts_name_and_kind_first(applied: Workspace) -> None:
    import yaml

    data = yaml.safe_load(io.StringIO(applied.spec_yaml("t")))
    assert list(data)[-1] == "columns"
    assert all(list(c)[:2] == ["name", "kind"] for c in data["columns"])


def test_a_file_without_a_field_an_import_added_keeps_it_and_is_not_refused(applied: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "more.csv"
    data.write_text("email,first,employees,city\ndee@x.io,Dee,5,Oslo\n")
    applied.campaign("t").import_file(data)
    result = applied.apply(BASIC_SPEC.replace("length(opener)", "length(opener) + 1"), actor="bob", origin="file")
    assert result.changes.changed == ["opener_length"] and result.changes.kept == {"city": 1}
    assert "city" in applied.spec_yaml("t")


def test_pruning_a_field_an_import_added_is_asked_for_by_name_not_refused(applied: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "more.csv"
    data.write_text("email,first,employees,city\ndee@x.io,Dee,5,Oslo\n")
    applied.campaign("t").import_file(data)
    result = applied.apply(BASIC_SPEC, actor="bob", origin="file", prune=["city"])
    assert result.changes.pruned == {"city": 1}


def test_a_campaign_never_applied_from_a_file_takes_its_first_file_as_it_is(ws: Workspace) -> None:
    ws.apply(BASIC_SPEC.replace("length(opener)", "length(opener) + 1"), actor="alice", origin="ui")
    result = ws.apply(BASIC_SPEC, actor="bob", origin="file")
    assert result.changes.changed == ["opener_length"]
    assert [h["origin"] for h in ws.spec_history("t")] == ["file", "ui"]
