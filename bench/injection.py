"""What context injection costs an ai step's `prepare` per row, against the same step without it, in one run:

- `plain`: a prompt naming two fields (no block), the floor;
- `injected`: the same prompt with `inject: true`: a Record part of 12 fields and a Context part of 4 documents
  of about 1,500 characters each.

Both render ROWS rows through `Ai.prepare` (the calls are built, not made), alternating, best of REPEATS.
`BENCH_INJECTION_ROWS` sets the rows.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl

from engine.cells import kind_named
from engine.cells.base import PrepareEnv
from engine.spec import parse_spec

RESULTS = Path(__file__).parent / "results" / "injection.json"
ROWS = int(os.environ.get("BENCH_INJECTION_ROWS", "20000"))
REPEATS = 5
FIELDS = [f"field_{i}" for i in range(10)] + ["company", "title"]
DOCUMENTS = {name: (name + " says: " + "plain words about what we sell. " * 48) for name in ("a", "b", "c", "d")}


def spec(inject: bool) -> str:
    inputs = "\n".join(f"  - {{name: {f}, kind: input}}" for f in FIELDS)
    option = ", inject: true" if inject else ""
    return f"""
campaign: bench
columns:
{inputs}
  - {{name: pitch, kind: ai, prompt: "Write to {{{{ title }}}} at {{{{ company }}}}."{option}}}
"""


def seconds_to_prepare(inject: bool, frame: pl.DataFrame) -> float:
    campaign = parse_spec(spec(inject))
    column = campaign.column("pitch")
    env = PrepareEnv("pitch", context=DOCUMENTS, record=campaign.record_fields, columns=frozenset(campaign.names))
    rows = frame.select(["row_id", "key", *column.deps])
    started = time.perf_counter()
    calls = sum(1 for _ in kind_named("ai").prepare(column.options, rows, env))
    elapsed = time.perf_counter() - started
    assert calls == frame.height
    return elapsed


def main() -> None:
    frame = pl.DataFrame(
        {
            "row_id": range(ROWS),
            "key": [f"k{i}" for i in range(ROWS)],
            **{f: [f"{f} value {i}" for i in range(ROWS)] for f in FIELDS},
        }
    )
    best = {"plain": float("inf"), "injected": float("inf")}
    for _ in range(REPEATS):
        for name, inject in (("plain", False), ("injected", True)):
            best[name] = min(best[name], seconds_to_prepare(inject, frame))
    result = {
        "rows": ROWS,
        "load": os.getloadavg()[0],
        "plain_us_per_row": best["plain"] / ROWS * 1e6,
        "injected_us_per_row": best["injected"] / ROWS * 1e6,
        "ratio": best["injected"] / best["plain"],
    }
    print(json.dumps(result, indent=2))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
