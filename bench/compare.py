"""Every benchmark, before and after a change, in one run: `python -m bench.compare REF [BENCH ...]`.

REF (a commit, tag or branch) is checked out in a temporary git worktree; each benchmark then runs in both trees,
alternating (round 1: before, after; round 2: after, before; ...), each run its own process with the tree's own
`engine` first on the path (PYTHONPATH). A benchmark writes its figures to its tree's bench/results/; this script
reads them after each run and prints, per figure, the medians before and after and their ratio, with the load
average around each run. Sizes come from the environment as for `./dev bench` (BENCH_ROWS, ...). The table is
written to bench/results/compare.json. `BENCH_ROUNDS` sets the rounds (default 2). `BENCH_SAME_CODE=ai_runner,...`
runs this tree's copy of those benchmarks on both sides (for a benchmark fixed after REF; it must use only names
both engines export).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.__main__ import BENCHES

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "bench" / "results" / "compare.json"


def flatten(value: object, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON document, keyed by their dotted path (lists of numbers are left out)."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, int | float):
        return {prefix: float(value)}
    if isinstance(value, dict):
        found: dict[str, float] = {}
        for key, inner in value.items():
            found.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {}


def run_once(tree: Path, bench: str) -> tuple[dict[str, float], tuple[float, float], bool]:
    """One run of one benchmark in `tree`: its figures, the 1-minute load before and after, and whether it ran."""
    results = tree / "bench" / "results" / f"{bench}.json"
    results.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-m", f"bench.{bench}"], cwd=tree, env=env, check=False)
    load_after = os.getloadavg()[0]
    if done.returncode != 0 or not results.exists():
        print(f"  {bench} in {tree} failed (exit {done.returncode})", flush=True)
        return {}, (load_before, load_after), False
    return flatten(json.loads(results.read_text())), (load_before, load_after), True


def compare(ref: str, benches: list[str], rounds: int) -> dict[str, object]:
    """Run `benches` alternating between a worktree at `ref` and this tree; returns the figures side by side."""
    scratch = Path(tempfile.mkdtemp(prefix="runsheet-before-"))
    before = scratch / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), ref], cwd=HERE, check=True)
    report: dict[str, object] = {"before": ref, "rounds": rounds}
    for name in filter(None, os.environ.get("BENCH_SAME_CODE", "").split(",")):
        shutil.copy(HERE / "bench" / f"{name}.py", before / "bench" / f"{name}.py")
    try:
        for bench in benches:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            loads: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            for round_ in range(rounds):
                order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
                for side in order:
                    print(f"== {bench}: round {round_ + 1}, {side}", flush=True)
                    figures, load, ok = run_once(before if side == "before" else HERE, bench)
                    if ok:
                        runs[side].append(figures)
                    loads[side].append(load)
            report[bench] = _table(bench, runs, loads)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=HERE, check=False)
    return report


def _table(bench: str, runs: dict[str, list[dict[str, float]]], loads: dict[str, list[tuple[float, float]]]) -> dict:
    """Print and return, per figure, every run's value before and after, their medians and after/before."""
    keys = sorted(set().union(*runs["before"], *runs["after"])) if runs["before"] or runs["after"] else []
    print(f"\n{bench}: figure | before (each run) | after (each run) | after/before of the medians")
    for side in ("before", "after"):
        print(f"  load {side}: " + ", ".join(f"{a:.1f}->{b:.1f}" for a, b in loads[side]))
    rows = {}
    for key in keys:
        seen = {side: [r[key] for r in runs[side] if key in r] for side in ("before", "after")}
        medians = {side: statistics.median(v) if v else None for side, v in seen.items()}
        ratio = medians["after"] / medians["before"] if medians["before"] and medians["after"] is not None else None
        rows[key] = {**seen, "ratio": ratio}
        shown = " | ".join(", ".join(f"{v:.4g}" for v in seen[side]) or "-" for side in ("before", "after"))
        print(f"  {key}: {shown} | {ratio:.2f}x" if ratio is not None else f"  {key}: {shown} | -")
    return {"figures": rows, "loads": loads}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit("usage: python -m bench.compare REF [BENCH ...]  (REF: the commit to compare with)")
    ref, chosen = sys.argv[1], sys.argv[2:] or BENCHES
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    report = compare(ref, chosen, int(os.environ.get("BENCH_ROUNDS", "2")))
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
