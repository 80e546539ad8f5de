"""DESIGN.md's reactivity rules, asserted through what actually ran (run events and the probe's call ledger)."""

from __future__ import annotations

from engine import Status, Workspace
from engine.testing import PROBE_LEDGER
from tests.conftest import assert_ran


def statuses(campaign, row: int) -> dict[str, Status]:  # type: ignore[no-untyped-def]
    page = campaign.page(rows=[row])
    return {name: cell.status for name, cell in page.rows[0].items()}


def values(campaign, row: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    page = campaign.page(rows=[row])
    return {name: cell.value for name, cell in page.rows[0].items()}


def test_new_rows_compute_free_steps_and_queue_paid_ones(basic) -> None:  # type: ignore[no-untyped-def]
    assert statuses(basic, 1) == {
        "email": Status.DONE,
        "first": Status.DONE,
        "employees": Status.DONE,
        "domain": Status.DONE,
        "greet": Status.DONE,
        "research": Status.QUEUED,
        "opener": Status.EMPTY,
        "opener_length": Status.WAITING,
    }
    assert basic.cell(1, "opener_length").waiting_on == "opener"
    assert values(basic, 2)["greet"] == "Hi Bob at globex.io"
    assert PROBE_LEDGER.calls == []


def test_run_computes_queued_paid_cells_once_and_leaves_manual_alone(basic) -> None:  # type: ignore[no-untyped-def]
    report = basic.run()
    assert_ran(report, did=["research"], did_not=["domain", "greet", "opener"])
    assert PROBE_LEDGER.per_column() == {"research": 3}
    again = basic.run()
    assert_ran(again, did_not=["research", "domain", "opener"])
    assert PROBE_LEDGER.per_column() == {"research": 3}


def test_edit_touches_only_that_rows_downstream_closure(basic) -> None:  # type: ignore[no-untyped-def]
    basic.run()
    basic.run(["opener"], rows=[1, 2])
    PROBE_LEDGER.clear()
    report = basic.set(1, "first", "Anna")
    assert_ran(report, did=["greet"], did_not=["domain", "research", "opener", "opener_length"])
    for event in report.events:
        assert event.rows == (1,)
    assert PROBE_LEDGER.calls == []
    assert statuses(basic, 1)["opener"] is Status.STALE  # manual: stale, keeps its old value
    assert values(basic, 1)["opener"] == "probe(Hi Ann at acme.com|probe(acme.com))"
    assert statuses(basic, 2)["opener"] is Status.DONE


def test_edit_runs_auto_paid_steps_and_their_downstream(basic) -> None:  # type: ignore[no-untyped-def]
    basic.run()
    PROBE_LEDGER.clear()
    report = basic.set(3, "email", "cy@hooli.com")
    assert_ran(report, did=["domain", "greet", "research"], did_not=["opener"])
    assert PROBE_LEDGER.calls == [("research", 3)]
    assert values(basic, 3)["research"] == "probe(hooli.com)"


def test_edit_to_the_same_value_recomputes_nothing_paid(basic) -> None:  # type: ignore[no-untyped-def]
    basic.run()
    basic.run(["opener"], rows=[1])
    PROBE_LEDGER.clear()
    report = basic.set(1, "email", "ann@acme.com")
    assert PROBE_LEDGER.calls == []
    assert report.computed("domain") == 0
    assert statuses(basic, 1)["opener"] is Status.DONE


def test_click_to_run_pulls_auto_ancestors_then_propagates(basic) -> None:  # type: ignore[no-untyped-def]
    report = basic.run(["opener"], rows=[2])
    assert_ran(report, did=["research", "opener", "opener_length"])
    assert PROBE_LEDGER.calls == [("research", 2), ("opener", 2)]
    assert values(basic, 2)["opener_length"] == len("probe(Hi Bob at globex.io|probe(globex.io))")


def test_lazy_pull_of_an_auto_cell_computes_only_what_it_needs(basic) -> None:  # type: ignore[no-untyped-def]
    cell = basic.cell(2, "research", compute=True)
    assert cell.status is Status.DONE and cell.value == "probe(globex.io)"
    assert PROBE_LEDGER.calls == [("research", 2)]
    manual = basic.cell(2, "opener", compute=True)
    assert manual.status is Status.EMPTY  # looking never runs a manual cell
    assert PROBE_LEDGER.calls == [("research", 2)]


def test_run_again_recomputes_and_propagates(basic) -> None:  # type: ignore[no-untyped-def]
    basic.run()
    basic.run(["opener"])
    PROBE_LEDGER.clear()
    report = basic.run(["research"], rows=[1], force=True)
    assert PROBE_LEDGER.calls == [("research", 1)]
    assert_ran(report, did=["research"])
    # the value did not change (the probe is deterministic), so the manual opener stays fresh
    assert statuses(basic, 1)["opener"] is Status.DONE


def test_pinned_cell_is_never_overwritten_until_run_again(basic) -> None:  # type: ignore[no-untyped-def]
    basic.run()
    basic.set(1, "domain", "pinned.example")
    assert statuses(basic, 1)["domain"] is Status.PINNED
    assert values(basic, 1)["greet"] == "Hi Ann at pinned.example"
    basic.set(1, "email", "ann@other.com")
    assert values(basic, 1)["domain"] == "pinned.example"
    basic.run(force=True)
    assert values(basic, 1)["domain"] == "pinned.example"  # a whole-campaign run does not unpin
    basic.run(["domain"], rows=[1], force=True)
    assert statuses(basic, 1)["domain"] is Status.DONE
    assert values(basic, 1)["domain"] == "other.com"
    assert values(basic, 1)["greet"] == "Hi Ann at other.com"


def test_failed_auto_cells_are_not_retried_until_their_key_changes(ws: Workspace) -> None:
    ws.apply("""
campaign: f
columns:
  - {name: word, kind: input}
  - {name: lookup, kind: probe, inputs: [word], fail_on: boom}
  - {name: after, kind: formula, expression: "upper(lookup)"}
""")
    campaign = ws.campaign("f")
    campaign.add_rows([{"word": "boom"}, {"word": "fine"}])
    campaign.run()
    cell = campaign.cell(1, "lookup")
    assert cell.status is Status.ERROR and cell.error_code == "provider_error" and cell.error_hint
    after = campaign.cell(1, "after")
    assert after.status is Status.ERROR and after.error_code == "upstream_error" and after.blocked_by == "lookup"
    assert campaign.cell(2, "after").blocked_by is None
    PROBE_LEDGER.clear()
    campaign.run()
    campaign.run()
    assert PROBE_LEDGER.calls == []
    campaign.set(1, "word", "better")
    assert PROBE_LEDGER.calls == [("lookup", 1)]
    assert campaign.cell(1, "after").value == "PROBE(BETTER)"


def test_spec_change_makes_the_column_and_its_downstream_stale(basic, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import BASIC_SPEC

    basic.run()
    basic.run(["opener"])
    PROBE_LEDGER.clear()
    ws.set_setting("confirm_threshold", None)  # always ask before paid work
    result = ws.apply(BASIC_SPEC.replace("split_part(email, '@', 2)", "upper(split_part(email, '@', 2))"))
    assert result.needs_confirmation and result.estimate is not None
    assert {c.column: c.calls for c in result.estimate.columns} == {"research": 3}
    assert result.changes.changed == ["domain"]
    assert result.report is not None
    assert_ran(result.report, did=["domain", "greet"])
    assert PROBE_LEDGER.calls == []  # paid work waits for a run
    assert statuses(basic, 1)["research"] is Status.STALE  # rule 4: stale until someone runs it
    assert values(basic, 1)["greet"] == "Hi Ann at ACME.COM"
    basic.run()
    assert PROBE_LEDGER.per_column() == {"research": 3}
    assert statuses(basic, 1)["opener"] is Status.STALE


def test_changing_a_paid_steps_spec_marks_it_stale_without_spending(basic, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import BASIC_SPEC

    basic.run()
    PROBE_LEDGER.clear()
    ws.set_setting("confirm_threshold", 5)
    result = ws.apply(BASIC_SPEC.replace("inputs: [domain]}", "inputs: [domain], credits: 2}"))
    assert result.estimate is not None and result.estimate.credits == 6 and result.needs_confirmation
    assert PROBE_LEDGER.calls == []
    assert basic.status_counts()["research"] == {"stale": 3}
    basic.run(only_stale=True)
    assert PROBE_LEDGER.per_column() == {"research": 3}


def test_a_spec_change_within_the_confirm_threshold_reruns_paid_cells_at_once(basic, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import BASIC_SPEC

    basic.run()
    PROBE_LEDGER.clear()
    ws.set_setting("confirm_threshold", 6)
    result = ws.apply(BASIC_SPEC.replace("inputs: [domain]}", "inputs: [domain], credits: 2}"))
    assert not result.needs_confirmation and result.paid_report is not None
    assert PROBE_LEDGER.per_column() == {"research": 3}
    assert basic.status_counts()["research"] == {"done": 3}


def test_run_if_required_and_disabled(ws: Workspace) -> None:
    ws.apply("""
campaign: g
columns:
  - {name: name, kind: input}
  - {name: size, kind: input, type: BIGINT}
  - {name: big, kind: probe, inputs: [name], run_if: "size > 100", required: [name]}
  - {name: paused, kind: probe, inputs: [name], enabled: false}
""")
    campaign = ws.campaign("g")
    campaign.add_rows([{"name": "a", "size": 500}, {"name": "b", "size": 5}, {"name": "", "size": 900}])
    campaign.run()
    assert [campaign.cell(r, "big").status for r in (1, 2, 3)] == [Status.DONE, Status.SKIPPED, Status.ERROR]
    assert campaign.cell(3, "big").error_code == "missing_required_field"
    assert campaign.cell(3, "big").error_hint == "enrich the record first"
    assert campaign.cell(1, "paused").error_code == "action_disabled"
    assert PROBE_LEDGER.calls == [("big", 1)]


def test_formula_errors_are_cell_values_for_the_failing_rows_only(ws: Workspace) -> None:
    ws.apply("""
campaign: h
columns:
  - {name: n, kind: input}
  - {name: as_int, kind: formula, expression: "n::INTEGER * 2"}
""")
    campaign = ws.campaign("h")
    campaign.add_rows([{"n": "1"}, {"n": "x"}, {"n": None}, {"n": "4"}])
    cells = [campaign.cell(r, "as_int") for r in (1, 2, 3, 4)]
    assert [c.value for c in cells] == [2, None, None, 8]
    assert [c.status for c in cells] == [Status.DONE, Status.ERROR, Status.DONE, Status.DONE]
    assert cells[1].error_code == "formula_error" and "x" in (cells[1].error_message or "")
