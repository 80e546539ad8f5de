"""The engine's packages import downward only (issue 14).

The import graph of `engine/` is read from the source with `ast` (every import: module level, inside functions,
under `if TYPE_CHECKING`, relative ones resolved), then collapsed to parts: a package (`engine/store/`) or a
top-level module (`engine/campaign.py`), `engine/__init__.py` being the part `engine`. It fails when

- two parts import each other, directly or around a loop (the message names the loop and its imports);
- a part imports one above it in LAYERS, unless that import is in ALLOWED_UP (at most one, its import line
  carrying a comment that says why);
- `engine/graph/` imports a library that does I/O or a heavy data library (duckdb, polars, pyarrow, httpx,
  litellm, os, pathlib, ...), or calls open/print/input: the DAG and the planner are pure.

A type-only import counts: a module that names a higher layer's types knows that layer (the io/importer ↔
campaign circle of issue 14 ran through one).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top: a part may import the parts listed before it, never one listed after it.
LAYERS = [
    "errors",  # the exception hierarchy a user meets, each error carrying its fix
    "types",  # Status, ErrorCode and the ids every layer shares
    "graph",  # the column DAG, references, the planner and the cell-fate rules: pure, no I/O
    "redaction",  # secrets named by steps, read only when a call is made, redacted everywhere else
    "llm",  # the one seam to AI providers: offline model, direct HTTP client, litellm
    "net",  # outbound HTTP for steps: the address guard and the guarded client
    "cache",  # the result cache: paid answers on disk, keyed by what produced them
    "runner",  # the async call pool: paid calls, budget, rate limits, retry policy, single flight; its backends
    "cells",  # one module per step kind behind the StepKind protocol; no tables
    "action_columns",  # columns that name a library action: written out from it, and following its changes
    "spec",  # campaign specs: YAML in, a checked CampaignSpec out
    "store",  # the DuckDB tables: schema, catalog, cells, edits, settings, outbox, pauses, run log
    "sql",  # users' SQL: the read-only sandbox and the campaigns' views
    "io",  # files in and out: import writes records (its caller runs what follows), export runs in the sandbox
    "run",  # between a request and stored cells: executor, verdicts, fused pass, paid loop, lifecycle, reports
    "estimate",  # what a run would call and spend, before spending
    "auth",  # roles and tokens: who may do what, for every entry point
    "logins",  # UI logins: argon2 passwords and expiring sessions (hashed ids), over auth's users and tokens
    "campaign_reads",  # looking at one campaign: a cell, a page of the grid, status counts, every value
    "campaign",  # one campaign's requests: add and import records, edit, run, estimate, look
    "actions",  # the action library: actions run on one record, their results and documents, built-in templates
    "builder",  # the action builder chat: a request becomes a checked, previewed proposal, applied on accept
    "copilot",  # Copilot: a result continued in a chat; a reply saved to the record or pinned as the cell's value
    "facade",  # what the faces ask of a workspace beyond campaigns: people, tokens, schedules, run log
    "workspace",  # the workspace folder and database; hands out campaigns
    "status",  # what `runsheet status` shows, read with DuckDB alone (the engine's way when it must)
    "schedules",  # runs a workspace's campaigns on a cron or an interval, inside `runsheet serve`
    "intake",  # records posted to the API enrich themselves: background runs within an intake budget
    "warm",  # the warm runner: a long-lived process that runs clicks (and small `runsheet run`s) as normal runs
    "engine",  # the public API (engine/__init__.py) that the faces import
    "testing",  # test hooks kept out of the public API (the probe ledger)
    "api",  # `runsheet serve`'s HTTP API
    "cli",  # the `runsheet` command line
]

# Imports that point up on purpose: (importing module, imported module) -> why. At most one; the import line
# (or the line above it) carries a comment that says why.
ALLOWED_UP: dict[tuple[str, str], str] = {}

# Libraries engine/graph may import: pure parsers and graph algorithms. Any other third-party library fails.
GRAPH_LIBRARIES = {"networkx", "jinja2", "sqlglot"}
# Standard library modules that reach files, processes or the network.
IO_STDLIB = set(
    "asyncio ftplib glob http io mmap multiprocessing os pathlib pickle selectors"
    " shelve shutil smtplib socket sqlite3 ssl subprocess tempfile urllib".split()
)
IO_CALLS = {"open", "print", "input"}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it was written."""

    source: str  # importing module, e.g. engine.io.importer
    target: str  # imported engine module, or the top-level name of an outside library
    path: Path
    line: int


def engine_modules(root: Path) -> dict[str, Path]:
    """Every module under root/engine by dotted name (a package by its __init__)."""
    found = {}
    for path in sorted((root / "engine").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def read_imports(root: Path) -> tuple[dict[str, Path], list[Import]]:
    """Every import of every engine module. Engine targets resolve to the most specific module that exists
    (`from engine.store.cells import Scope` -> engine.store.cells); outside ones to their top-level name."""
    modules = engine_modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: climb from the module's package
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names] if base.startswith("engine") else [base]
            for name in names:
                if name == "engine" or name.startswith("engine."):
                    target = resolve(name)
                    if target and target != module:
                        found.append(Import(module, target, path, node.lineno))
                else:
                    found.append(Import(module, name.split(".")[0], path, node.lineno))
    return modules, found


def part_of(module: str) -> str:
    """engine -> engine; engine.store.cells -> store; engine.campaign -> campaign."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else bits[0]


def part_graph(modules: dict[str, Path], imports: list[Import]) -> nx.DiGraph:
    """Parts and the arrows between them; each arrow keeps the module imports that make it (`via`)."""
    graph = nx.DiGraph()
    graph.add_nodes_from({part_of(m) for m in modules})
    for imp in imports:
        if imp.target not in modules:
            continue
        a, b = part_of(imp.source), part_of(imp.target)
        if a != b:
            graph.add_edge(a, b)
            graph.edges[a, b].setdefault("via", set()).add(f"{imp.source} -> {imp.target}")
    return graph


def part_cycles(graph: nx.DiGraph) -> list[str]:
    """One loop per strongly connected group of parts, named with the imports that close it."""
    found = []
    for group in nx.strongly_connected_components(graph):
        if len(group) < 2:
            continue
        loop = nx.find_cycle(graph.subgraph(group))
        names = " -> ".join([a for a, _ in loop] + [loop[0][0]])
        via = "; ".join(sorted(v for a, b in loop for v in graph.edges[a, b]["via"]))
        found.append(f"{names} (parts {sorted(group)}; through {via})")
    return sorted(found)


def upward_imports(modules: dict[str, Path], imports: list[Import], layers: list[str]) -> list[Import]:
    """Imports from a part to a part above it in `layers`."""
    rank = {part: i for i, part in enumerate(layers)}
    return [imp for imp in imports if imp.target in modules and rank[part_of(imp.source)] < rank[part_of(imp.target)]]


def unplaced_parts(modules: dict[str, Path], layers: list[str]) -> list[str]:
    return sorted({part_of(m) for m in modules} - set(layers))


def has_comment(imp: Import) -> bool:
    """The import line, or the line above it, carries a comment."""
    lines = imp.path.read_text().splitlines()
    return any("#" in lines[i] for i in (imp.line - 2, imp.line - 1) if 0 <= i < len(lines))


def graph_io(root: Path) -> list[str]:
    """What in engine/graph imports an I/O or outside library, or calls open/print/input."""
    modules, imports = read_imports(root)
    found = []
    for imp in imports:
        if part_of(imp.source) != "graph" or imp.target in modules:
            continue
        name = imp.target
        if name in IO_STDLIB or (name not in sys.stdlib_module_names and name not in GRAPH_LIBRARIES):
            found.append(f"{imp.path.relative_to(root)}:{imp.line} imports {name}")
    for path in sorted((root / "engine" / "graph").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_CALLS:
                found.append(f"{path.relative_to(root)}:{node.lineno} calls {node.func.id}()")
    return found


def test_every_part_has_a_layer() -> None:
    modules, _ = read_imports(ROOT)
    assert unplaced_parts(modules, LAYERS) == [], "add the new part to LAYERS, with a comment saying what it owns"


def test_no_import_cycle_between_engine_packages() -> None:
    modules, imports = read_imports(ROOT)
    cycles = part_cycles(part_graph(modules, imports))
    assert cycles == [], "import cycles between engine parts:\n" + "\n".join(cycles)


def test_imports_point_down() -> None:
    assert len(ALLOWED_UP) <= 1, "at most one upward import"
    modules, imports = read_imports(ROOT)
    up = upward_imports(modules, imports, LAYERS)
    unexpected = sorted(
        f"{i.source} -> {i.target} ({i.path.relative_to(ROOT)}:{i.line})"
        for i in up
        if (i.source, i.target) not in ALLOWED_UP
    )
    assert unexpected == [], "imports pointing up LAYERS:\n" + "\n".join(unexpected)
    allowed = [i for i in up if (i.source, i.target) in ALLOWED_UP]
    assert [f"{i.source} -> {i.target}" for i in allowed if not has_comment(i)] == [], "say why at the import"


def test_graph_does_no_io() -> None:
    found = graph_io(ROOT)
    assert found == [], "engine/graph must stay pure:\n" + "\n".join(found)


# The checks themselves, on a small engine written to a temporary folder: each must catch what it is for.


def write_engine(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "engine" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


GOOD = {
    "__init__.py": "from engine.campaign import Campaign\n",
    "errors.py": "",
    "graph/__init__.py": "import networkx\nfrom .dag import build\n",
    "graph/dag.py": "from collections.abc import Iterable\nfrom engine.errors import CycleError\n",
    "store/__init__.py": "",
    "store/cells.py": "def write():\n    from ..graph import dag\n",
    "campaign.py": "from engine.store.cells import write\nfrom engine.graph.dag import build\n",
}
SMALL_LAYERS = ["errors", "graph", "store", "campaign", "engine"]


def test_the_checks_pass_a_house_that_imports_down(tmp_path: Path) -> None:
    write_engine(tmp_path, GOOD)
    modules, imports = read_imports(tmp_path)
    assert ("engine.store.cells", "engine.graph.dag") in {(i.source, i.target) for i in imports}  # relative
    assert sorted(part_graph(modules, imports).edges) == [
        ("campaign", "graph"),
        ("campaign", "store"),
        ("engine", "campaign"),
        ("graph", "errors"),
        ("store", "graph"),
    ]
    assert part_cycles(part_graph(modules, imports)) == []
    assert upward_imports(modules, imports, SMALL_LAYERS) == []
    assert unplaced_parts(modules, SMALL_LAYERS) == []
    assert graph_io(tmp_path) == []


@pytest.mark.parametrize("type_only", [False, True])
def test_the_checks_catch_a_loop_and_an_upward_import(tmp_path: Path, type_only: bool) -> None:
    late = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.campaign import Campaign\n"
        if type_only
        else "def rows():\n    from engine.campaign import Campaign  # inside a function\n"
    )
    write_engine(tmp_path, GOOD | {"store/records.py": late})
    modules, imports = read_imports(tmp_path)
    [loop] = part_cycles(part_graph(modules, imports))
    assert loop.startswith(("campaign -> store -> campaign", "store -> campaign -> store"))
    assert "engine.store.records -> engine.campaign" in loop
    up = upward_imports(modules, imports, SMALL_LAYERS)
    assert [(i.source, i.target, i.line) for i in up] == [
        ("engine.store.records", "engine.campaign", 3 if type_only else 2)
    ]
    assert has_comment(up[0]) is not type_only


def test_the_checks_catch_io_in_the_graph_and_an_unplaced_part(tmp_path: Path) -> None:
    write_engine(
        tmp_path,
        GOOD
        | {
            "graph/fate.py": "import os.path\n\ndef arrow():\n    import pyarrow as pa\n    print(pa)\n",
            "graph/dag.py": "from duckdb import connect\n",
            "extra.py": "",
        },
    )
    modules, _ = read_imports(tmp_path)
    assert graph_io(tmp_path) == [
        "engine/graph/dag.py:1 imports duckdb",
        "engine/graph/fate.py:1 imports os",
        "engine/graph/fate.py:4 imports pyarrow",
        "engine/graph/fate.py:5 calls print()",
    ]
    assert unplaced_parts(modules, SMALL_LAYERS) == ["extra"]
