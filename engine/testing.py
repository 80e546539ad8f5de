"""Test hooks: what tests and benchmarks look at inside the engine, kept out of the public API (`engine`).

PROBE_LEDGER records every call of the `probe` step kind made in this process, so a test asserts exactly which
cells ran (engine/cells/probe.py).
"""

from __future__ import annotations

from engine.cells.probe import LEDGER as PROBE_LEDGER

__all__ = ["PROBE_LEDGER"]
