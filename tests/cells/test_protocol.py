"""The step-kind protocol is the contract: every registered kind is a `StepKind` that states what it differs in,
the engine's prices and token guesses come from the kinds, and no kind reaches into the store."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from engine.cells import KINDS, SendEnv, StepKind, StepOptions
from engine.cells.base import DEFAULT_OUTPUT_TOKENS
from engine.estimate import call_price
from engine.spec import parse_spec
from engine.types import Status

ENGINE = Path(__file__).resolve().parents[2] / "engine"


@dataclass(frozen=True)
class Capabilities:
    """What a kind is expected to differ in from the defaults of `StepKind`."""

    free: bool
    makes: str  # the method that makes its values: sql, compute or prepare
    cacheable: bool = False
    side_effect: bool = False
    reads_only: frozenset[Status] | None = None
    keys_on_upstream_runs: bool = False


EXPECTED = {
    "formula": Capabilities(free=True, makes="sql"),
    "python": Capabilities(free=True, makes="compute"),
    "ai": Capabilities(free=False, makes="prepare", cacheable=True),
    "probe": Capabilities(free=False, makes="prepare"),
    "http": Capabilities(free=False, makes="prepare"),
    "export": Capabilities(
        free=False,
        makes="prepare",
        side_effect=True,
        reads_only=frozenset({Status.DONE, Status.NOT_FOUND, Status.SKIPPED, Status.CONFIRMED}),
        keys_on_upstream_runs=True,
    ),
}
MAKERS = ("sql", "compute", "prepare")


def overrides(kind: StepKind, method: str) -> bool:
    return getattr(type(kind), method) is not getattr(StepKind, method)


def test_every_registered_kind_is_stated_here() -> None:
    assert sorted(KINDS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_registered_kind_satisfies_the_protocol(name: str) -> None:
    kind = KINDS[name]
    assert isinstance(kind, StepKind)
    assert kind.name == name
    assert isinstance(kind.free, bool)
    assert isinstance(kind.options, type) and issubclass(kind.options, StepOptions)
    assert isinstance(kind.cacheable, bool)
    assert isinstance(kind.side_effect, bool)
    assert isinstance(kind.keys_on_upstream_runs, bool)
    assert kind.reads_only is None or (
        isinstance(kind.reads_only, frozenset) and all(isinstance(s, Status) for s in kind.reads_only)
    )


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_kind_states_what_it_differs_in(name: str) -> None:
    kind, expected = KINDS[name], EXPECTED[name]
    assert (kind.free, kind.cacheable, kind.side_effect) == (expected.free, expected.cacheable, expected.side_effect)
    assert (kind.reads_only, kind.keys_on_upstream_runs) == (expected.reads_only, expected.keys_on_upstream_runs)
    assert [m for m in MAKERS if overrides(kind, m)] == [expected.makes]
    assert overrides(kind, "payloads") == expected.side_effect
    assert overrides(kind, "price") == (not expected.free)


def test_the_defaults_say_a_kind_lacks_a_capability() -> None:
    ai, formula = KINDS["ai"], KINDS["formula"]
    ai_options = ai.options.model_validate({"prompt": "hi {{ name }}"})
    assert ai.sql(ai_options) is None
    assert formula.sql(formula.options.model_validate({"expression": "upper(name)"})) == "upper(name)"
    assert formula.context_names(formula.options.model_validate({"expression": "1"}), frozenset()) == set()
    assert formula.reads_record(formula.options.model_validate({"expression": "1"}), frozenset()) is False
    assert ai.reads_record(ai.options.model_validate({"prompt": "Write."}), frozenset()) is True  # names nothing
    assert ai.reads_record(ai_options, frozenset({"name"})) is False
    batch = pl.DataFrame({"row_id": [1]})
    with pytest.raises(NotImplementedError):
        ai.compute(ai_options, batch)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError):
        ai.payloads(ai_options, batch, SendEnv("c", "x"))


SPEC = """
campaign: prices
columns:
  - {name: name, kind: input}
  - {name: upper_name, kind: formula, expression: "upper(name)"}
  - {name: offline, kind: ai, prompt: "about {{ name }}"}
  - {name: deep, kind: ai, model: m1, tier: deep, prompt: "{{ name }} in forty characters of prompt!", max_tokens: 100}
  - {name: uncapped, kind: ai, model: m1, prompt: "{{ name }} at twenty chars"}
  - {name: counted, kind: probe, inputs: [name], credits: 1.5}
  - {name: fetched, kind: http, url: "https://example.com/{{ name }}", credits: 0.25}
  - {name: pushed, kind: export, url: "https://example.com/hook", fields: [name], credits: 2}
"""


def test_prices_and_token_guesses_come_from_the_kinds() -> None:
    spec = parse_spec(SPEC)
    tiers = {"fast": 0.5, "standard": 1.0, "deep": 3.5}
    prices = {c.name: call_price(c, tiers) for c in spec.columns}
    assert prices == {
        "name": 0.0,
        "upper_name": 0.0,
        "offline": 0.0,  # the offline model is free whatever its tier costs
        "deep": 3.5,
        "uncapped": 1.0,
        "counted": 1.5,
        "fetched": 0.25,
        "pushed": 2.0,
    }
    guesses = {c.name: KINDS[c.kind].guess_tokens(c.options) for c in spec.columns if not c.is_input}
    deep_prompt = spec.column("deep").options.prompt  # type: ignore[union-attr]
    assert len(deep_prompt) // 4 + 100 == guesses["deep"] == 110
    uncapped_prompt = spec.column("uncapped").options.prompt  # type: ignore[union-attr]
    assert guesses["uncapped"] == len(uncapped_prompt) // 4 + DEFAULT_OUTPUT_TOKENS
    # kinds that call no model use no tokens (the dry run counts none for them)
    assert guesses["counted"] == guesses["fetched"] == guesses["pushed"] == guesses["upper_name"] == 0


def test_context_names_come_from_the_kinds() -> None:
    spec = parse_spec(
        """
campaign: context
columns:
  - {name: name, kind: input}
  - {name: pitch, kind: ai, prompt: "{{ context.offer }} for {{ name }}", system: "{{ context.tone }}"}
  - {name: upper_name, kind: formula, expression: "upper(name)"}
  - {name: counted, kind: probe, inputs: [name]}
"""
    )
    assert {c.name: c.context for c in spec.columns} == {
        "name": (),
        "pitch": ("offer", "tone"),
        "upper_name": (),
        "counted": (),
    }


def test_an_export_says_what_each_claimed_row_would_send() -> None:
    export = KINDS["export"]
    options = export.options.model_validate({"url": "https://example.com/hook", "event": "lead.ready"})
    rows = pl.DataFrame(
        {"row_id": [7, 9], "key": [11, 12], "email": ["a@x.io", None], "facts": ['{"size": 3}', "not json"]},
        schema_overrides={"key": pl.UInt64},
    )
    sent = export.payloads(options, rows, SendEnv("crm", "push", frozenset({"facts"})))
    assert sent.columns == ["row_id", "key", "payload"]
    assert sent["row_id"].to_list() == [7, 9] and sent["key"].to_list() == [11, 12]
    first, second = (json.loads(p) for p in sent["payload"])
    assert first["type"] == second["type"] == "lead.ready"
    assert first["data"] == {"campaign": "crm", "record": 7, "step": "push", "email": "a@x.io", "facts": {"size": 3}}
    assert second["data"] == {"campaign": "crm", "record": 9, "step": "push", "email": None, "facts": "not json"}
    assert first["timestamp"].endswith("Z")


def imported_modules(path: Path, root: Path = ENGINE) -> set[str]:
    """Every module `path` (a module of the package at `root`) imports, anywhere in it: inside functions and
    TYPE_CHECKING blocks too, relative imports resolved."""
    package = [root.name, *path.relative_to(root).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_the_import_scan_sees_every_import(tmp_path: Path) -> None:
    sample = tmp_path / "engine" / "cells" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from engine.store.catalog import CampaignTables\n"
        "def f():\n    import engine.store.outbox\n    from ..store import database\n    from . import base\n"
    )
    found = imported_modules(sample, tmp_path / "engine")
    assert {"engine.store.catalog", "engine.store.outbox", "engine.store.database", "engine.cells.base"} <= found


def test_no_step_kind_imports_the_store() -> None:
    modules = sorted((ENGINE / "cells").glob("*.py"))
    assert len(modules) >= 8
    reaching = {
        str(path.relative_to(ENGINE.parent)): sorted(m for m in imported_modules(path) if m.startswith("engine.store"))
        for path in modules
    }
    assert {path: found for path, found in reaching.items() if found} == {}


PROBED = ("kind", "step", "options")  # names that hold a step kind or its options


def probes(path: Path) -> list[str]:
    """getattr/hasattr calls in `path` whose object is a step kind or a step's options."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            target = ast.unparse(node.args[0]) if node.args else ""
            if any(word in target.lower() for word in PROBED):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_engine_calls_the_protocol_instead_of_probing_kinds() -> None:
    found = [p for path in sorted(ENGINE.rglob("*.py")) for p in probes(path)]
    assert found == []


def test_the_probe_scan_finds_probes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'x = getattr(kind_named("ai"), "cacheable", False)\n'
        'y = hasattr(column.options, "credits")\n'
        'z = getattr(module, "function", None)\n'
    )
    assert [p.split(":")[1] for p in probes(sample)] == ["1", "2"]
