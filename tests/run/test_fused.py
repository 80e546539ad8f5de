"""The fused formula pass (engine/run/fused.py): a run that plans every row of a large scope the same way computes its
formula columns in one statement. It must reach exactly the cells the column-by-column path reaches (rule 10),
rewrite only the cells that changed, and give way to that path when a formula raises."""

from __future__ import annotations

from typing import Any

import pytest

from engine import Status, Workspace
from engine.run.executor import Executor
from engine.run.fused import FusedPass, FusedResult, Layout
from engine.store.catalog import load_campaign
from engine.store.cells import Scope, aligned_tables

SPEC = """
campaign: f
columns:
  - {name: email, kind: input}
  - {name: n, kind: input}
  - {name: domain, kind: formula, expression: "nullif(split_part(email, '@', 2), '')"}
  - {name: number, kind: formula, expression: "TRY_CAST(n AS INTEGER)"}
  - {name: doubled, kind: formula, expression: "number * 2"}
  - {name: label, kind: formula, expression: "coalesce(domain, '?') || ':' || coalesce(doubled::VARCHAR, '-')"}
  - {name: review, kind: formula, expression: "upper(label)", run: manual}
  - {name: counted, kind: probe, inputs: [label]}
"""
ROWS = 90  # more than the executor plans row by row (FEW_ROWS)
FORMULAS = ["domain", "number", "doubled", "label", "review"]
STATE = ("value", "status", "key", "error_code", "waiting_on")


def records() -> list[dict[str, Any]]:
    return [
        {"email": f"p{i}@site{i % 4}.com" if i % 9 else "no-at-sign", "n": str(i) if i % 7 else "seven"}
        for i in range(ROWS)
    ]


def cells(ws: Workspace) -> dict[tuple[int, str], tuple[Any, ...]]:
    """Every formula and probe cell as `Campaign.cell` reads it (one page read: the same cells, in one go)."""
    columns = [*FORMULAS, "counted"]
    page = ws.campaign("f").page(rows=list(range(1, ROWS + 1)), columns=columns)
    return {
        (row, column): tuple(getattr(found[column], f) for f in STATE)
        for row, found in zip(page.row_ids, page.rows, strict=True)
        for column in columns
    }


def history(ws: Workspace) -> list[dict[str, Any]]:
    """The same steps through the public API: new rows, a pinned cell, an edit, Run Again over every row, a spec
    change, a manual column's run; each step's cells are recorded."""
    ws.apply(SPEC)
    campaign = ws.campaign("f")
    campaign.add_rows(records())
    seen = [cells(ws)]
    campaign.set(5, "doubled", 1000)
    campaign.set(6, "n", "61")
    seen.append(cells(ws))
    campaign.run(["domain", "number", "doubled", "label"], force=True)  # a bulk Run Again leaves pinned cells
    seen.append(cells(ws))
    campaign.run(["doubled"], rows=[5], force=True)  # Run Again on the chosen cell unpins it
    ws.apply(SPEC.replace("number * 2", "number * 3"))
    seen.append(cells(ws))
    campaign.run(["review"])
    campaign.run(FORMULAS, force=True)
    seen.append(cells(ws))
    return seen


def out_of_order(ws: Workspace) -> list[str]:
    """The columns whose table does not hold exactly the row registry's rows in its order."""
    with ws.db.transaction(commit=False) as con:
        tables = load_campaign(con, "f")
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        lined_up = aligned_tables(con, [(tables.rows_table, t) for t in tables.tables.values()], db)
        return [name for name, table in tables.tables.items() if table not in lined_up]


@pytest.mark.parametrize("joined", ["by-position", "by-position-in-ranges", "by-row-id"])
def test_the_fused_pass_reaches_the_cells_the_column_by_column_path_reaches(tmp_path, monkeypatch, joined) -> None:  # type: ignore[no-untyped-def]
    if joined == "by-row-id":  # tables whose order an older version lost
        monkeypatch.setattr("engine.run.fused.aligned_tables", lambda *args, **kwargs: set())
    split_rows = 10 if joined == "by-position-in-ranges" else ROWS + 1  # ranges read in parallel, or one range
    monkeypatch.setattr("engine.run.fused.SPLIT_ROWS", split_rows)
    monkeypatch.setattr("engine.run.fused.threads", lambda con: 3)
    layouts: list[Layout] = []
    layout = FusedPass._layout

    def seen(self: FusedPass, tables: list[str], scope: Scope) -> Layout:
        layouts.append(layout(self, tables, scope))
        return layouts[-1]

    monkeypatch.setattr(FusedPass, "_layout", seen)
    passes: list[frozenset[str]] = []
    fused_run = FusedPass.run

    def counted(self: FusedPass, scope: Scope) -> FusedResult | None:
        result = fused_run(self, scope)
        if result is not None:
            passes.append(frozenset(self.fused))
        return result

    monkeypatch.setattr(FusedPass, "run", counted)
    fused_ws = Workspace.init(tmp_path / "fused")
    fused = history(fused_ws)
    assert not out_of_order(fused_ws)  # edits, pins and reruns update cells in place: every table stays in order
    assert len(passes) >= 4 and set(FORMULAS) <= set().union(*passes), passes  # the fused path did the work
    ranges = [len(seen.ranges) for seen in layouts]
    by_position = [bool(seen.aligned) for seen in layouts]
    if joined == "by-row-id":
        assert not any(by_position)
    else:  # the first run fills empty tables, so it cannot line them up yet
        assert all(by_position[1:]), by_position
        assert max(ranges) == (3 if joined == "by-position-in-ranges" else 0), ranges
    monkeypatch.setattr(Executor, "_uniform_plans", lambda *args: None)  # every run plans row by row
    general_ws = Workspace.init(tmp_path / "general")
    general = history(general_ws)
    assert not out_of_order(general_ws)
    for step, (left, right) in enumerate(zip(fused, general, strict=True)):
        differing = {cell: (left[cell], right[cell]) for cell in left if left[cell] != right[cell]}
        assert not differing, f"step {step}: {dict(list(differing.items())[:5])}"
    assert fused[1][(5, "doubled")][1] == fused[2][(5, "doubled")][1] == Status.PINNED
    assert fused[3][(5, "doubled")][:2] == (12, Status.DONE)  # unpinned, then the spec change made it 4 * 3
    assert fused[3][(6, "doubled")][:2] == (183, Status.DONE)  # the edited row: 61 * 3


def test_run_again_over_every_row_rewrites_only_the_cells_that_changed(ws: Workspace) -> None:
    ws.apply("""
campaign: r
columns:
  - {name: n, kind: input, type: BIGINT}
  - {name: plus, kind: formula, expression: "n + 1"}
  - {name: noise, kind: formula, expression: "n::VARCHAR || ' at ' || now()::VARCHAR"}
""")
    campaign = ws.campaign("r")
    campaign.add_rows([{"n": i} for i in range(ROWS)])
    before = {r: (campaign.cell(r, "plus"), campaign.cell(r, "noise")) for r in range(1, ROWS + 1)}
    report = campaign.run(["plus", "noise"], force=True)
    assert report.computed("plus") == ROWS and report.computed("noise") == ROWS  # every cell was recomputed
    for row, (plus, noise) in before.items():
        again_plus, again_noise = campaign.cell(row, "plus"), campaign.cell(row, "noise")
        assert again_plus == plus  # the same value: the cell on disk is left as it was
        assert again_noise.value != noise.value and again_noise.run_id == report.run_id
        assert again_noise.key == noise.key  # same inputs, same key
        assert again_noise.status == Status.DONE


def test_a_formula_that_raises_in_a_large_run_gives_cell_errors(ws: Workspace) -> None:
    ws.apply("""
campaign: e
columns:
  - {name: n, kind: input}
  - {name: as_int, kind: formula, expression: "n::INTEGER"}
  - {name: twice, kind: formula, expression: "as_int * 2"}
""")
    campaign = ws.campaign("e")
    campaign.add_rows([{"n": "x" if i == 40 else str(i)} for i in range(ROWS)])
    report = campaign.run(["as_int", "twice"], force=True)
    assert report.counts()["as_int"] == {"done": ROWS - 1, "error": 1}
    bad = campaign.cell(41, "as_int")
    assert bad.status == Status.ERROR and bad.error_code == "formula_error"
    assert campaign.cell(41, "twice").error_code == "upstream_error"
    assert campaign.cell(42, "twice").value == 82


def test_downstream_cells_whose_inputs_came_out_the_same_are_kept(ws: Workspace) -> None:
    ws.apply(SPEC)
    campaign = ws.campaign("f")
    campaign.add_rows(records())
    report = campaign.run(["domain"], force=True)
    assert report.counts()["domain"] == {"done": ROWS}
    assert report.counts()["label"] == {"keep": ROWS}
    without_domain = sum(1 for r in records() if "@" not in r["email"])
    report = ws.apply(SPEC.replace("nullif(split_part", "upper(nullif(split_part").replace("'')\"}", "''))\"}")).report
    assert report is not None and report.counts()["domain"] == {"done": ROWS}
    assert report.counts()["label"] == {"done": ROWS - without_domain, "keep": without_domain}  # NULL stayed NULL
    assert campaign.cell(2, "label").value == "SITE1.COM:2"


def test_a_table_an_older_version_left_out_of_order_is_joined_on_row_id(ws: Workspace) -> None:
    ws.apply(SPEC)
    campaign = ws.campaign("f")
    campaign.add_rows(records())
    assert out_of_order(ws) == ["review"]  # a manual column: no cells yet
    with ws.db.transaction() as con:  # what an edit did before cells were updated in place: row 7 moved to the end
        table = load_campaign(con, "f").tables["doubled"]
        con.execute(f"CREATE TEMP TABLE moved AS SELECT * FROM {table} WHERE row_id = 7")
        con.execute(f"DELETE FROM {table} WHERE row_id = 7")
        con.execute(f"INSERT INTO {table} SELECT * FROM moved")
    assert out_of_order(ws) == ["doubled", "review"]
    before = cells(ws)
    campaign.set(8, "n", "800")
    report = campaign.run(FORMULAS[:4], force=True)
    assert report.computed("doubled") == ROWS
    after = cells(ws)
    assert after[(8, "doubled")][:2] == (1600, Status.DONE) and after[(8, "label")][0] == "site3.com:1600"
    assert after[(7, "doubled")] == before[(7, "doubled")] and after[(7, "label")] == before[(7, "label")]
    changed = {cell for cell in after if after[cell] != before[cell] and cell[1] in FORMULAS}
    assert {row for row, _ in changed} == {8}
