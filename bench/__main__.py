from __future__ import annotations

import importlib
import sys

BENCHES = [
    "reactive_core",
    "ai_runner",
    "ui_grid",
    "clicks",
    "record_page",
    "actions",
    "data_io",
    "liveness",
    "one_bill",
    "startup",
    "queries",
    "edits",
    "injection",
    "builder",
    "builder_panel",
    "big_claims",
    "ray_backend",
    "rowwise_ray",
]


def main() -> None:
    chosen = sys.argv[1:] or BENCHES
    for name in chosen:
        if name not in BENCHES:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
