"""Data in and out, against DuckDB doing the same job by hand in the same run:

- `runsheet import data.csv` (and the same data as Parquet) into a campaign whose spec is applied, as a whole
  process (start-up included), vs a Python script doing `CREATE TABLE AS SELECT * FROM read_csv(...)`
  (`read_parquet`) into a fresh DuckDB file (target, issue 16: <= 1.3x);
- `runsheet export` of the campaign to CSV and Parquet, as a whole process, vs a script doing `COPY table TO`
  from that plain table (target: <= 1.3x);
- queries through the sandbox vs the same query on the plain table through a fresh read-only connection
  (reported in ms and as a ratio; `python -m bench.queries` measures them in process against their target);
- re-import with a key when 1% of the rows changed (reported; the reactivity tests say what it recomputes).

Every timed run is its own process, timed from outside: wall time from start to exit, CPU time (user + system,
all threads) and peak memory from the kernel's account of that child (os.wait4). The runs of each scenario
alternate with their floor (ours first in even rounds, second in odd ones), and the 1-minute load average is
recorded before and after each size. Wall time is the figure the targets are about; CPU time is printed beside
it because it stays put when other work shares the machine. Sizes: BENCH_ROWS (default 10,000 and 1,000,000).
"""

from __future__ import annotations

import compileall
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
HERE = Path(__file__).resolve().parents[1]
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


RUNSHEET = [sys.executable, "-m", "engine.cli"]  # the `runsheet` script's entry point, beside this interpreter
FLOOR_READ = """import duckdb
con = duckdb.connect({base!r})
con.execute("CREATE TABLE bench AS SELECT * FROM {reader}('{data}')")
con.close()
"""
FLOOR_COPY = """import duckdb
con = duckdb.connect({base!r}, read_only=True)
con.execute("COPY bench TO '{target}' ({options})")
con.close()
"""


def _cpu() -> float:
    """CPU seconds this process has used (all threads): steadier than wall time on a busy machine."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def runsheet(workspace: Path, *args: str) -> None:
    """One untimed `runsheet` command on `workspace` (setting up a scenario)."""
    env = {**os.environ, "RUNSHEET_WORKSPACE": str(workspace)}
    done = subprocess.run([*RUNSHEET, *args], capture_output=True, text=True, env=env, cwd=HERE)
    if done.returncode:
        raise SystemExit(f"runsheet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def fresh_workspace(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    runsheet(folder, "init", str(folder))
    (folder.parent / "spec.yaml").write_text(SPEC)
    runsheet(folder, "apply", str(folder.parent / "spec.yaml"))
    return folder


def timed_process(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time, CPU time (user + system, all threads) and peak RSS of one whole process."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=HERE)
        _, status, used = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            out.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{out.read()}")
    return {"seconds": seconds, "cpu_s": used.ru_utime + used.ru_stime, "peak_rss_mib": used.ru_maxrss / 1024}


def whole_process(name: str, folder: Path) -> dict[str, float]:
    """Set up and time one whole-process scenario: ours (a `runsheet` command) or its DuckDB floor (a script)."""
    if name in ("import_csv", "import_parquet"):
        workspace = fresh_workspace(folder / f"ws_{name}")
        env = {**os.environ, "RUNSHEET_WORKSPACE": str(workspace)}
        return timed_process([*RUNSHEET, "import", str(folder / f"data.{name[7:]}"), "--campaign", "bench"], env)
    if name in ("read_csv", "read_parquet"):
        base = folder / f"base_{name}.duckdb"
        base.unlink(missing_ok=True)
        script = FLOOR_READ.format(base=str(base), reader=name, data=folder / f"data.{name[5:]}")
        return timed_process([sys.executable, "-c", script])
    if name in ("export_csv", "export_parquet"):
        env = {**os.environ, "RUNSHEET_WORKSPACE": str(folder / "ws_import_csv")}
        return timed_process([*RUNSHEET, "export", "--campaign", "bench", "-o", str(folder / f"out.{name[7:]}")], env)
    if name in ("copy_csv", "copy_parquet"):
        options = "HEADER" if name == "copy_csv" else "FORMAT parquet"
        target = folder / f"base.{name[5:]}"
        script = FLOOR_COPY.format(base=str(folder / "base_read_csv.duckdb"), target=target, options=options)
        return timed_process([sys.executable, "-c", script])
    raise ValueError(name)


def scenario(name: str, folder: Path, rows: int) -> dict[str, float]:
    """Run one job timed in this process (the upsert, the queries); `folder` holds the files and workspaces."""
    from engine import Workspace

    if name == "queries":
        return run_queries(folder)
    assert name == "upsert"
    target = folder / "ws_upsert"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder / "ws_import_csv", target)
    campaign = Workspace(target).campaign("bench")
    started, cpu_started = time.perf_counter(), _cpu()
    report = campaign.import_file(folder / "changed.csv", key="email")
    assert report.updated == len(range(7, rows, 100)), report
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": _cpu() - cpu_started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "updated": report.updated,
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
    if any(name in pair for pair in PAIRS):
        return whole_process(name, folder)
    done = subprocess.run(
        [sys.executable, "-m", "bench.data_io", "--scenario", name, str(folder), str(rows)],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    if done.returncode:
        raise SystemExit(f"scenario {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(rows: int, folder: Path) -> dict[str, dict[str, float]]:
    make_files(folder, rows)
    runs: dict[str, list[dict[str, float]]] = {}
    load = os.getloadavg()[0]
    for round_ in range(REPEATS):
        for ours, baseline in PAIRS:
            for name in (ours, baseline) if round_ % 2 == 0 else (baseline, ours):
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
    figures["load"] = {"before": load, "after": os.getloadavg()[0]}
    return figures


def compile_engine() -> None:
    """Byte-compile the engine, as installing it does (pip compiles what it installs): with PYTHONDONTWRITEBYTECODE
    set, as on the shared machine, every timed `runsheet` would otherwise compile its modules again (about 0.3 s of
    CPU), which the DuckDB script, importing an installed package, never pays."""
    compileall.compile_dir(HERE / "engine", quiet=1)


def main() -> None:
    compile_engine()
    sizes = [int(s) for s in os.environ.get("BENCH_ROWS", "10000,1000000").split(",")]
    figures: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            folder = Path(tmp) / f"rows{rows}"
            folder.mkdir()
            figures[str(rows)] = measure(rows, folder)
    for rows in sizes:
        found = figures[str(rows)]
        load = found["load"]
        print(
            f"data in and out, {rows:,} records x 12 columns, whole processes (median of {REPEATS}, alternating "
            f"with DuckDB; load {load['before']:.1f}->{load['after']:.1f})"
        )
        for ours, baseline in PAIRS:
            mine, theirs = found[ours]["median_s"], found[baseline]["median_s"]
            cpu = found[ours]["median_cpu_s"] / found[baseline]["median_cpu_s"]
            print(
                f"  {ours:<15} {mine:7.3f} s  vs DuckDB {baseline:<13} {theirs:7.3f} s  "
                f"ratio {mine / theirs:.2f}x (target <= 1.3x; CPU {found[ours]['median_cpu_s']:.2f} vs "
                f"{found[baseline]['median_cpu_s']:.2f} s, {cpu:.2f}x); "
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
