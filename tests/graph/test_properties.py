"""Property tests over random DAGs and edits (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Status, Workspace
from engine.graph import ColumnGraph, ColumnNode


@st.composite
def dags(draw: st.DrawFn, max_steps: int = 7) -> list[tuple[str, list[str], str, str]]:
    """Columns as (name, deps, kind, run): two inputs, then steps reading earlier columns."""
    columns: list[tuple[str, list[str], str, str]] = [("in0", [], "input", "auto"), ("in1", [], "input", "auto")]
    for i in range(draw(st.integers(1, max_steps))):
        earlier = [c[0] for c in columns]
        deps = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3, unique=True))
        kind = draw(st.sampled_from(["formula", "formula", "probe"]))
        run = draw(st.sampled_from(["auto", "auto", "manual"]))
        columns.append((f"s{i}", deps, kind, run))
    order = draw(st.permutations(columns))  # spec order is free: the graph must sort it
    return list(order)


def spec_yaml(columns: list[tuple[str, list[str], str, str]], *, all_auto_formulas: bool = False) -> str:
    lines = ["campaign: p", "columns:"]
    for name, deps, kind, run in columns:
        if kind == "input":
            lines.append(f"  - {{name: {name}, kind: input}}")
        elif kind == "formula" or all_auto_formulas:
            parts = ", ".join(f"coalesce({d}::VARCHAR, '~')" for d in deps)
            mode = "auto" if all_auto_formulas else run
            lines.append(
                f"  - {{name: {name}, kind: formula, run: {mode}, expression: \"concat_ws('|', '{name}', {parts})\"}}"
            )
        else:
            lines.append(f"  - {{name: {name}, kind: probe, run: {run}, inputs: [{', '.join(deps)}]}}")
    return "\n".join(lines) + "\n"


ROWS = [{"in0": "a", "in1": "b"}, {"in0": "c", "in1": None}]
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(dags(max_steps=12))
@settings(max_examples=200, deadline=None)
def test_topological_order_respects_every_edge(columns: list[tuple[str, list[str], str, str]]) -> None:
    graph = ColumnGraph.build(ColumnNode(n, is_input=k == "input", deps=tuple(d)) for n, d, k, _ in columns)
    position = {name: i for i, name in enumerate(graph.order)}
    for name, deps, _, _ in columns:
        for dep in deps:
            assert position[dep] < position[name]
    assert sorted(graph.order) == sorted(c[0] for c in columns)


def keys_of_row(campaign, row: int) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {name: cell.key for name, cell in campaign.page(rows=[row]).rows[0].items()}


@given(dags(), st.sampled_from(["in0", "in1"]), st.sampled_from([0, 1]))
@SETTINGS
def test_an_edit_changes_the_keys_of_exactly_its_downstream_closure(columns, edited: str, row_index: int) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp))
        ws.apply(spec_yaml(columns, all_auto_formulas=True))
        campaign = ws.campaign("p")
        campaign.add_rows(ROWS)
        row = row_index + 1
        other = 3 - row
        before, before_other = keys_of_row(campaign, row), keys_of_row(campaign, other)
        campaign.set(row, edited, "edited")
        after, after_other = keys_of_row(campaign, row), keys_of_row(campaign, other)
        changed = {name for name in after if after[name] != before[name]}
        assert changed == campaign.spec.graph.downstream([edited])
        assert after_other == before_other


def final_state(campaign) -> list[dict[str, tuple[object, Status]]]:  # type: ignore[no-untyped-def]
    return [{n: (c.value, c.status) for n, c in row.items()} for row in campaign.page().rows]


@given(dags())
@SETTINGS
def test_lazy_batch_and_clicks_reach_the_same_values_and_states(columns) -> None:  # type: ignore[no-untyped-def]
    spec = spec_yaml(columns)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("batch", "lazy", "clicks"):
            ws = Workspace.init(Path(tmp) / path)
            ws.apply(spec)
            campaign = ws.campaign("p")
            campaign.add_rows(ROWS, run=path != "lazy")
            graph = campaign.spec.graph
            steps = graph.steps()
            if path == "batch":
                campaign.run(steps)
            elif path == "lazy":  # ask for every cell, last column first; click manual cells when reached
                for row in (1, 2):
                    for name in reversed(steps):
                        if graph.nodes[name].run == "manual":
                            campaign.run([name], rows=[row])
                        else:
                            campaign.cell(row, name, compute=True)
            else:  # one click per cell in sheet order
                for row in (1, 2):
                    for name in steps:
                        campaign.run([name], rows=[row])
            results.append(final_state(campaign))
    assert results[0] == results[1] == results[2]
    for row in results[0]:
        assert all(status in (Status.DONE,) for _, status in row.values()), row
