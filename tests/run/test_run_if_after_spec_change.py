"""A paid step's cell that run_if skipped stays skipped when a spec change upstream makes paid work stale, also
when the rows of the campaign are in different states (the per-signature plan; a campaign whose rows are all alike
takes the uniform plan). The stateful test found it: an export whose run_if is false went stale instead."""

from __future__ import annotations

from engine import Status, Workspace
from tests.support.consent import apply_active

SPEC = """
campaign: t
columns:
  - {{name: email, kind: input}}
  - {{name: title, kind: input}}
  - {{name: domain, kind: formula, expression: "split_part(email, '@', 2)"}}
  - {{name: research, kind: probe, inputs: [domain], credits: {credits}}}
  - {{name: line, kind: formula, expression: "research || ' / ' || title"}}
  - {{name: push, kind: probe, inputs: [line], run_if: "title <> 'CEO'"}}
"""


def test_a_skipped_paid_cell_stays_skipped_when_a_spec_change_makes_its_upstream_stale(ws: Workspace) -> None:
    apply_active(ws, SPEC.format(credits=1))
    campaign = ws.campaign("t")
    campaign.add_rows([{"email": f"p{i}@acme.com", "title": "CEO"} for i in range(3)])
    campaign.run()
    assert {row["research"].status for row in campaign.page().rows} == {Status.DONE}
    ws.pause("t", "research")
    campaign.add_rows([{"email": "p9@acme.com", "title": "CEO"}])  # research queued there: rows now differ
    ws.apply(SPEC.format(credits=2))  # research's spec changes: its cells go stale, paused
    page = campaign.page()
    assert [row["research"].status for row in page.rows][:3] == [Status.STALE] * 3
    # run_if is false on every row: push is skipped, never stale, waiting or queued
    assert [row["push"].status for row in page.rows] == [Status.SKIPPED] * 4


def test_a_skipped_manual_cell_with_a_value_is_kept_stale(ws: Workspace) -> None:
    """The other side of the rule: a manual step's cell holding a value keeps it, stale, when its input changes
    (run_if is judged again when it is asked for)."""
    apply_active(ws, SPEC.format(credits=1).replace('run_if: "title', 'run: manual, run_if: "title'))
    campaign = ws.campaign("t")
    campaign.add_rows([{"email": "p0@acme.com", "title": "VP"}])
    campaign.run()
    campaign.run(["push"], rows=[1])
    assert campaign.page().rows[0]["push"].status is Status.DONE
    campaign.set(1, "title", "CEO")
    cell = campaign.page().rows[0]["push"]
    assert cell.status is Status.STALE and cell.value is not None
