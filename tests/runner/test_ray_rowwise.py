"""Row-wise python steps on the Ray backend (issue 19, item 3): a step with `rowwise: true` is computed in shards on
the cluster's workers and stores exactly what the local run stores (cells, a formula downstream, a row whose call
fails, run counters, activity); a step that is not row-wise is computed in the run's process, whole.

The embedded 2-CPU cluster of tests/runner/test_ray_backend.py (its `cluster` fixture). Each step function records
the process it ran in and how many rows it got, in a file beside its module. Skipped without the `ray` extra.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the optional `ray` extra is not installed (pip install -e .[ray])")

from engine import RunOptions, Workspace  # noqa: E402
from engine.runner import ray_backend  # noqa: E402
from tests.runner.test_ray_backend import CANARY, cluster  # noqa: E402, F401  # the module's embedded cluster

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("cluster")]

ROWS = 30
WINDOW = 10  # rows a window: the run's batches (the row that fails is in the last one)
STEPS = """
import os
import polars as pl

CALLS = {calls!r}


def _record(frame):
    with open(CALLS, "a") as log:
        log.write(f"{{os.getpid()}} {{frame.height}}\\n")


def label(frame: pl.DataFrame) -> pl.Series:
    _record(frame)
    return pl.Series([f"{{c}}:{{100 // s}}" for c, s in zip(frame["company"], frame["size"])])


def rank(frame: pl.DataFrame) -> pl.Series:
    _record(frame)
    return frame["size"].rank("ordinal")
"""


def spec(module: str) -> str:
    return f"""
campaign: c
columns:
  - {{name: company, kind: input}}
  - {{name: size, kind: input, type: BIGINT}}
  - {{name: label, kind: python, function: "{module}:label", inputs: [company, size], rowwise: true, run: manual}}
  - {{name: label_len, kind: formula, expression: "length(label)"}}
  - {{name: place, kind: python, function: "{module}:rank", inputs: [size], type: BIGINT, run: manual}}
"""


def step_module(folder: Path, name: str) -> Path:
    """A step module `name` in `folder` (put on sys.path); returns the file its functions record their calls in."""
    folder.mkdir()
    calls = folder / "calls.log"
    (folder / f"{name}.py").write_text(STEPS.format(calls=str(calls)))
    return calls


def calls_in(log: Path) -> list[tuple[int, int]]:
    """(process id, rows) of each call a step function recorded."""
    lines = log.read_text().split() if log.exists() else []
    return [(int(pid), int(rows)) for pid, rows in zip(lines[::2], lines[1::2], strict=True)]


def new_workspace(path: Path, module: str) -> Workspace:
    ws = Workspace.init(path)
    ws.apply(spec(module))
    ws.set_setting("claim_window_rows", WINDOW)
    ws.set_setting("ray_rowwise_min_rows", 4)  # these batches are small: shard them anyway
    ws.campaign("c").add_rows([{"company": f"Co{i}", "size": 0 if i == 25 else i + 1} for i in range(ROWS)])
    return ws


def cell_digest(ws: Workspace, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    campaign = ws.campaign("c")
    found = []
    for row in range(1, ROWS + 1):
        for column in columns:
            c = campaign.cell(row, column)
            found.append((row, column, c.status, c.value, c.error_code, c.error_message, c.cost))
    return found


def run_digest(ws: Workspace) -> dict[str, Any]:
    run = ws.runs(1)[0]
    return {k: run.get(k) for k in ("status", "credits", "total", "done", "cache_hits", "counts", "message")}


def activity_digest(ws: Workspace) -> Counter[tuple[Any, ...]]:
    found: Counter[tuple[Any, ...]] = Counter()
    for a in ws.activity(limit=10_000):
        found[(a.get("column_name"), a.get("outcome"), a.get("cells"), a.get("cost"), a.get("error_code"))] += 1
    return found


@pytest.fixture()
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"ray_rowwise_{tmp_path.name}".replace("-", "_")
    monkeypatch.syspath_prepend(str(tmp_path / "steps"))
    return name


def test_a_rowwise_step_on_ray_is_sharded_and_stores_what_the_local_run_stores(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = step_module(tmp_path / "steps", module)
    local = new_workspace(tmp_path / "local", module)
    assert local.campaign("c").run(["label"]).status == "done"
    local_calls = calls_in(calls)
    calls.unlink()

    shipped: list[bytes] = []

    def recording_pack(obj: object) -> bytes:
        payload = real_pack(obj)
        shipped.append(payload)
        return payload

    real_pack = ray_backend.pack
    monkeypatch.setattr(ray_backend, "pack", recording_pack)
    monkeypatch.setenv("RUNSHEET_ROWWISE_CANARY", CANARY)  # the run's environment travels in no shard
    on_ray = new_workspace(tmp_path / "ray", module)
    report = on_ray.campaign("c").run(["label"], options=RunOptions(backend="ray"))
    ray_calls = calls_in(calls)

    assert report.status == "done"
    columns = ("label", "label_len")
    assert cell_digest(on_ray, columns) == cell_digest(local, columns)
    assert run_digest(on_ray) == run_digest(local)
    assert activity_digest(on_ray) == activity_digest(local)
    digest = cell_digest(on_ray, columns)
    assert Counter(c[2].value for c in digest if c[1] == "label") == {"done": 20, "error": 10}
    failed = {c[5] for c in digest if c[1] == "label" and c[2].value == "error"}
    assert failed == {f"{module}:label: ZeroDivisionError: integer division or modulo by zero"}

    assert local_calls == [(os.getpid(), WINDOW)] * 3  # locally: one call a window, in the run's process
    workers = {pid for pid, _ in ray_calls} - {os.getpid()}
    assert workers  # on Ray: the shards ran in the cluster's workers
    sharded = [rows for pid, rows in ray_calls if pid != os.getpid()]
    assert max(sharded) < WINDOW and sum(sharded) >= 2 * WINDOW  # two windows in shards of a few rows
    # the window holding the failing row went back to one call in the run's process, as locally
    assert (os.getpid(), WINDOW) in ray_calls
    assert shipped and not any(CANARY.encode() in payload for payload in shipped)


def test_a_step_that_is_not_rowwise_is_computed_whole_in_the_runs_process_on_ray(module: str, tmp_path: Path) -> None:
    calls = step_module(tmp_path / "steps", module)
    local = new_workspace(tmp_path / "local", module)
    local.set_setting("claim_window_rows", 1_000)  # one batch: a rank over the whole column
    assert local.campaign("c").run(["place"]).status == "done"
    calls.unlink()
    on_ray = new_workspace(tmp_path / "ray", module)
    on_ray.set_setting("claim_window_rows", 1_000)
    assert on_ray.campaign("c").run(["place"], options=RunOptions(backend="ray")).status == "done"

    assert calls_in(calls) == [(os.getpid(), ROWS)]  # never split: one call over every row, in this process
    assert cell_digest(on_ray, ("place",)) == cell_digest(local, ("place",))
    assert sorted(int(c[3]) for c in cell_digest(on_ray, ("place",))) == list(range(1, ROWS + 1))
