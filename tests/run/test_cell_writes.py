"""How cells are written: in place, so every step table keeps the row registry's order; an edit's one cell per
column as query parameters (engine/store/cells.py update_cell). Whatever the path, a cell must hold exactly what
a fresh computation of the same inputs stores: the same value, type, status and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import Workspace
from engine.run import executor
from engine.store.cells import PARAMETER_TYPES

# One formula per value type an edit writes with parameters, and two it writes from an Arrow source.
SPEC = """
campaign: w
columns:
  - {name: n, kind: input, type: BIGINT}
  - {name: text, kind: formula, expression: "'n=' || n"}
  - {name: big, kind: formula, expression: "n * 1000000000000"}
  - {name: small, kind: formula, expression: "(n % 1000)::INTEGER"}
  - {name: ratio, kind: formula, expression: "n / 7"}
  - {name: odd, kind: formula, expression: "n % 2 = 1"}
  - {name: day, kind: formula, expression: "DATE '2026-01-01' + (n % 300)::INTEGER"}
  - {name: moment, kind: formula, expression: "TIMESTAMP '2026-01-01 08:30:00' + to_seconds(n)"}
  - {name: doc, kind: formula, expression: "json_object('n', n)"}
  - {name: maybe, kind: formula, expression: "CASE WHEN n > 100 THEN 'big' END"}
  - {name: parts, kind: formula, expression: "[n, n + 1]"}
  - {name: pair, kind: formula, expression: "{'n': n, 'half': n / 2}"}
"""
STEPS = ["text", "big", "small", "ratio", "odd", "day", "moment", "doc", "maybe", "parts", "pair"]


def state(ws: Workspace, row: int) -> dict[str, tuple[Any, ...]]:
    campaign = ws.campaign("w")
    return {c: (campaign.cell(row, c).value, campaign.cell(row, c).status, campaign.cell(row, c).key) for c in STEPS}


@pytest.mark.parametrize("edited", [5, 12345, -3])
def test_an_edits_cells_hold_what_a_fresh_computation_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: int
) -> None:
    by_parameters: list[str] = []
    write = executor.update_cell

    def spied(con: Any, table: str, cell: dict[str, Any]) -> None:
        by_parameters.append(table)
        write(con, table, cell)

    monkeypatch.setattr(executor, "update_cell", spied)
    ws = Workspace.init(tmp_path / "edited")
    ws.apply(SPEC)
    ws.campaign("w").add_rows([{"n": i} for i in (1, 2, 3)])
    ws.campaign("w").set(2, "n", edited)
    assert len(by_parameters) == len(STEPS) - 2  # all but the list and the struct
    fresh = Workspace.init(tmp_path / "fresh")
    fresh.apply(SPEC)
    fresh.campaign("w").add_rows([{"n": i} for i in (1, edited, 3)])
    assert state(ws, 2) == state(fresh, 2)
    types = {c.name: c.value_type for c in ws.campaign("w").spec.columns}
    assert {types[c] for c in STEPS} >= PARAMETER_TYPES  # every type written with parameters is covered
