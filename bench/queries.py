"""Queries near DuckDB's floor (issue 16), each against DuckDB doing the same job in the same run, alternating:
`Workspace.query` in process on a 1M-record campaign (12 columns): a point lookup (`WHERE email = '...'`, six
  columns and all of them) and an aggregate (GROUP BY over two columns), against the same SQL on a plain table
  holding the same data, through a connection opened once, to a polars frame as ours gives (targets: point
  <= 3x, aggregate <= 2x). Medians of QUERY_REPEATS after two warm-up rounds; ours runs first in even rounds,
  second in odd ones. CPU time (all threads of the process) is printed beside wall time. (`runsheet import` and
  `export` as whole processes against DuckDB's reader and COPY in a script: `python -m bench data_io`.)

The 1-minute load average is printed before and after each part: on a busy machine trust the CPU ratios more.
Sizes: BENCH_ROWS (default 1,000,000). Figures also go to bench/results/queries.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data_io import COLUMNS, SPEC

QUERIES = {
    "point": "SELECT id, email, company, revenue, signup_date, notes FROM bench WHERE email = 'user777@company777.com'",
    "point_all": "SELECT * EXCLUDE (row_id) FROM bench WHERE email = 'user777@company777.com'",
    "aggregate": "SELECT country, count(*) AS n, avg(employees) AS e FROM bench GROUP BY ALL ORDER BY ALL",
}
TARGETS = {"point": 3.0, "point_all": 3.0, "aggregate": 2.0}
QUERY_REPEATS = int(os.environ.get("BENCH_QUERY_REPEATS", "15"))
RESULTS = Path(__file__).parent / "results" / "queries.json"
HERE = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _load() -> float:
    return os.getloadavg()[0]


def prepare(folder: Path, rows: int) -> None:
    """The CSV, a workspace with it imported (through the CLI) and a plain DuckDB file with it."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {COLUMNS} FROM range({rows})) TO '{folder / 'data.csv'}' (HEADER)")
    (folder / "spec.yaml").write_text(SPEC)
    new_workspace(folder / "ws")
    runsheet(folder / "ws", "import", str(folder / "data.csv"), "--campaign", "bench")
    with duckdb.connect(str(folder / "plain.duckdb")) as con:
        con.execute(f"CREATE TABLE bench AS SELECT * FROM read_csv('{folder / 'data.csv'}')")


def new_workspace(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    runsheet(path, "init", str(path))
    runsheet(path, "apply", str(path.parent / "spec.yaml"))


def runsheet(workspace: Path, *args: str) -> None:
    env = {**os.environ, "RUNSHEET_WORKSPACE": str(workspace)}
    command = [sys.executable, "-m", "engine.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def measure_queries(folder: Path) -> dict[str, dict[str, float]]:
    import duckdb
    import polars as pl

    from engine import Workspace

    ws = Workspace(folder / "ws")
    plain = duckdb.connect(str(folder / "plain.duckdb"), read_only=True)
    figures: dict[str, dict[str, float]] = {}
    for label, sql in QUERIES.items():
        plain_sql = sql.replace(" EXCLUDE (row_id)", "")
        expected = pl.from_arrow(plain.sql(plain_sql).to_arrow_table())
        assert isinstance(expected, pl.DataFrame)
        got = ws.query(sql)
        assert got.rows() == expected.rows(), (label, got, expected)
        times: dict[str, list[tuple[float, float]]] = {"ours": [], "plain": []}
        load = _load()
        for round_ in range(QUERY_REPEATS + 2):
            order = ["ours", "plain"] if round_ % 2 == 0 else ["plain", "ours"]
            for side in order:
                cpu, started = _cpu(), time.perf_counter()
                if side == "ours":
                    ws.query(sql)
                else:
                    pl.from_arrow(plain.sql(plain_sql).to_arrow_table())
                if round_ >= 2:  # two warm-up rounds
                    times[side].append((time.perf_counter() - started, _cpu() - cpu))
        figures[label] = {
            "ours_ms": statistics.median(t for t, _ in times["ours"]) * 1000,
            "plain_ms": statistics.median(t for t, _ in times["plain"]) * 1000,
            "ours_cpu_ms": statistics.median(c for _, c in times["ours"]) * 1000,
            "plain_cpu_ms": statistics.median(c for _, c in times["plain"]) * 1000,
            "load_before": load,
            "load_after": _load(),
        }
    plain.close()
    return figures


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", "1000000").split(",")[-1])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder, rows)
        queries = measure_queries(folder)
    print(f"queries near DuckDB's floor, {rows:,} records x 12 columns")
    for label, f in queries.items():
        ratio, cpu = f["ours_ms"] / f["plain_ms"], f["ours_cpu_ms"] / f["plain_cpu_ms"]
        print(
            f"  query {label:<10} ours {f['ours_ms']:7.1f} ms  plain DuckDB {f['plain_ms']:7.1f} ms  "
            f"ratio {ratio:.2f}x (target <= {TARGETS[label]:g}x; CPU {f['ours_cpu_ms']:.1f} vs "
            f"{f['plain_cpu_ms']:.1f} ms, {cpu:.2f}x)  load {f['load_before']:.1f}->{f['load_after']:.1f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "queries": queries}, indent=2) + "\n")
    shown = RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS
    print(f"  figures written to {shown}")


if __name__ == "__main__":
    main()
