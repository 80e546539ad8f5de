from __future__ import annotations

import pytest

from engine.errors import CycleError, SpecError
from engine.graph import ColumnGraph, ColumnNode, sql_references, template_references
from engine.graph.references import ReferenceError_


def node(name: str, *deps: str) -> ColumnNode:
    return ColumnNode(name, is_input=not deps, deps=deps)


def test_topological_order_keeps_spec_order_between_independent_columns() -> None:
    graph = ColumnGraph.build([node("a"), node("z", "a"), node("b"), node("y", "b", "z")])
    assert graph.order == ("a", "z", "b", "y")
    assert graph.steps() == ["z", "y"]


def test_closures() -> None:
    graph = ColumnGraph.build([node("a"), node("b", "a"), node("c", "b"), node("d"), node("e", "d", "b")])
    assert graph.downstream(["a"]) == {"b", "c", "e"}
    assert graph.upstream(["e"]) == {"a", "b", "d"}
    assert graph.sorted({"e", "a", "c"}) == ["a", "c", "e"]


def test_cycle_path_is_printed_and_names_the_fix() -> None:
    with pytest.raises(CycleError) as caught:
        ColumnGraph.build([node("a"), node("score", "summary", "a"), node("summary", "score")])
    err = caught.value
    assert err.path[0] == err.path[-1]
    assert set(err.path) == {"score", "summary"}
    assert "dependency cycle" in str(err) and "remove" in err.hint


def test_unknown_reference_names_the_column_and_the_known_ones() -> None:
    with pytest.raises(SpecError) as caught:
        ColumnGraph.build([node("email"), node("domain", "emial")])
    assert caught.value.column == "domain"
    assert "emial" in str(caught.value) and "email" in caught.value.hint


def test_sql_references() -> None:
    assert sql_references("split_part(email, '@', 2)") == {"email"}
    assert sql_references('upper("First") || research.summary') == {"First", "research"}
    assert sql_references("list_transform(tags, x -> x || suffix)") == {"tags", "suffix"}
    assert sql_references("current_date") == set()


@pytest.mark.parametrize(
    "bad", ["split_part(email,", "SELECT 1", "", "1; DROP TABLE cells", "a + (SELECT count(*) FROM c1_rows)"]
)
def test_sql_references_refuse_bad_expressions(bad: str) -> None:
    with pytest.raises(ReferenceError_):
        sql_references(bad)


def test_template_references() -> None:
    assert template_references("Hi {{ first_name }} at {{ research.company }} {{ context.icp }}") == {
        "first_name",
        "research",
    }
    with pytest.raises(ReferenceError_):
        template_references("{{ unclosed")
