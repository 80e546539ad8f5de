"""An edit near the floor: how many calls into DuckDB one input edit makes (pinned here, so a change that adds round
trips fails), that it does not grow with the campaign, that a few rows' cells gathered from one read
(engine/run/few_rows.py) hold exactly what the joined path computes, and that the catalog kept between
transactions (engine/store/catalog.py) sees another process's `apply`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.reactive_core import SPEC
from engine import Workspace
from engine.testing import count_calls

# 4 inputs, 7 formulas (5 downstream of email), one probe: the campaign the edit benches measure (SPEC).
# Calls into DuckDB (statements and Arrow registrations) of one input edit whose new domain rewrites domain, score,
# tier and greeting (label keeps its value, so touch is not run). 41 before this was pinned: a join per downstream
# column, the catalog read each time, a statement for the run's id and one for its start. Now: the formulas
# downstream worked out in one statement (engine/run/few_rows.py), one write per rewritten column.
EDIT_CALLS = 19


def bench_campaign(folder: Path, rows: int) -> Workspace:
    ws = Workspace.init(folder)
    ws.apply(SPEC)
    records = [
        {"email": f"u{i}@c{i % 7}.com", "first_name": f"N{i}", "company": f"C{i % 7}", "employees": i * 37 % 900}
        for i in range(rows)
    ]
    ws.campaign("bench").add_rows(records)
    return ws


def edit_calls(ws: Workspace, row: int, email: str) -> list[tuple[str, str]]:
    campaign = ws.campaign("bench")
    campaign.set(row, "email", "warm@up.example")  # the first edit of a process loads the catalog
    with count_calls() as count:
        report = campaign.set(row, "email", email)
    assert {e.column for e in report.events if e.outcome == "done"} == {"domain", "score", "tier", "greeting"}
    return count.calls


def test_an_input_edit_makes_a_pinned_number_of_calls_whatever_the_campaigns_size(tmp_path: Path) -> None:
    small = edit_calls(bench_campaign(tmp_path / "small", 100), 7, "someone@a-much-longer-domain.example")
    large = edit_calls(bench_campaign(tmp_path / "large", 3000), 2900, "someone@a-much-longer-domain.example")
    assert len(small) == EDIT_CALLS, "\n".join(f"{m}: {s}" for m, s in small)
    assert [m for m, _ in large] == [m for m, _ in small]
    ws = Workspace(tmp_path / "small")
    cell = ws.campaign("bench").cell(7, "greeting")
    assert (cell.value, cell.status.value) == ("Hi N6 @ C6 from a-much-longer-domain.example", "done")
    edits = ws.query("SELECT old_value, new_value FROM activity WHERE action = 'edit' ORDER BY logged_at").rows()
    assert edits[-1] == ("warm@up.example", "someone@a-much-longer-domain.example")


# Steps reading typed step values (JSON, a list, a struct, a timestamp, a double): what their keys hash went
# through Arrow and back on the few-rows path.
TYPED = """
campaign: t
columns:
  - {name: n, kind: input, type: BIGINT}
  - {name: doc, kind: formula, expression: "json_object('n', n, 'half', n / 2)"}
  - {name: parts, kind: formula, expression: "[n, n + 1]"}
  - {name: pair, kind: formula, expression: "{'n': n, 'name': 'x' || n}"}
  - {name: moment, kind: formula, expression: "TIMESTAMP '2026-01-01 08:30:00' + to_seconds(n)"}
  - {name: ratio, kind: formula, expression: "n / 7"}
  - {name: reads, kind: formula, expression: "doc::VARCHAR || parts[2] || pair.name || moment::VARCHAR || ratio"}
"""
TYPED_STEPS = ["doc", "parts", "pair", "moment", "ratio", "reads"]


def typed_cells(ws: Workspace, row: int) -> dict[str, tuple[Any, ...]]:
    campaign = ws.campaign("t")
    return {
        c: (campaign.cell(row, c).value, campaign.cell(row, c).status, campaign.cell(row, c).key) for c in TYPED_STEPS
    }


def test_an_edits_gather_from_one_read_matches_the_joined_path(tmp_path: Path) -> None:
    rows = 80  # more than the few rows an edit is planned from: computed by the joined (bulk) path
    edited = Workspace.init(tmp_path / "edited")
    edited.apply(TYPED)
    edited.campaign("t").add_rows([{"n": i} for i in range(rows)])
    edited.campaign("t").set(3, "n", 4321)
    fresh = Workspace.init(tmp_path / "fresh")
    fresh.apply(TYPED)
    fresh.campaign("t").add_rows([{"n": 4321 if i == 2 else i} for i in range(rows)])
    assert typed_cells(edited, 3) == typed_cells(fresh, 3)
    assert typed_cells(edited, 3)["reads"][1].value == "done"


def test_the_catalog_kept_between_transactions_sees_another_processs_apply(tmp_path: Path) -> None:
    ws = bench_campaign(tmp_path / "ws", 10)
    campaign = ws.campaign("bench")
    campaign.set(1, "email", "a@first.example")
    assert campaign.cell(1, "domain").value == "first.example"
    changed = tmp_path / "changed.yaml"
    changed.write_text(SPEC.replace("lower(split_part(email, '@', 2))", "upper(split_part(email, '@', 2))"))
    ws.release()
    subprocess.run(
        [sys.executable, "-m", "engine.cli", "apply", str(changed), "--workspace", str(tmp_path / "ws")],
        check=True,
        capture_output=True,
    )
    campaign.set(2, "email", "b@second.example")
    assert campaign.cell(2, "domain").value == "SECOND.EXAMPLE"
