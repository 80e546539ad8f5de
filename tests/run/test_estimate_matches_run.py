"""The dry run counts every call the run then makes: an asked-for manual step behind queued paid ancestors (computed
once they land), and downstream steps only where their run_if can hold; no tokens for kinds that call no model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine import RunSelection, Workspace
from engine.cells.probe import Probe
from engine.testing import PROBE_LEDGER

# research and icp_fit are paid auto steps, left queued (they were paused when the rows came in); opener is manual
# and reads both, for tier A rows only.
OUTBOUND = """
campaign: c
columns:
  - {name: company, kind: input}
  - {name: tier, kind: input}
  - {name: research, kind: probe, inputs: [company], credits: 1}
  - {name: icp_fit, kind: probe, inputs: [research], credits: 1}
  - {name: icp_len, kind: formula, expression: "length(icp_fit)"}
  - {name: opener, kind: probe, run: manual, inputs: [research, icp_len], credits: 10, run_if: "tier = 'A'"}
"""


def outbound(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(OUTBOUND)
    campaign = ws.campaign("c")
    campaign.add_rows([{"company": f"co{i}", "tier": "A" if i % 3 == 1 else "B"} for i in range(1, 7)])
    for column in ("research", "icp_fit", "opener"):  # resumed after the import: their cells stay queued
        ws.pause("c", column, resume=True)
    PROBE_LEDGER.clear()
    return ws


def estimated(ws: Workspace, selection: Any, rows: Any = None) -> Counter[str]:
    estimate = ws.campaign("c").estimate(selection, rows)
    assert estimate.tokens == 0  # probes and file exports call no model
    return Counter({c.column: c.calls - c.cache_hits for c in estimate.columns if c.calls - c.cache_hits})


@pytest.mark.parametrize(
    ("columns", "rows", "expected"),
    [
        (["opener"], [1], {"research": 1, "icp_fit": 1, "opener": 1}),
        (["opener"], [2], {"research": 1, "icp_fit": 1}),  # tier B: run_if is false, decided now
        (["opener"], None, {"research": 6, "icp_fit": 6, "opener": 2}),
        (None, None, {"research": 6, "icp_fit": 6}),  # opener not asked for: it does not run
        (["research"], [1, 4], {"research": 2, "icp_fit": 2}),
    ],
)
def test_the_estimate_counts_the_calls_the_run_makes(
    tmp_path: Path, columns: list[str] | None, rows: list[int] | None, expected: dict[str, int]
) -> None:
    ws = outbound(tmp_path)
    assert estimated(ws, columns, rows) == expected
    assert PROBE_LEDGER.calls == []
    ws.campaign("c").run(columns, rows)
    assert PROBE_LEDGER.per_column() == expected


def test_an_opener_asked_for_earlier_and_waiting_is_counted_when_its_ancestors_run(tmp_path: Path) -> None:
    ws = outbound(tmp_path)
    ws.pause("c", "research")
    ws.campaign("c").run(["opener"], [1, 2])  # research is paused: opener of row 1 waits on it
    PROBE_LEDGER.clear()
    ws.pause("c", "research", resume=True)
    expected = {"research": 6, "icp_fit": 6, "opener": 1}
    assert estimated(ws, None) == expected
    ws.campaign("c").run()
    assert PROBE_LEDGER.per_column() == expected


# fit fails on every row (note 'down') until the provider is back; push (a file export: no model, no tokens) sends
# tier A rows only, 4 of 12: its run_if reads an input, so it is decided now.
RETRY = """
campaign: c
columns:
  - {{name: company, kind: input}}
  - {{name: tier, kind: input}}
  - {{name: note, kind: input}}
  - {{name: fit, kind: probe, inputs: [company, note], fail_on: down, credits: 1}}
  - {{name: push, kind: export, file: "{target}", fields: [company, fit], run_if: "tier = 'A'"}}
"""


def test_a_retry_counts_downstream_cells_only_where_run_if_can_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.jsonl"
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(RETRY.format(target=target))
    ws.pause("c", "fit", resume=True)
    campaign = ws.campaign("c")
    rows = [{"company": f"co{i}", "tier": "A" if i % 3 == 1 else "B", "note": "down"} for i in range(1, 13)]
    campaign.add_rows(rows)
    campaign.run()
    assert ws.campaign("c").errors() == {"provider_error": 12, "upstream_error": 4} and not target.exists()
    PROBE_LEDGER.clear()
    prepare = Probe.prepare  # the provider is back: the probe no longer fails

    def recovered(self: Probe, options: Any, frame: Any, env: Any) -> Any:
        return prepare(self, options.model_copy(update={"fail_on": None}), frame, env)

    monkeypatch.setattr(Probe, "prepare", recovered)
    estimate = campaign.estimate(RunSelection(errors=True))
    assert {c.column: (c.calls, c.tokens) for c in estimate.columns} == {"fit": (12, 0), "push": (4, 0)}
    campaign.run(RunSelection(errors=True))
    assert PROBE_LEDGER.per_column() == {"fit": 12}
    assert len(target.read_text().splitlines()) == 4
