"""Claims in windows at a large number of records (issue 19): while a run, or a dry run (estimate), plans and
claims its paid cells, another process edits records and reads the grid's first page; how long does it wait?

One workspace of BENCH_ROWS records (default 10,000,000) with a formula and an AI column on the offline model
(no network; every cell a paid cell to claim) is built once and copied, so every mode starts from the same file:

- `one`: the whole scope planned and claimed in one transaction, as main did (the window setting above the
  number of records, which plans the scope as it is). The run process exits once its claim has committed.
- `windows`: the same run with the default window setting (claim_window_rows, claim_window_seconds): each window
  planned and claimed in a transaction of its own, computed and written back before the next. The run goes for
  BENCH_CLAIM_SECONDS (default 180), then is stopped.
- `estimate-one`: `Campaign.estimate()` (what `runsheet run --dry-run`, the UI's confirmation and the API ask)
  over the whole campaign in one rolled-back transaction, as main did (the window setting above the records).
- `estimate-windows`: the same estimate with the default window setting: each window planned in a rolled-back
  transaction of its own.

BENCH_MODES (comma-separated) picks some of them. Each is a `Workspace` in a process of its own, timed from
inside: every transaction it holds (from its BEGIN to its end: the longest is what another process may have to
wait for), every plan (a window's, or the one claim), its peak RSS. Beside it, another process alternates, every
0.1 s, an edit of a random record's company (`Campaign.set`, queueing its paid cell) and a read of the grid's
first page as the UI reads it (`Campaign.page(0, 50)`), their latencies and failures ("workspace busy" after
30 s) recorded while the run claims (from its start to its exit) and, as a floor, before it starts.
Run: `BENCH_ROWS=10000000 python -m bench big_claims`; figures go to bench/results/issue19/big_claims-ROWS.json.
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
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results" / "issue19"
ROWS = int(os.environ.get("BENCH_ROWS", "10000000"))
WINDOWED_SECONDS = float(os.environ.get("BENCH_CLAIM_SECONDS", "180"))
MODES = os.environ.get("BENCH_MODES", "one,windows,estimate-one,estimate-windows").split(",")
FLOOR_SECONDS = 5.0  # edits timed before each run starts
SPEC = """
campaign: bench
columns:
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: domain, kind: formula, expression: "lower(split_part(email, '@', 2))"}
  - {name: research, kind: ai, model: offline, prompt: "Research {{ company }} at {{ domain }}"}
"""
REPO = Path(__file__).resolve().parents[1]

RUNNER = r"""
import json, os, resource, sys, threading, time, traceback
from contextlib import contextmanager

from engine import RunOptions, Workspace
from engine.run.executor import Executor
from engine.store.database import Database

path, mode, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
held, plans, local = [], [], threading.local()
begin, one = Database._begin, Database._one_transaction

def timed_begin(self):
    con = begin(self)
    local.began = time.perf_counter()  # the file is ours from here to the transaction's end
    return con

def opener():
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "contextlib" not in frame.filename and not frame.filename.endswith("database.py"):
            return frame.name

@contextmanager
def timed_transaction(self, commit):
    try:
        with one(self, commit) as con:
            yield con
    finally:
        if getattr(local, "began", None) is not None:
            held.append((time.perf_counter() - local.began, opener()))
            local.began = None

execute = Executor.execute
def timed_execute(self, request, scope):
    started = time.perf_counter()
    try:
        return execute(self, request, scope)
    finally:
        plans.append(time.perf_counter() - started)

Database._begin, Database._one_transaction, Executor.execute = timed_begin, timed_transaction, timed_execute
workspace = Workspace(path)
if mode in ("one", "estimate-one"):  # a window above the number of records: the scope planned as it is, as main did
    workspace.set_setting("claim_window_rows", 10**12)
campaign = workspace.campaign("bench")
started = time.time()
figures = {"started": started}
if mode == "one":
    report = campaign.start_run()
    figures["claimed"] = sum(c.frame.height for c in report.claims)
elif mode.startswith("estimate"):
    estimate = campaign.estimate()
    figures["claimed"], figures["estimate"] = estimate.calls, estimate.as_dict()
    report = type("Estimated", (), {"status": "estimated"})
else:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    seen = []
    report = campaign.run(options=RunOptions(stop=stop, progress=lambda p: seen.append((p.total, p.done))))
    figures["claimed"], figures["done"] = seen[-1] if seen else (0, 0)
figures.update(
    ended=time.time(),
    transactions=len(held),
    longest_transaction_s=max(held)[0],
    longest_transactions=[(round(s, 3), name) for s, name in sorted(held, reverse=True)[:5]],
    plans=len(plans),
    plan_s=[round(p, 3) for p in plans],
    plan_median_s=sorted(plans)[len(plans) // 2],
    plan_max_s=max(plans),
    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    status=report.status,
)
with open(out, "w") as f:
    json.dump(figures, f)
os._exit(0)  # a claim left running (the one-window run) is given back by the next read: not timed here
"""

EDITOR = r"""
import json, os, random, sys, time

from engine import Workspace, WorkspaceBusyError

path, flag, out, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
campaign = Workspace(path, actor="editor").campaign("bench", actor="editor")
timings, rng, i = [], random.Random(19), 0
while not os.path.exists(flag):
    i += 1
    kind = "edit" if i % 2 else "page"
    started = time.time()
    try:
        if kind == "edit":
            campaign.set(rng.randint(1, rows), "company", f"Edited {i}", run_paid=False)
        else:
            assert len(campaign.page(0, 50).rows) == 50  # the grid's first page, as the UI reads it
        ok = True
    except WorkspaceBusyError:
        ok = False
    timings.append((started, time.time() - started, ok, kind))
    time.sleep(0.1)
with open(out, "w") as f:
    json.dump(timings, f)
"""


def build(folder: Path, rows: int) -> float:
    import polars as pl

    from engine import Workspace

    started = time.perf_counter()
    ws = Workspace.init(folder)
    ws.apply(SPEC)
    ws.pause("bench", "research", resume=True)  # consent: a new paid step starts paused
    i = pl.col("i")
    chunk = 1_000_000
    campaign = ws.campaign("bench")
    for first in range(0, rows, chunk):
        frame = pl.DataFrame({"i": pl.int_range(first, min(first + chunk, rows), eager=True)}).select(
            email=pl.format("user{}@company{}.com", i, i % 50_000),
            company=pl.format("Company {}", i),
        )
        campaign.add_rows(frame, run=False)
    ws.release()
    return time.perf_counter() - started


def python(script: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def measure(folder: Path, mode: str, rows: int) -> dict[str, Any]:
    """One run (`one` window or `windows`) beside the editing process; the run's and the edits' figures."""
    flag, edits, out = folder / "stop-editing", folder / "edits.json", folder / "run.json"
    editor = python(EDITOR, folder, flag, edits, rows)
    time.sleep(FLOOR_SECONDS + 3)  # the editor's start-up, then edits with the workspace to itself
    runner = python(RUNNER, folder, mode, WINDOWED_SECONDS, out)
    _, errors = runner.communicate()
    assert runner.returncode == 0, errors.decode()[-2000:]
    time.sleep(1.0)
    flag.touch()
    _, errors = editor.communicate(timeout=120)
    assert editor.returncode == 0, errors.decode()[-2000:]
    run = json.loads(out.read_text())
    timings = json.loads(edits.read_text())
    for kind in ("edit", "page"):
        mine = [(s, d, ok) for s, d, ok, k in timings if k == kind]
        during = [(s, d, ok) for s, d, ok in mine if run["started"] <= s <= run["ended"]]
        floor = [d for s, d, ok in mine if s < run["started"] and ok][-int(FLOOR_SECONDS / 0.2) :]
        waits = [d for _, d, ok in during if ok]
        run[f"{kind}s"] = {
            "during_run": len(during),
            "failed_busy": sum(1 for *_, ok in during if not ok),
            "median_s": statistics.median(waits) if waits else None,
            "max_s": max((d for _, d, _ in during), default=None),
            "floor_median_s": statistics.median(floor) if floor else None,
        }
    run["run_s"] = run["ended"] - run["started"]
    return run


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp) / "base"
        print(f"big_claims: building {ROWS:,} records ...", flush=True)
        built = build(base, ROWS)
        print(f"  built in {built:.0f} s", flush=True)
        figures: dict[str, Any] = {"rows": ROWS, "build_s": built, "load_before": os.getloadavg()}
        for mode in MODES:
            folder = Path(tmp) / mode
            shutil.copytree(base, folder)
            figures[mode] = measure(folder, mode, ROWS)
            shutil.rmtree(folder)
            print(f"  {mode}: {json.dumps(figures[mode])}", flush=True)
        figures["load_after"] = os.getloadavg()
    print(f"claims at {ROWS:,} records, AI column on the offline model (load {figures['load_before'][0]:.1f})")
    names = {
        "one": "run, one window (main)",
        "windows": "run, windows",
        "estimate-one": "estimate, one window (main)",
        "estimate-windows": "estimate, windows",
    }
    for mode in MODES:
        run = figures[mode]
        print(
            f"  {names[mode]}: {run['plans']} plan(s), median {run['plan_median_s']:.2f} s, longest"
            f" {run['plan_max_s']:.2f} s; longest transaction {run['longest_transaction_s']:.2f} s; peak RSS"
            f" {run['peak_rss_mb']:.0f} MB; {run['claimed']:,} cells claimed (or estimated) in {run['run_s']:.0f} s"
        )
        for kind in ("edit", "page"):
            seen = run[f"{kind}s"]
            print(
                f"    another process's {kind} meanwhile: {seen['during_run']} tried, {seen['failed_busy']} busy,"
                f" median {_s(seen['median_s'])}, max {_s(seen['max_s'])} (alone: median {_s(seen['floor_median_s'])})"
            )
    results = RESULTS_DIR / f"big_claims-{ROWS}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  figures written to {results}")


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"
