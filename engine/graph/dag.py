"""The column DAG: nodes are columns, edges run from a dependency to the step that reads it.

Only data and free functions over it; the planner decides what to do with them. networkx is imported where a
graph is built or walked, so commands that never read a spec (`--help`) do not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import CycleError, SpecError
from engine.types import RunMode

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True)
class ColumnNode:
    """What the planner needs to know about one column."""

    name: str
    is_input: bool = False
    run: RunMode = "auto"
    free: bool = True  # computed at once (formula, python); paid steps are queued instead
    code: bool = False  # computed by user code (python): only a request to compute imports it, never a read
    screens: bool = False  # a manual step with run_if: skipped at once where its run_if is already false
    deps: tuple[str, ...] = ()

    @property
    def auto(self) -> bool:
        return not self.is_input and self.run == "auto"


@dataclass(frozen=True)
class ColumnGraph:
    """An acyclic column graph with a fixed topological order (ties broken by spec order)."""

    nodes: Mapping[str, ColumnNode]
    order: tuple[str, ...]
    _graph: nx.DiGraph = field(repr=False, compare=False)

    @classmethod
    def build(cls, nodes: Iterable[ColumnNode]) -> ColumnGraph:
        """Check references and cycles, and fix the topological order; raises SpecError or CycleError."""
        import networkx as nx

        by_name: dict[str, ColumnNode] = {}
        for node in nodes:
            if node.name in by_name:
                raise SpecError("duplicate column name", hint="give each column its own name", column=node.name)
            by_name[node.name] = node
        graph: nx.DiGraph = nx.DiGraph()
        graph.add_nodes_from(by_name)
        for node in by_name.values():
            for dep in node.deps:
                if dep not in by_name:
                    raise SpecError(
                        f"unknown column reference '{dep}'",
                        hint=f"add a column named {dep}, or fix the spelling (known: {', '.join(sorted(by_name))})",
                        column=node.name,
                    )
                graph.add_edge(dep, node.name)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = []
        if cycle:
            path = [edge[0] for edge in cycle] + [cycle[0][0]]
            raise CycleError(path)
        position = {name: i for i, name in enumerate(by_name)}
        order = tuple(nx.lexicographical_topological_sort(graph, key=lambda n: position[n]))
        return cls(nodes=by_name, order=order, _graph=graph)

    def steps(self) -> list[str]:
        """Step (non-input) columns in topological order."""
        return [name for name in self.order if not self.nodes[name].is_input]

    def auto_steps(self) -> list[str]:
        """Auto-run step columns in topological order."""
        return [name for name in self.order if self.nodes[name].auto]

    def downstream(self, columns: Iterable[str]) -> set[str]:
        """Every column that reads, directly or not, one of `columns` (the columns themselves excluded)."""
        import networkx as nx

        found: set[str] = set()
        for name in columns:
            found |= nx.descendants(self._graph, name)
        return found

    def upstream(self, columns: Iterable[str]) -> set[str]:
        """Every column that one of `columns` reads, directly or not (the columns themselves excluded)."""
        import networkx as nx

        found: set[str] = set()
        for name in columns:
            found |= nx.ancestors(self._graph, name)
        return found

    def sorted(self, columns: Iterable[str]) -> list[str]:
        """`columns` in topological order."""
        wanted = set(columns)
        return [name for name in self.order if name in wanted]
