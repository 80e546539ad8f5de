"""Issue 15, "Decide run_if early": a cell whose run_if is already decidable is skipped at once, instead of waiting
on an upstream cell it will never read (an export for priority A rows and the opener of a C row) or offering
Click to Run (a manual step whose run_if is false). What reads such a skipped cell is planned with it; a manual
cell holding a value keeps it; a blocked cell names the column it is blocked by; a stale upstream is waited on,
never reported as failed."""

from __future__ import annotations

import json
from pathlib import Path

from engine import Campaign, Status, Workspace
from engine.testing import PROBE_LEDGER

PRIORITIES = ["A", "B", "C", "A", "C"]


def spec(folder: Path, *, opener_run_if: str = "") -> str:
    run_if = f', run_if: "{opener_run_if}"' if opener_run_if else ""
    return f"""
campaign: leads
columns:
  - {{name: name, kind: input}}
  - {{name: priority, kind: input}}
  - {{name: opener, kind: probe, inputs: [name], run: manual{run_if}}}
  - {{name: opener_len, kind: formula, expression: "length(opener)"}}
  - name: push
    kind: export
    file: "{folder / "pushed.jsonl"}"
    fields: [name, opener]
    run_if: "priority = 'A'"
"""


def leads(ws: Workspace, folder: Path, *, opener_run_if: str = "") -> Campaign:
    ws.apply(spec(folder, opener_run_if=opener_run_if))
    campaign = ws.campaign("leads")
    campaign.add_rows([{"name": f"Lead {i}", "priority": p} for i, p in enumerate(PRIORITIES, start=1)])
    return campaign


def statuses(campaign: Campaign, column: str) -> list[Status]:
    return [campaign.cell(row, column).status for row in range(1, len(PRIORITIES) + 1)]


def pushed(folder: Path) -> list[dict]:  # type: ignore[type-arg]
    path = folder / "pushed.jsonl"
    return [json.loads(line)["data"] for line in path.read_text().splitlines()] if path.exists() else []


def test_an_export_whose_run_if_is_false_is_skipped_at_once_not_waiting_on_the_opener(
    ws: Workspace, tmp_path: Path
) -> None:
    campaign = leads(ws, tmp_path)
    campaign.run()
    # A rows wait on their opener (a manual step nobody ran yet); B and C rows can never send: skipped now
    assert statuses(campaign, "push") == [
        Status.WAITING,
        Status.SKIPPED,
        Status.SKIPPED,
        Status.WAITING,
        Status.SKIPPED,
    ]
    assert campaign.cell(1, "push").waiting_on == "opener"
    assert campaign.cell(2, "push").waiting_on is None
    assert campaign.status_counts()["push"] == {"waiting": 2, "skipped": 3}
    # the opener of a B row, run by hand, changes nothing for its export; the A row's export sends
    campaign.run(["opener"], rows=[1, 2])
    assert statuses(campaign, "push")[:2] == [Status.DONE, Status.SKIPPED]
    assert [p["name"] for p in pushed(tmp_path)] == ["Lead 1"]
    # a B row that becomes A waits on its opener, which then runs and sends
    campaign.set(3, "priority", "A")
    assert campaign.cell(3, "push").status is Status.WAITING
    assert campaign.cell(3, "push").waiting_on == "opener"
    # and an A row that becomes C is skipped at once, though its opener still has no value
    campaign.set(4, "priority", "C")
    assert campaign.cell(4, "push").status is Status.SKIPPED
    assert [p["name"] for p in pushed(tmp_path)] == ["Lead 1"]


def test_a_manual_step_whose_run_if_is_false_is_skipped_at_once_not_offering_click_to_run(
    ws: Workspace, tmp_path: Path
) -> None:
    campaign = leads(ws, tmp_path, opener_run_if="priority <> 'C'")
    PROBE_LEDGER.clear()
    campaign.run()
    assert statuses(campaign, "opener") == [
        Status.EMPTY,
        Status.EMPTY,
        Status.SKIPPED,
        Status.EMPTY,
        Status.SKIPPED,
    ]
    assert PROBE_LEDGER.calls == []  # deciding run_if calls nothing
    # what reads a skipped opener is planned with it: computed over no value, not waiting on it
    assert campaign.cell(3, "opener_len").status is Status.DONE
    assert campaign.cell(3, "opener_len").value is None
    assert campaign.cell(1, "opener_len").status is Status.WAITING
    # a C row that becomes B offers Click to Run again: empty, not stale (it never ran; nothing called)
    campaign.set(3, "priority", "B")
    cell = campaign.cell(3, "opener")
    assert cell.status is Status.EMPTY and cell.value is None
    assert PROBE_LEDGER.calls == []
    # and back to C: skipped again
    campaign.set(3, "priority", "C")
    assert campaign.cell(3, "opener").status is Status.SKIPPED


def test_a_manual_cell_with_a_value_keeps_it_when_its_run_if_turns_false(ws: Workspace, tmp_path: Path) -> None:
    campaign = leads(ws, tmp_path, opener_run_if="priority <> 'C'")
    campaign.run(["opener"], rows=[1])
    ran = campaign.cell(1, "opener")
    assert ran.status is Status.DONE and ran.value
    campaign.set(1, "priority", "C")
    after = campaign.cell(1, "opener")
    assert after.status is Status.STALE and after.value == ran.value  # the user's paid value is kept
    # new rows are decided as they arrive; the report counts each cell once, by what became of it
    _, report = campaign.add_rows([{"name": "Lead 6", "priority": "C"}, {"name": "Lead 7", "priority": "A"}])
    assert campaign.cell(6, "opener").status is Status.SKIPPED
    assert campaign.cell(7, "opener").status is Status.EMPTY
    assert report.counts()["opener"] == {"skipped": 1}
    assert report.counts()["push"] == {"skipped": 1, "waiting": 1}  # nothing reported "keep"


def test_run_if_over_a_step_waits_until_that_step_can_be_read(ws: Workspace) -> None:
    ws.apply("""
campaign: s
columns:
  - {name: word, kind: input}
  - {name: checked, kind: probe, inputs: [word], run: manual}
  - {name: note, kind: probe, inputs: [word, checked], run: manual, run_if: "checked IS NOT NULL AND word <> 'no'"}
""")
    campaign = ws.campaign("s")
    campaign.add_rows([{"word": "no"}, {"word": "yes"}])
    # run_if reads `checked`, which has no value yet: undecided, so nothing is skipped
    assert campaign.cell(1, "note").status is Status.EMPTY
    campaign.run(["checked"])
    campaign.run()
    assert campaign.cell(1, "note").status is Status.SKIPPED
    assert campaign.cell(2, "note").status is Status.EMPTY


def test_a_blocked_cell_names_what_blocks_it_and_a_stale_upstream_is_not_a_failure(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.apply(f"""
campaign: b
columns:
  - {{name: word, kind: input}}
  - {{name: fit, kind: probe, inputs: [word], fail_on: boom}}
  - {{name: score, kind: formula, expression: "length(fit)"}}
  - {{name: opener, kind: probe, inputs: [word], run: manual}}
  - {{name: push, kind: export, file: "{tmp_path / "out.jsonl"}", fields: [word, opener]}}
""")
    campaign = ws.campaign("b")
    campaign.add_rows([{"word": "boom"}, {"word": "fine"}])
    campaign.run()
    campaign.run(["opener"])
    blocked = campaign.cell(1, "score")
    assert blocked.status is Status.ERROR and blocked.blocked_by == "fit"
    assert campaign.cell(2, "score").blocked_by is None
    # the opener goes stale when its input changes: the export waits on it, it did not fail
    report = campaign.set(2, "word", "finer")
    assert campaign.cell(2, "opener").status is Status.STALE
    push = campaign.cell(2, "push")
    assert push.status is Status.WAITING and push.waiting_on == "opener" and push.error_code is None
    assert report.ending() != "failed"
