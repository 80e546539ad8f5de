"""Row-wise python steps (issue 19, item 3) without Ray: `rowwise` is a checked option that leaves the step's
version (so its cells) as they were; a step's batch cut into shards through `Batch.map_rows` gives the values one
call gives, and a shard that fails sends the batch back to one call in the run's process, so its cells fail as
they do locally; a worker's copy of the module is the run's or it gives nothing. The Ray backend's own tests are
in tests/runner/test_ray_rowwise.py."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from engine import SpecError, Workspace
from engine.cells import Batch
from engine.cells.python import Python, PythonOptions, RowFunction, resolve
from engine.runner.backend import LocalBackend, join_shards
from engine.runner.backend import RowFunction as RowFunctionType

STEPS = """
import os
import polars as pl

CALLS = []


def label(frame: pl.DataFrame) -> pl.Series:
    CALLS.append((os.getpid(), frame.height))
    return pl.Series([f"{c}:{100 // s}" for c, s in zip(frame["company"], frame["size"])])
"""


def spec(module: str, rowwise: str | None) -> str:
    option = "" if rowwise is None else f", rowwise: {rowwise}"
    return f"""
campaign: c
columns:
  - {{name: company, kind: input}}
  - {{name: size, kind: input, type: BIGINT}}
  - {{name: label, kind: python, function: "{module}:label", inputs: [company, size]{option}}}
  - {{name: label_len, kind: formula, expression: "length(label)"}}
"""


@pytest.fixture()
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A step module of its own name in a folder on sys.path (the run imports it from there)."""
    name = f"rowwise_steps_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    folder = tmp_path / "steps"
    folder.mkdir()
    (folder / f"{name}.py").write_text(STEPS)
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


def test_rowwise_is_true_or_false_and_defaults_to_false(module: str, tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(spec(module, None))
    assert ws.campaign("c").spec.column("label").options.rowwise is False
    for bad, shown in (('"yes"', "'yes'"), ("maybe", "'maybe'"), ("1", "1"), ("null", "None")):
        with pytest.raises(SpecError) as refused:
            ws.apply(spec(module, bad))
        assert refused.value.column == "label"
        assert f"bad value for option 'rowwise': {shown} is not true or false" in str(refused.value)
        assert "write `rowwise: true` when the function computes each row from that row's inputs alone" in (
            refused.value.hint or ""
        )
    ws.apply(spec(module, "true"))
    assert ws.campaign("c").spec.column("label").options.rowwise is True


def test_declaring_rowwise_keeps_the_steps_version_and_its_cells(module: str, tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.apply(spec(module, None))
    campaign = ws.campaign("c")
    campaign.add_rows([{"company": f"Co{i}", "size": i + 1} for i in range(5)])
    before = campaign.spec.column("label").version
    assert [campaign.cell(r, "label").value for r in range(1, 6)] == [f"Co{i}:{100 // (i + 1)}" for i in range(5)]
    calls = len(sys.modules[module].CALLS)
    ws.apply(spec(module, "true"))
    campaign = ws.campaign("c")
    assert campaign.spec.column("label").version == before  # where it is computed is not what it gives
    assert campaign.status_counts()["label"] == {"done": 5}
    assert len(sys.modules[module].CALLS) == calls  # nothing recomputed


def in_process_shards(size: int) -> tuple[list[int], object]:
    """A backend's `map_rows` computing shards of `size` rows here, one call each (what Ray does on workers)."""
    heights: list[int] = []

    def map_rows(function: RowFunctionType, frame: pl.DataFrame) -> pl.Series | None:
        parts = [function(frame.slice(offset, size)) for offset in range(0, frame.height, size)]
        heights.extend(part.len() for part in parts if part is not None)
        return join_shards(parts)

    return heights, map_rows


def batch(rows: list[tuple[str, int]], map_rows: object = None) -> Batch:
    frame = pl.DataFrame(
        {"row_id": list(range(1, len(rows) + 1)), "company": [c for c, _ in rows], "size": [s for _, s in rows]}
    )
    return Batch("label", frame, 1, map_rows)  # type: ignore[arg-type]


def test_shards_give_what_one_call_gives_and_a_failing_shard_fails_the_batch_as_one_call_does(module: str) -> None:
    kind, options = Python(), PythonOptions(function=f"{module}:label", rowwise=True)
    rows = [(f"Co{i}", i + 1) for i in range(10)]
    heights, map_rows = in_process_shards(4)
    assert kind.compute(options, batch(rows, map_rows)).equals(kind.compute(options, batch(rows)))
    assert heights == [4, 4, 2]

    failing = [*rows[:9], ("Zero", 0)]  # the last shard raises: one call over the batch decides every cell
    heights, map_rows = in_process_shards(4)
    sharded = kind.compute(options, batch(failing, map_rows))
    assert sharded.equals(kind.compute(options, batch(failing)))
    assert sharded["status"].to_list() == ["error"] * 10
    assert set(sharded["error_message"]) == {f"{module}:label: ZeroDivisionError: integer division or modulo by zero"}
    assert heights == [4, 4]

    not_rowwise = PythonOptions(function=f"{module}:label")  # never handed to the backend
    heights, map_rows = in_process_shards(4)
    assert kind.compute(not_rowwise, batch(rows, map_rows)).equals(kind.compute(not_rowwise, batch(rows)))
    assert heights == []
    assert LocalBackend().map_rows(RowFunction(f"{module}:label", "", ""), batch(rows).frame) is None


def test_shards_of_different_value_types_are_not_joined() -> None:
    assert join_shards([pl.Series([1, 2]), pl.Series([None, None]), pl.Series([3])]).to_list() == [1, 2, None, None, 3]
    assert join_shards([pl.Series([1, 2]), pl.Series(["a"])]) is None  # one call would have had one type
    assert join_shards([pl.Series([1]), None]) is None


def test_a_row_function_computes_only_the_runs_copy_of_its_module(module: str, tmp_path: Path) -> None:
    resolve(f"{module}:label")
    old = RowFunction.of(f"{module}:label")
    assert old is not None and old.root == str(tmp_path / "steps")
    frame = pl.DataFrame({"company": ["A"], "size": [4]})
    assert old(frame).to_list() == ["A:25"]  # type: ignore[union-attr]

    changed = STEPS.replace('f"{c}:{100 // s}"', 'f"{c}={100 // s}"')
    (tmp_path / "steps" / f"{module}.py").write_text(changed)
    new = RowFunction(old.reference, old.root, hashlib.sha256(changed.encode()).hexdigest())
    # a worker that imported the old copy, asked for the run's new one: imports it again from its source
    assert new(frame).to_list() == ["A=25"]  # type: ignore[union-attr]
    # a worker whose copy is not the run's: no values (the run computes the batch itself)
    assert old(frame) is None
