"""Column kinds: one module per kind, each a `StepKind` (the protocol in `base`), registered by name in KINDS."""

from __future__ import annotations

from engine.cells.ai import Ai
from engine.cells.base import Batch, PrepareEnv, SendEnv, StepKind, StepOptions
from engine.cells.export import Export
from engine.cells.formula import Formula
from engine.cells.http import Http
from engine.cells.probe import LEDGER, Probe
from engine.cells.python import Python
from engine.types import INPUT_KIND

KINDS: dict[str, StepKind] = {kind.name: kind for kind in (Formula(), Python(), Ai(), Probe(), Http(), Export())}


def kind_named(name: str) -> StepKind:
    """The step kind called `name`; raises KeyError for unknown kinds."""
    return KINDS[name]


__all__ = [
    "INPUT_KIND",
    "KINDS",
    "LEDGER",
    "Batch",
    "PrepareEnv",
    "SendEnv",
    "StepKind",
    "StepOptions",
    "kind_named",
]
