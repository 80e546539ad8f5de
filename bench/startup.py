"""A command in a blink (issue 16): whole `runsheet` processes, each beside a hand-written floor in the same run.

- `runsheet --help`: target <= 0.25 s. Floors: the interpreter alone (`python -c pass`), and the issue's
  reference `python -c 'import duckdb, polars, pyarrow'` (what loading the data libraries costs).
- `runsheet status` on a campaign of BENCH_STARTUP_ROWS records (default 1,000,000; 4 formula steps computed and
  one manual step never run): target <= 0.5 s. Floor: a hand-written Python script that opens the DuckDB file
  read-only and counts each step table's cells by status, as `status` prints them.

Beside them, what a typer command line costs before it does any work: a two-command typer app's `--help` (typer's
rich help: typer, rich, rich.markdown), and the same app parsing `status`'s options (typer coerces every
non-flag option through pydantic). And the same two through typer's path, as they ran before engine/cli/overview.py
and engine/cli/status_command.py (`runsheet --help` in process through typer; `status -cbench`, a short option
with its value attached, which only typer reads), and where the typer help's time goes, stage by stage.

Ours and its floor alternate, BENCH_STARTUP_REPEATS times each (default 9); the figures are medians of wall time
and of CPU time (user + system of the child process), with the 1-minute load average before and after. Each
process is started as a user starts it: the `runsheet` script beside this interpreter.
Run: `python -m bench startup` (or `./dev bench startup`); figures also go to bench/results/startup.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "startup.json"
ROWS = int(os.environ.get("BENCH_STARTUP_ROWS", "1000000"))
REPEATS = int(os.environ.get("BENCH_STARTUP_REPEATS", "9"))
SPEC = """
campaign: bench
columns:
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "lower(split_part(email, '@', 2))"}
  - {name: size_band, kind: formula, expression: "CASE WHEN employees < 50 THEN 'small' ELSE 'large' END"}
  - {name: score, kind: formula, expression: "length(domain) + employees % 97"}
  - {name: tier, kind: formula, expression: "CASE WHEN score > 60 THEN 'A' ELSE 'B' END"}
  - {name: touch, kind: probe, inputs: [tier], run: manual}
"""
FLOOR_STATUS = """
import sys
import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute("SELECT count(*) FROM {rows}").fetchone()[0]
for column, table in {tables!r}.items():
    found = dict(con.execute(f"SELECT status, count(*) FROM {{table}} GROUP BY status").fetchall())
    empty = rows - sum(found.values())
    if empty:
        found["empty"] = found.get("empty", 0) + empty
    print(column, sorted(found.items()))
"""


TYPER_APP = """
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Two commands.")


@app.command()
def status(
    campaign: Annotated[str | None, typer.Option("--campaign", "-c")] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="RUNSHEET_WORKSPACE")] = Path("workspace"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    \"\"\"Count nothing.\"\"\"


@app.command()
def other() -> None:
    \"\"\"Do nothing.\"\"\"


app()
"""
# `runsheet --help` in stages, each stamped: what the interpreter had before, then each import and typer's work.
HELP_STAGES = """
import contextlib, io, json, time
stamps = [time.perf_counter()]
import typer
stamps.append(time.perf_counter())
import rich.console, rich.table
stamps.append(time.perf_counter())
import engine.cli
app = engine.cli.app
stamps.append(time.perf_counter())
command = typer.main.get_command(app)
stamps.append(time.perf_counter())
import typer.rich_utils
stamps.append(time.perf_counter())
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    command.main(["--help"], prog_name="runsheet", standalone_mode=False)
stamps.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(stamps, stamps[1:])]))
"""
STAGES = [
    "import typer",
    "import rich's console and table",
    "import engine.cli (every command registered)",
    "typer builds the 45 commands",
    "import typer.rich_utils (rich.markdown, rich.traceback)",
    "render the help",
]


def build(folder: Path, rows: int) -> dict[str, object]:
    """The campaign, its formula cells computed; returns the row table and step tables the floor script reads."""
    import polars as pl

    from engine import Workspace

    ws = Workspace.init(folder)
    ws.apply(SPEC)
    campaign = ws.campaign("bench")
    i = pl.col("i")
    frame = pl.DataFrame({"i": pl.int_range(0, rows, eager=True)}).select(
        email=pl.format("user{}@company{}.com", i, i % 5000),
        company=pl.format("Company {}", i % 5000),
        employees=(i * 7919) % 20000,
    )
    campaign.add_rows(frame, run=False)
    campaign.run()
    ws.release()
    # The table names, read once here so that the floor script is plain DuckDB with literals.
    import duckdb

    con = duckdb.connect(str(folder / "runsheet.duckdb"), read_only=True)
    campaign_id, rows_table = con.execute(
        "SELECT campaign_id, rows_table FROM campaigns WHERE name = 'bench'"
    ).fetchall()[0]
    tables = dict(con.execute("SELECT name, table_name FROM columns WHERE campaign_id = ?", [campaign_id]).fetchall())
    con.close()
    steps = ["domain", "size_band", "score", "tier", "touch"]
    return {"rows": rows_table, "tables": {c: tables[c] for c in steps}}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one whole process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {process.stderr.read()[-2000:]!r}")
    return wall, usage.ru_utime + usage.ru_stime


def alternate(ours: list[str], floors: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Ours and each floor in turn, REPEATS rounds; medians of wall and CPU seconds per command."""
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], **{name: [] for name in floors}}
    for command in [ours, *floors.values()]:
        timed(command)  # warm the page cache once, unmeasured
    for _ in range(REPEATS):
        runs["ours"].append(timed(ours))
        for name, command in floors.items():
            runs[name].append(timed(command))
    return {
        name: {
            "median_s": statistics.median(w for w, _ in found),
            "median_cpu_s": statistics.median(c for _, c in found),
            "min_s": min(w for w, _ in found),
        }
        for name, found in runs.items()
    }


def help_stages(python: str) -> dict[str, float]:
    """Median seconds of each stage of `runsheet --help` in one process (HELP_STAGES), over REPEATS processes."""
    found = []
    for _ in range(REPEATS):
        done = subprocess.run([python, "-c", HELP_STAGES], capture_output=True, text=True, check=True)
        found.append(json.loads(done.stdout))
    return {stage: statistics.median(run[i] for run in found) for i, stage in enumerate(STAGES)}


def runsheet() -> list[str]:
    script = Path(sys.executable).with_name("runsheet")
    return [str(script)] if script.exists() else [shutil.which("runsheet") or "runsheet"]


def main() -> None:
    python = sys.executable
    figures: dict[str, object] = {"rows": ROWS, "repeats": REPEATS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ws"
        print(f"startup: building a {ROWS:,}-row campaign ...", flush=True)
        names = build(folder, ROWS)
        floor_script = Path(tmp) / "floor_status.py"
        floor_script.write_text(FLOOR_STATUS.format(rows=names["rows"], tables=names["tables"]))
        typer_app = Path(tmp) / "typer_app.py"
        typer_app.write_text(TYPER_APP)
        load_before = os.getloadavg()[0]
        figures["help"] = alternate(
            [*runsheet(), "--help"],
            {
                "python_alone": [python, "-c", "pass"],
                "import_duckdb_polars_pyarrow": [python, "-c", IMPORTS],
                "typer_two_commands_help": [python, str(typer_app), "--help"],
                "through_typer": [python, "-c", TYPER_HELP],
            },
        )
        figures["status"] = alternate(
            [*runsheet(), "status", "-w", str(folder), "-c", "bench"],
            {
                "duckdb_script": [python, str(floor_script), str(folder / "runsheet.duckdb")],
                "typer_parsing_alone": [python, str(typer_app), "status", "-w", str(folder), "-c", "bench"],
                "through_typer": [*runsheet(), "status", "-w", str(folder), "-cbench"],
            },
        )
        figures["help_stages"] = help_stages(python)
        load_after = os.getloadavg()[0]
    figures["load_average_1min"] = {"before": load_before, "after": load_after}
    show(figures)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures written to {RESULTS}")


IMPORTS = "import duckdb, polars, pyarrow"
TYPER_HELP = "from engine.cli import app; app(['--help'], prog_name='runsheet')"


def show(figures: dict[str, object]) -> None:
    help_, status = figures["help"], figures["status"]
    assert isinstance(help_, dict) and isinstance(status, dict)

    def line(label: str, found: dict[str, float]) -> str:
        return f"{label:<52} {found['median_s']:6.3f} s wall {found['median_cpu_s']:6.3f} s CPU (median)"

    loads = figures["load_average_1min"]
    assert isinstance(loads, dict)
    load = f"load {loads['before']:.1f} -> {loads['after']:.1f}"
    print(f"startup, whole processes, medians of {REPEATS} alternating runs ({load})")
    print("  " + line("runsheet --help (target <= 0.25 s)", help_["ours"]))
    print("  " + line("floor: python -c pass", help_["python_alone"]))
    print("  " + line(f"floor: python -c '{IMPORTS}'", help_["import_duckdb_polars_pyarrow"]))
    print("  " + line("beside: a two-command typer app's --help", help_["typer_two_commands_help"]))
    print("  " + line("beside: runsheet --help through typer", help_["through_typer"]))
    print("  " + line(f"runsheet status, {ROWS:,} rows (target <= 0.5 s)", status["ours"]))
    print("  " + line("floor: a hand-written DuckDB status script", status["duckdb_script"]))
    print("  " + line("beside: typer parsing status's options, no work", status["typer_parsing_alone"]))
    print("  " + line("beside: runsheet status through typer (-cbench)", status["through_typer"]))
    print(f"  status / floor: {status['ours']['median_s'] / status['duckdb_script']['median_s']:.2f}x wall")
    stages = figures["help_stages"]
    assert isinstance(stages, dict)
    print(f"  runsheet --help through typer in one process, median of {REPEATS} (after the interpreter's start):")
    for stage, seconds in stages.items():
        print(f"    {stage:<58} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
