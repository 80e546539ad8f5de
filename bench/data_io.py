"""Data in and out, against DuckDB doing the same job by hand in the same run:

- import of a 12-column CSV (and the same data as Parquet) into a campaign, vs `CREATE TABLE AS SELECT * FROM
  read_csv(...)` (`read_parquet`) into a fresh DuckDB file (target: <= 1.5x);
- export of the campaign to CSV and Parquet, vs `COPY table TO` from that plain table (target: <= 1.5x);
- queries through the sandbox (a fresh locked-down instance per query) vs the same query on the plain table
  through a fresh read-only connection (reported in ms and as a ratio);
- re-import with a key when 1% of the rows changed (reported; the reactivity tests say what it recomputes).

Every timed run is its own process (so peak memory is its own), and the runs of each scenario alternate with
their baseline. Wall time is the figure the targets are about; CPU time (all threads) is printed beside it
because it stays put when other work shares the machine. Sizes: BENCH_ROWS (default 10,000 and 1,000,000).
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

COLUMNS = (
    "range AS id, 'user' || range || '@company' || (range % 5000) || '.com' AS email, "
    "'First' || (range % 777) AS first_name, 'Last' || (range % 991) AS last_name, "
    "'Company ' || (range % 5000) AS company, "
    "['VP Sales', 'CTO', 'Engineer', 'Head of Growth'][range % 4 + 1] AS title, "
    "'City ' || (range % 300) AS city, ['US', 'DE', 'FR', 'GB'][range % 4 + 1] AS country, "
    "(range * 7919) % 20000 AS employees, round((range * 31) % 100000 / 7.0, 2) AS revenue, "
    "DATE '2020-01-01' + (range % 1500)::INTEGER AS signup_date, 'note, with \"quotes\" ' || range AS notes"
)
SPEC = """
campaign: bench
columns:
  - {name: id, kind: input, type: BIGINT}
  - {name: email, kind: input}
  - {name: first_name, kind: input}
  - {name: last_name, kind: input}
  - {name: company, kind: input}
  - {name: title, kind: input}
  - {name: city, kind: input}
  - {name: country, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: revenue, kind: input, type: DOUBLE}
  - {name: signup_date, kind: input, type: DATE}
  - {name: notes, kind: input}
"""
QUERIES = {
    "aggregate": "SELECT country, count(*) AS n, avg(employees) AS e FROM {t} GROUP BY ALL ORDER BY ALL",
    "point": "SELECT id, email, company, revenue, signup_date, notes FROM {t} WHERE email = 'user777@company777.com'",
    "top10": "SELECT email, revenue FROM {t} ORDER BY revenue DESC, id LIMIT 10",
}
REPEATS = 3
QUERY_REPEATS = 5
RESULTS = Path(__file__).parent / "results" / "data_io.json"
PAIRS = [
    ("import_csv", "read_csv"),
    ("import_parquet", "read_parquet"),
    ("export_csv", "copy_csv"),
    ("export_parquet", "copy_parquet"),
]


def make_files(folder: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {COLUMNS} FROM range({rows})) TO '{folder / 'data.csv'}' (HEADER)")
        con.execute(f"COPY (SELECT {COLUMNS} FROM range({rows})) TO '{folder / 'data.parquet'}' (FORMAT parquet)")
        changed = "CASE WHEN id % 100 = 7 THEN 'Changed title' ELSE title END AS title"
        con.execute(
            f"COPY (SELECT * REPLACE ({changed}) FROM (SELECT {COLUMNS} FROM range({rows}))) "
            f"TO '{folder / 'changed.csv'}' (HEADER)"
        )


def fresh_workspace(folder: Path) -> object:
    from engine import Workspace

    shutil.rmtree(folder, ignore_errors=True)
    ws = Workspace.init(folder)
    ws.apply(SPEC)
    return ws


def _cpu() -> float:
    """CPU seconds this process has used (all threads): steadier than wall time on a busy machine."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def scenario(name: str, folder: Path, rows: int) -> dict[str, float]:
    """Run one timed job in this process; `folder` holds the files and the prepared workspaces."""
    import duckdb

    from engine import Workspace

    started, cpu_started = time.perf_counter(), _cpu()
    extra: dict[str, float] = {}
    if name in ("import_csv", "import_parquet"):
        ws = fresh_workspace(folder / f"ws_{name}")
        started, cpu_started = time.perf_counter(), _cpu()
        report = ws.campaign("bench").import_file(folder / f"data.{name.split('_')[1]}")  # type: ignore[attr-defined]
        assert len(report.inserted) == rows, report
    elif name in ("read_csv", "read_parquet"):
        path = folder / f"base_{name}.duckdb"
        path.unlink(missing_ok=True)
        started, cpu_started = time.perf_counter(), _cpu()
        with duckdb.connect(str(path)) as con:
            con.execute(f"CREATE TABLE bench AS SELECT * FROM {name}('{folder / ('data.' + name[5:])}')")
    elif name in ("export_csv", "export_parquet"):
        campaign = Workspace(folder / "ws_import_csv").campaign("bench")
        started, cpu_started = time.perf_counter(), _cpu()
        report = campaign.export(folder / f"out.{name[7:]}")
        assert report.rows == rows
    elif name in ("copy_csv", "copy_parquet"):
        started, cpu_started = time.perf_counter(), _cpu()
        with duckdb.connect(str(folder / "base_read_csv.duckdb"), read_only=True) as con:
            options = "HEADER" if name == "copy_csv" else "FORMAT parquet"
            con.execute(f"COPY bench TO '{folder / ('base.' + name[5:])}' ({options})")
    elif name == "upsert":
        target = folder / "ws_upsert"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder / "ws_import_csv", target)
        campaign = Workspace(target).campaign("bench")
        started, cpu_started = time.perf_counter(), _cpu()
        report = campaign.import_file(folder / "changed.csv", key="email")
        assert report.updated == len(range(7, rows, 100)), report
        extra["updated"] = report.updated
    elif name == "queries":
        return run_queries(folder)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu_started
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }


def run_queries(folder: Path) -> dict[str, float]:
    import duckdb

    from engine import Workspace

    ws = Workspace(folder / "ws_import_csv")
    figures: dict[str, float] = {}
    for label, sql in QUERIES.items():
        ours, plain = [], []
        for _ in range(QUERY_REPEATS):
            started = time.perf_counter()
            got = ws.query(sql.format(t="bench"))
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            with duckdb.connect(str(folder / "base_read_csv.duckdb"), read_only=True) as con:
                expected = con.sql(sql.format(t="bench")).to_arrow_table()
            plain.append(time.perf_counter() - started)
            assert got.rows() == [tuple(r.values()) for r in expected.to_pylist()], label
        figures[f"{label}_ms"] = statistics.median(ours) * 1000
        figures[f"{label}_plain_ms"] = statistics.median(plain) * 1000
    return figures


def run_scenario(name: str, folder: Path, rows: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.data_io", "--scenario", name, str(folder), str(rows)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    if done.returncode:
        raise SystemExit(f"scenario {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(rows: int, folder: Path) -> dict[str, dict[str, float]]:
    make_files(folder, rows)
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(REPEATS):
        for ours, baseline in PAIRS:
            for name in (ours, baseline):
                runs.setdefault(name, []).append(run_scenario(name, folder, rows))
    for _ in range(REPEATS):
        runs.setdefault("upsert", []).append(run_scenario("upsert", folder, rows))
    figures = {
        name: {
            "median_s": statistics.median(r["seconds"] for r in found),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in found),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in found),
        }
        for name, found in runs.items()
    }
    figures["queries"] = run_scenario("queries", folder, rows)
    return figures


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_ROWS", "10000,1000000").split(",")]
    figures: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            folder = Path(tmp) / f"rows{rows}"
            folder.mkdir()
            figures[str(rows)] = measure(rows, folder)
    for rows in sizes:
        found = figures[str(rows)]
        print(f"data in and out, {rows:,} records x 12 columns (median of {REPEATS}, alternating with DuckDB)")
        for ours, baseline in PAIRS:
            mine, theirs = found[ours]["median_s"], found[baseline]["median_s"]
            cpu = found[ours]["median_cpu_s"] / found[baseline]["median_cpu_s"]
            print(
                f"  {ours:<15} {mine:7.3f} s  vs DuckDB {baseline:<13} {theirs:7.3f} s  "
                f"ratio {mine / theirs:.2f}x (target <= 1.5x; CPU time {cpu:.2f}x); "
                f"peak RSS {found[ours]['peak_rss_mib']:.0f} MiB"
            )
        print(f"  re-import with --key, 1% changed: {found['upsert']['median_s']:.3f} s")
        queries = found["queries"]
        for label in QUERIES:
            ms, plain = queries[f"{label}_ms"], queries[f"{label}_plain_ms"]
            print(
                f"  query {label:<10} sandbox {ms:7.1f} ms  plain DuckDB {plain:7.1f} ms  "
                f"overhead {ms - plain:+.1f} ms, ratio {ms / plain:.2f}x"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    shown = RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS
    print(f"  figures written to {shown}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--scenario":
        print(json.dumps(scenario(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
