"""The column DAG: nodes are columns, edges run from a dependency to the step that reads it.

Only data and free functions over it; the planner decides what to do with them. A campaign has tens of columns, so
the graph is plain dicts and the standard library: networkx cost every command that reads a spec 0.15 s to import.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.errors import CycleError, SpecError
from engine.types import RunMode


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
    _readers: Mapping[str, tuple[str, ...]] = field(repr=False, compare=False)  # column -> the steps reading it

    @classmethod
    def build(cls, nodes: Iterable[ColumnNode]) -> ColumnGraph:
        """Check references and cycles, and fix the topological order; raises SpecError or CycleError."""
        by_name: dict[str, ColumnNode] = {}
        for node in nodes:
            if node.name in by_name:
                raise SpecError("duplicate column name", hint="give each column its own name", column=node.name)
            by_name[node.name] = node
        readers: dict[str, list[str]] = {name: [] for name in by_name}
        for node in by_name.values():
            for dep in node.deps:
                if dep not in by_name:
                    raise SpecError(
                        f"unknown column reference '{dep}'",
                        hint=f"add a column named {dep}, or fix the spelling (known: {', '.join(sorted(by_name))})",
                        column=node.name,
                    )
                if node.name not in readers[dep]:
                    readers[dep].append(node.name)
        cycle = _find_cycle(readers)
        if cycle:
            raise CycleError(cycle)
        order = _topological_order(readers)
        graph = {name: tuple(found) for name, found in readers.items()}
        return cls(nodes=by_name, order=order, _readers=graph)

    def steps(self) -> list[str]:
        """Step (non-input) columns in topological order."""
        return [name for name in self.order if not self.nodes[name].is_input]

    def auto_steps(self) -> list[str]:
        """Auto-run step columns in topological order."""
        return [name for name in self.order if self.nodes[name].auto]

    def downstream(self, columns: Iterable[str]) -> set[str]:
        """Every column that reads, directly or not, one of `columns` (the columns themselves excluded)."""
        return _reach(self._readers, columns)

    def upstream(self, columns: Iterable[str]) -> set[str]:
        """Every column that one of `columns` reads, directly or not (the columns themselves excluded)."""
        return _reach({name: node.deps for name, node in self.nodes.items()}, columns)

    def sorted(self, columns: Iterable[str]) -> list[str]:
        """`columns` in topological order."""
        wanted = set(columns)
        return [name for name in self.order if name in wanted]


def _topological_order(readers: Mapping[str, list[str]]) -> tuple[str, ...]:
    """Kahn's algorithm taking, among the columns ready, the earliest in the spec (`readers` is in spec order)."""
    position = {name: i for i, name in enumerate(readers)}
    waiting = dict.fromkeys(readers, 0)
    for found in readers.values():
        for reader in found:
            waiting[reader] += 1
    ready = [position[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    names = list(readers)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for reader in readers[name]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, position[reader])
    return tuple(order)


def _find_cycle(readers: Mapping[str, list[str]]) -> list[str]:
    """A dependency cycle as a path that ends where it starts (`a -> b -> a`), or [] when there is none."""
    done: set[str] = set()
    for start in readers:
        if start in done:
            continue
        path, on_path = [start], {start}
        pending = [iter(readers[start])]
        while pending:
            reader = next(pending[-1], None)
            if reader is None:  # every reader of path[-1] explored: no cycle runs through it
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if reader in on_path:
                return [*path[path.index(reader) :], reader]
            if reader not in done:
                path.append(reader)
                on_path.add(reader)
                pending.append(iter(readers[reader]))
    return []


def _reach(edges: Mapping[str, Iterable[str]], columns: Iterable[str]) -> set[str]:
    """Every column reachable from `columns` along `edges` (the columns themselves only if on a path back)."""
    found: set[str] = set()
    todo = [next_ for name in columns for next_ in edges[name]]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(edges[name])
    return found
