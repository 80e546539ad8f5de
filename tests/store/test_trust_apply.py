"""`apply` keeps what a campaign holds (issue 13, items 2, 5, 11 and the spec parts of 16): a spec that leaves out
a column holding data keeps it or is refused until `--prune`; `renamed_from` keeps cells, keys and history;
history is deleted only by `runsheet history purge --yes`; a new paid step starts paused; and a retype that would
change stored values, or a name that collides with a campaign column, is refused before anything is written.
Each case through the Python API, and the main ones through the CLI."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from typer.testing import CliRunner, Result

from engine import SpecError, Status, Workspace
from engine.cli import app
from engine.testing import PROBE_LEDGER
from tests.conftest import BASIC_ROWS, BASIC_SPEC, snapshot
from tests.runner.conftest import KEY_ENV, ai_spec
from tests.support.consent import apply_active
from tests.support.provider import ProviderProcess, start_provider

LINKEDIN_CSV = "email,linkedin\nann@acme.com,in/ann\nbob@globex.io,in/bob\n"
DEEP = BASIC_SPEC + "  - {name: deep, kind: probe, inputs: [domain], credits: 2}\n"


@pytest.fixture
def basic(ws: Workspace):  # type: ignore[no-untyped-def]
    """The basic campaign with its three rows, its research probe run (3 results, free probe) and `linkedin`
    imported by upsert on email (not in the spec)."""
    ws.apply(BASIC_SPEC)
    campaign = ws.campaign("t")
    campaign.add_rows(BASIC_ROWS)
    campaign.run()
    path = ws.path.parent / "linkedin.csv"
    path.write_text(LINKEDIN_CSV, encoding="utf-8")
    campaign.import_file(path, key="email")
    PROBE_LEDGER.clear()
    return campaign


def values(campaign, column: str) -> list[Any]:  # type: ignore[no-untyped-def]
    return [campaign.cell(r, column).value for r in (1, 2, 3)]


def without(spec: str, *lines: str) -> str:
    for line in lines:
        assert line in spec, line
        spec = spec.replace(line, "")
    return spec


RESEARCH = "  - {name: research, kind: probe, inputs: [domain]}\n"
OPENER = "  - {name: opener, kind: probe, inputs: [greet, research], run: manual}\n"
OPENER_LENGTH = '  - {name: opener_length, kind: formula, expression: "length(opener)"}\n'
GREET = "  - {name: greet, kind: formula, expression: \"'Hi ' || first || ' at ' || domain\"}\n"


# ---- item 2: apply never drops data --------------------------------------------------------------------------


def test_apply_keeps_an_imported_column_the_spec_leaves_out(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    assert values(basic, "linkedin") == ["in/ann", "in/bob", None]
    result = ws.apply(BASIC_SPEC)
    assert result.changes.kept == {"linkedin": 2} and result.changes.removed == []
    assert values(basic, "linkedin") == ["in/ann", "in/bob", None]
    assert "linkedin" in basic.spec.names
    again = ws.apply(BASIC_SPEC)  # the spec in git, applied again: still kept, nothing else changes
    assert again.changes.nothing and again.changes.kept == {"linkedin": 2}


def test_apply_keeps_fields_created_by_save_to_record(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.save_to_record(1, "research")  # into notes
    basic.save_to_record(2, "research", "angle")
    ws.apply(BASIC_SPEC)
    assert basic.cell(1, "notes").value == "research: probe(acme.com)"
    assert basic.cell(2, "angle").value == "probe(globex.io)"


def test_prune_drops_what_the_spec_leaves_out_and_says_how_many_values_went(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.save_to_record(1, "research")
    result = ws.apply(BASIC_SPEC, prune=True)
    assert result.changes.pruned == {"linkedin": 2, "notes": 1}
    assert sorted(result.changes.removed) == ["linkedin", "notes"]
    assert "linkedin" not in basic.spec.names and "notes" not in basic.spec.names


def test_prune_by_name_drops_only_the_columns_named(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.save_to_record(1, "research")
    result = ws.apply(BASIC_SPEC, prune=["linkedin"])
    assert result.changes.pruned == {"linkedin": 2} and result.changes.kept == {"notes": 1}
    assert basic.cell(1, "notes").value == "research: probe(acme.com)"


def test_a_removed_step_holding_results_is_refused_until_pruned(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    spec = without(BASIC_SPEC, RESEARCH, OPENER, OPENER_LENGTH)
    before = snapshot(ws)
    with pytest.raises(SpecError) as caught:
        ws.apply(spec)
    assert caught.value.column == "research" and "holds 3 value(s)" in str(caught.value)
    assert "--prune" in caught.value.hint and "\n" not in str(caught.value)
    assert snapshot(ws) == before
    history = [a for a in ws.activity(1000) if a["column_name"] == "research"]
    result = ws.apply(spec, prune=["research"])
    assert result.changes.pruned == {"research": 3} and "research" not in basic.spec.names
    assert [a for a in ws.activity(1000) if a["column_name"] == "research"] == history  # history stays


def test_a_removed_free_step_is_dropped_without_prune_and_keeps_its_history(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    history = [a for a in ws.activity(1000) if a["column_name"] == "greet"]
    assert history
    spec = without(BASIC_SPEC, GREET, OPENER, OPENER_LENGTH)
    result = ws.apply(spec)
    assert "greet" in result.changes.removed and result.changes.pruned == {}
    assert [a for a in ws.activity(1000) if a["column_name"] == "greet"] == history


def test_a_removed_step_with_cells_edited_by_hand_needs_prune(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    basic.set(1, "greet", "Hello Ann")  # a formula cell pinned by hand is data
    spec = without(BASIC_SPEC, GREET, OPENER, OPENER_LENGTH)
    with pytest.raises(SpecError, match="holds 1 value"):
        ws.apply(spec)
    assert basic.cell(1, "greet").value == "Hello Ann"


def test_a_step_turned_into_an_input_needs_prune_when_it_holds_results(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    spec = BASIC_SPEC.replace(RESEARCH, "  - {name: research, kind: input}\n")
    with pytest.raises(SpecError, match="probe step holds 3 value"):
        ws.apply(spec)
    assert values(basic, "research") == ["probe(acme.com)", "probe(globex.io)", "probe(initech.org)"]


def test_dry_run_shows_the_diff_and_writes_nothing(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    spec = (
        without(BASIC_SPEC, RESEARCH, OPENER, OPENER_LENGTH)
        .replace("{name: first, kind: input}", "{name: first_name, kind: input, renamed_from: first}")
        .replace("|| first ||", "|| first_name ||")
        .replace("type: BIGINT", "type: DOUBLE")
        + '  - {name: shout, kind: formula, expression: "upper(email)"}\n'
    )
    before = snapshot(ws)
    changes = ws.apply(spec, dry_run=True).changes
    assert snapshot(ws) == before
    assert changes.added == ["shout"] and changes.renamed == {"first": "first_name"}
    assert sorted(changes.changed) == ["employees", "greet"]
    assert [(t.column, t.old, t.new, t.changed_values) for t in changes.retyped] == [
        ("employees", "BIGINT", "DOUBLE", 0)
    ]
    assert changes.kept == {"linkedin": 2} and sorted(changes.removed) == ["opener", "opener_length"]
    assert [e.column for e in changes.refusals] == ["research"]  # holds 3 results: would need --prune


# ---- item 5: renames and history -------------------------------------------------------------------------------


def test_renamed_from_keeps_a_steps_cells_keys_and_history_without_running_it(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    cells = [basic.cell(r, "research") for r in (1, 2, 3)]
    history = len([a for a in ws.activity(1000) if a["column_name"] == "research"])
    spec = BASIC_SPEC.replace(
        RESEARCH, "  - {name: company_research, kind: probe, inputs: [domain], renamed_from: research}\n"
    ).replace("inputs: [greet, research]", "inputs: [greet, company_research]")
    result = ws.apply(spec)
    assert result.changes.renamed == {"research": "company_research"} and result.changes.added == []
    assert PROBE_LEDGER.calls == []
    renamed = [basic.cell(r, "company_research") for r in (1, 2, 3)]
    assert [(c.value, c.status, c.key) for c in renamed] == [(c.value, c.status, c.key) for c in cells]
    assert all(c.status is Status.DONE for c in renamed)
    assert len([a for a in ws.activity(1000) if a["column_name"] == "company_research"]) == history
    assert not [a for a in ws.activity(1000) if a["column_name"] == "research"]
    assert ws.apply(spec).changes.nothing  # the spec keeps renamed_from: applying it again is a no-op
    basic.run()
    assert PROBE_LEDGER.calls == []  # the keys did not change: nothing to compute


def test_renaming_an_input_keeps_its_values(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    spec = BASIC_SPEC.replace("{name: first, kind: input}", "{name: first_name, kind: input, renamed_from: first}")
    ws.apply(spec.replace("|| first ||", "|| first_name ||"))
    assert values(basic, "first_name") == ["Ann", "Bob", "Cy"]
    assert basic.cell(1, "greet").value == "Hi Ann at acme.com"
    assert PROBE_LEDGER.calls == []


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderProcess]:
    process = start_provider(lifetime=600)
    yield process
    process.stop()


def test_renaming_an_input_a_paid_prompt_reads_bills_nothing_again(
    ws: Workspace, provider: ProviderProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's prompt text names the input, so it changes and the step recomputes; the requests it renders
    are the same, so they are answered from the result cache: no second bill."""
    monkeypatch.setenv(KEY_ENV, "k")
    spec = ai_spec(provider.api_base, transport="direct")
    apply_active(ws, spec)
    campaign = ws.campaign("enrich")
    campaign.add_rows([{"company": "Acme"}, {"company": "Globex"}])
    campaign.run()
    answers = [campaign.cell(r, "research").value for r in (1, 2)]
    billed = len(provider.ledger()["billed"])
    renamed = spec.replace(
        "{name: company, kind: input}", "{name: company_name, kind: input, renamed_from: company}"
    ).replace("{{ company }}", "{{ company_name }}")
    assert ws.apply(renamed).changes.renamed == {"company": "company_name"}
    campaign.run()
    assert len(provider.ledger()["billed"]) == billed
    assert [campaign.cell(r, "research").value for r in (1, 2)] == answers
    assert campaign.status_counts()["research"] == {"done": 2}


def test_a_column_made_later_under_a_renamed_columns_old_name_is_another_column(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    spec = BASIC_SPEC + "  - {name: profile, kind: input, renamed_from: linkedin}\n"
    assert ws.apply(spec).changes.renamed == {"linkedin": "profile"}
    path = ws.path.parent / "again.csv"
    path.write_text(LINKEDIN_CSV.replace("in/ann", "in/ann2"), encoding="utf-8")
    basic.import_file(path, key="email")  # `linkedin` comes back, as a new column
    result = ws.apply(spec)
    assert result.changes.renamed == {} and result.changes.kept == {"linkedin": 2}
    assert values(basic, "profile") == ["in/ann", "in/bob", None]
    assert values(basic, "linkedin") == ["in/ann2", "in/bob", None]


def test_history_is_purged_only_on_request_and_only_for_a_removed_column(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception, match="is a column of campaign 't'"):
        ws.purge_history("t", "research", confirm=True)
    ws.apply(without(BASIC_SPEC, RESEARCH, OPENER, OPENER_LENGTH), prune=True)
    count = len([a for a in ws.activity(1000) if a["column_name"] == "research"])
    assert count and ws.purge_history("t", "research") == {"activity": count, "outbox": 0}
    assert len([a for a in ws.activity(1000) if a["column_name"] == "research"]) == count  # not confirmed
    assert ws.purge_history("t", "research", confirm=True)["activity"] == count
    assert not [a for a in ws.activity(1000) if a["column_name"] == "research"]
    runs = ws.runs(1000)
    assert runs and ws.credits() > 0  # runs and credit rows stay


# ---- item 11: a new paid step starts paused ------------------------------------------------------------------


def test_a_new_paid_step_starts_paused_and_spends_nothing_until_resumed(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    credits = ws.credits()
    result = ws.apply(DEEP)  # 6 credits: within the confirm threshold, which used to run it at once
    assert result.paused == ["deep"] and result.paid_report is None
    assert result.paused_estimate is not None
    assert (result.paused_estimate.calls, result.paused_estimate.credits) == (3, 6)
    assert PROBE_LEDGER.calls == [] and ws.credits() == credits
    basic.run()  # a run of every auto step leaves it alone, and says so without an error
    assert PROBE_LEDGER.calls == [] and ws.credits() == credits
    assert {basic.cell(r, "deep").status for r in (1, 2, 3)} <= {Status.QUEUED, Status.PAUSED}
    assert ws.pause_state("t").columns == frozenset({"deep"})
    resumed = ws.resume("t", "deep")
    assert resumed.run is not None
    resumed.campaign.finish_run(resumed.run)
    assert PROBE_LEDGER.per_column() == {"deep": 3} and ws.credits() == credits - 6


@pytest.mark.parametrize(
    "column",
    [
        pytest.param('{name: free, kind: formula, expression: "upper(email)"}', id="formula"),
        pytest.param("{name: free, kind: probe, inputs: [domain]}", id="probe-without-credits"),
        pytest.param('{name: free, kind: ai, model: offline, prompt: "Hi {{ first }}"}', id="offline-ai"),
    ],
)
def test_a_new_free_step_is_not_paused(ws: Workspace, basic, column: str) -> None:  # type: ignore[no-untyped-def]
    result = ws.apply(BASIC_SPEC + f"  - {column}\n")
    assert result.paused == [] and ws.pause_state("t").columns == frozenset()
    assert basic.status_counts()["free"] in ({"done": 3}, {"queued": 3})


def test_a_campaign_created_with_a_paid_step_has_it_paused(ws: Workspace) -> None:
    result = ws.apply(DEEP)
    assert result.changes.created and result.paused == ["deep"]
    ws.campaign("t").add_rows(BASIC_ROWS)
    ws.campaign("t").run()
    assert "deep" not in PROBE_LEDGER.per_column()


def test_a_removed_columns_pause_goes_with_it(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    ws.pause("t", "opener")
    ws.apply(without(BASIC_SPEC, OPENER, OPENER_LENGTH))  # opener holds nothing: it goes
    ws.apply(BASIC_SPEC.replace(OPENER, '  - {name: opener, kind: formula, expression: "greet"}\n'))
    assert ws.pause_state("t").columns == frozenset()
    assert basic.cell(1, "opener").value == "Hi Ann at acme.com"


# ---- item 16: refused up front ----------------------------------------------------------------------------------


def test_a_name_differing_in_case_from_a_campaign_column_is_refused(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(ws)
    with pytest.raises(SpecError) as caught:
        ws.apply(BASIC_SPEC + "  - {name: LinkedIn, kind: input}\n")
    assert caught.value.column == "LinkedIn" and "'linkedin' only in case" in str(caught.value)
    assert "renamed_from: linkedin" in caught.value.hint
    assert snapshot(ws) == before
    ws.apply(BASIC_SPEC + "  - {name: LinkedIn, kind: input, renamed_from: linkedin}\n")  # the fix works
    assert values(basic, "LinkedIn") == ["in/ann", "in/bob", None]


def test_an_imported_header_with_a_reserved_name_becomes_a_plain_one(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    """The one name rule (engine/spec.py's reserved_name) serves imports too: `Key` would shadow a cell's key."""
    path = ws.path.parent / "keys.csv"
    path.write_text("email,Key,Verdict\nann@acme.com,k1,approved\n", encoding="utf-8")
    report = basic.import_file(path, key="email")
    assert report.columns == {"email": "email", "Key": "key_", "Verdict": "verdict_"}
    assert basic.cell(1, "key_").value == "k1" and basic.cell(1, "verdict_").value == "approved"


SCORES = """
campaign: s
columns:
  - {name: score, kind: input, type: TYPE}
"""


@pytest.mark.parametrize(
    ("old", "new", "stored", "changed", "example"),
    [
        pytest.param("DOUBLE", "BIGINT", [1.5, 2.0], 1, "1.5 -> 2", id="double-to-bigint"),
        pytest.param(
            "TIMESTAMP",
            "DATE",
            [dt.datetime(2024, 5, 1, 10, 30), dt.datetime(2024, 5, 2)],
            1,
            "2024-05-01 10:30:00 -> 2024-05-01",
            id="timestamp-to-date",
        ),
        pytest.param("VARCHAR", "BIGINT", ["007", "8"], 1, "007 -> 7", id="leading-zeros"),
    ],
)
def test_a_lossy_retype_is_refused_until_allowed(
    ws: Workspace, old: str, new: str, stored: list[Any], changed: int, example: str
) -> None:
    ws.apply(SCORES.replace("TYPE", old))
    ws.campaign("s").add_rows([{"score": v} for v in stored])
    before = snapshot(ws)
    with pytest.raises(SpecError) as caught:
        ws.apply(SCORES.replace("TYPE", new))
    assert f"would change {changed} stored value(s), e.g. {example}" in str(caught.value)
    assert "--allow-lossy" in caught.value.hint and caught.value.column == "score"
    assert snapshot(ws) == before
    result = ws.apply(SCORES.replace("TYPE", new), allow_lossy=True)
    assert [(t.old, t.new, t.changed_values) for t in result.changes.retyped] == [(old, new, changed)]


@pytest.mark.parametrize(
    ("old", "new", "stored"),
    [
        pytest.param("INTEGER", "BIGINT", [1, 2], id="integer-to-bigint"),
        pytest.param("BIGINT", "DOUBLE", [1, 2**40], id="bigint-to-double-exact"),
        pytest.param("TIMESTAMP", "DATE", [dt.datetime(2024, 5, 1)], id="timestamp-at-midnight-to-date"),
        pytest.param("VARCHAR", "BIGINT", ["40", "900"], id="digits-to-bigint"),
    ],
)
def test_a_lossless_retype_passes(ws: Workspace, old: str, new: str, stored: list[Any]) -> None:
    ws.apply(SCORES.replace("TYPE", old))
    ws.campaign("s").add_rows([{"score": v} for v in stored])
    result = ws.apply(SCORES.replace("TYPE", new))
    assert result.changes.changed == ["score"] and result.changes.retyped[0].changed_values == 0


# ---- the CLI -----------------------------------------------------------------------------------------------------


def cli(workspace: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"RUNSHEET_WORKSPACE": str(workspace), "USER": "tester"})


def ok(workspace: Path, *args: str) -> str:
    result = cli(workspace, *args)
    assert result.exit_code == 0, result.output
    return click.unstyle(result.stdout)


def refused(workspace: Path, *args: str) -> str:
    result = cli(workspace, *args)
    assert result.exit_code == 1 and result.stdout == "", result.output
    lines = click.unstyle(result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def spec_file(folder: Path, text: str, name: str = "spec.yaml") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_cli_apply_keeps_prunes_and_dry_runs(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    folder = ws.path.parent
    plain = spec_file(folder, BASIC_SPEC)
    kept = ok(ws.path, "apply", plain)
    assert "  kept: linkedin (2 value(s)); not in the spec, holds data; --prune removes\n" in kept
    before = snapshot(ws)
    shown = ok(ws.path, "apply", plain, "--prune", "--dry-run")
    assert shown.startswith("dry run: campaign t would change (nothing was written)\n")
    assert "  removed: linkedin (2 value(s) dropped)\n" in shown
    assert snapshot(ws) == before
    summary = json.loads(ok(ws.path, "apply", plain, "--prune-column", "linkedin", "--json"))
    assert summary["pruned"] == {"linkedin": 2} and summary["kept"] == {}
    assert "linkedin" not in basic.spec.names


def test_cli_refuses_a_removed_step_holding_results_in_one_line(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    line = refused(ws.path, "apply", spec_file(ws.path.parent, without(BASIC_SPEC, RESEARCH, OPENER, OPENER_LENGTH)))
    assert line.startswith("error: column 'research': the probe step is not in the spec but holds 3 value(s)")
    assert "--prune" in line


def test_cli_refuses_a_lossy_retype_and_a_deep_spec_in_one_line(ws: Workspace) -> None:
    folder = ws.path.parent
    ok(ws.path, "apply", spec_file(folder, SCORES.replace("TYPE", "DOUBLE")))
    ws.campaign("s").add_rows([{"score": 1.5}])
    line = refused(ws.path, "apply", spec_file(folder, SCORES.replace("TYPE", "BIGINT")))
    assert "would change 1 stored value(s), e.g. 1.5 -> 2" in line and "--allow-lossy" in line
    assert ws.campaign("s").cell(1, "score").value == 1.5
    ok(ws.path, "apply", spec_file(folder, SCORES.replace("TYPE", "BIGINT")), "--allow-lossy")
    assert ws.campaign("s").cell(1, "score").value == 2
    deep = SCORES.replace("TYPE", "DOUBLE") + "description: " + "[" * 20000 + "]" * 20000 + "\n"
    assert "more than 64 levels deep" in refused(ws.path, "apply", spec_file(folder, deep))


def test_cli_shows_a_new_paid_step_paused_with_its_estimate_and_how_to_start_it(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    shown = ok(ws.path, "apply", spec_file(ws.path.parent, DEEP))
    assert (
        "  paused: deep is a new paid step and waits for you: running it on 3 row(s) would cost about 6 credits; "
        "start it with `runsheet resume -c t --column deep`"
    ) in shown
    status = ok(ws.path, "status", "-c", "t")
    assert "deep is paused: start it with `runsheet resume -c t --column deep`" in status
    assert "error" not in status
    assert PROBE_LEDGER.calls == []
    ok(ws.path, "resume", "-c", "t", "--column", "deep")
    assert PROBE_LEDGER.per_column() == {"deep": 3}


def test_cli_history_purge_asks_for_yes(ws: Workspace, basic) -> None:  # type: ignore[no-untyped-def]
    ws.apply(without(BASIC_SPEC, RESEARCH, OPENER, OPENER_LENGTH), prune=True)
    count = len([a for a in ws.activity(1000) if a["column_name"] == "research"])
    shown = ok(ws.path, "history", "purge", "-c", "t", "--column", "research")
    assert shown == (
        f"would delete {count} activity row(s) and 0 export deliver(ies) of research; add --yes to delete them\n"
    )
    assert ok(ws.path, "history", "purge", "-c", "t", "--column", "research", "--yes").startswith("deleted")
    assert not [a for a in ws.activity(1000) if a["column_name"] == "research"]


def test_a_step_turned_into_another_kind_keeps_its_paid_results_until_pruned(basic) -> None:  # type: ignore[no-untyped-def]
    """research's probe results (paid-kind answers) are not dropped because the spec makes research a formula."""
    ws = Workspace(basic.db.path.parent)
    as_formula = BASIC_SPEC.replace(RESEARCH, '  - {name: research, kind: formula, expression: "upper(domain)"}\n')
    before = values(basic, "research")
    with pytest.raises(SpecError) as refused:
        ws.apply(as_formula)
    assert "research" in str(refused.value) and "--prune" in str(refused.value.hint)
    assert values(basic, "research") == before
    ws.apply(as_formula, prune=True)
    assert values(basic, "research") == ["ACME.COM", "GLOBEX.IO", "INITECH.ORG"]


def test_a_new_type_for_a_step_keeps_its_hand_edits_until_pruned(basic) -> None:  # type: ignore[no-untyped-def]
    """greet edited by hand on row 2: retyping the step would start its cells anew, losing the edit."""
    ws = Workspace(basic.db.path.parent)
    basic.set(2, "greet", "Dear Bob")
    retyped = BASIC_SPEC.replace(GREET, '  - {name: greet, kind: formula, expression: "length(first)"}\n')
    with pytest.raises(SpecError) as refused:
        ws.apply(retyped)
    assert "by hand" not in str(refused.value) and "--prune" in str(refused.value.hint)
    assert basic.cell(2, "greet").value == "Dear Bob"
    ws.apply(BASIC_SPEC.replace(GREET, '  - {name: greet, kind: formula, expression: "upper(first)"}\n'))
    assert basic.cell(2, "greet").value == "Dear Bob"  # the same type: the edit stays pinned
