"""Reads never fail on code (issue 13, item 7; DESIGN.md invariant 8): a campaign whose python step module is
importable only where it was computed is read everywhere else from its stored values (status, show, export,
query, the Python API, the HTTP API); only computing imports the module, and then fails the cell with one line
naming the module and PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import Workspace
from engine.auth import set_user
from engine.graph import Action, ColumnGraph, ColumnNode, Request, plan_row
from engine.types import Status

MODULE = "trust_reads_steps"
SPEC = f"""
campaign: t
columns:
  - {{name: first, kind: input}}
  - {{name: loud, kind: python, function: "{MODULE}:shout", inputs: [first]}}
  - {{name: greeting, kind: formula, expression: "'Hello ' || loud"}}
"""
STEPS = """
import polars as pl

def shout(frame: pl.DataFrame) -> pl.Series:
    return frame["first"].str.to_uppercase()
"""

# What a process without the module reads through the Python and HTTP APIs.
API_READS = """
import json, sys
from fastapi.testclient import TestClient
from engine import Workspace
from engine.api import create_app
from engine.auth import create_token, set_user
ws = Workspace(sys.argv[1], actor="ada")
campaign = ws.campaign("t")
page = campaign.page(compute=True)
cells = {
    f"{r}:{c}": [cell.value, cell.status.value] for r, row in zip(page.row_ids, page.rows) for c, cell in row.items()
}
out = {
    "page": cells,
    "cell": campaign.cell(1, "loud").value,
    "status": campaign.status_counts(),
    "values": campaign.values()["loud"].to_list(),
}
with TestClient(create_app(ws.path)) as client:
    set_user(ws.db, "ada", "ada", "admin")
    auth = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'ada')}"}
    listed = client.get("/campaigns", headers=auth)
    out["http_campaigns"] = [listed.status_code, listed.json()]
    out["http_runs"] = client.get("/runs", headers=auth).status_code
print(json.dumps(out))
"""


@pytest.fixture()
def computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace whose python step was computed with its module on a temporary path, in this process."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{MODULE}.py").write_text(STEPS)
    monkeypatch.syspath_prepend(str(modules))
    ws = Workspace.init(tmp_path / "ws")
    ws = Workspace(ws.path, actor="ada")
    set_user(ws.db, "ada", "ada", "admin")
    ws.apply(SPEC, actor="ada")
    ws.campaign("t", actor="ada").add_rows([{"first": "ann"}, {"first": "bob"}])
    assert ws.campaign("t").cell(2, "greeting").value == "Hello BOB"
    ws.release()
    sys.modules.pop(MODULE, None)
    return ws.path


def elsewhere(workspace: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run in a process that cannot import the step module: no PYTHONPATH, and a working folder without it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    env["RUNSHEET_WORKSPACE"] = str(workspace)
    env["COLUMNS"] = "200"
    env["USER"] = "ada"
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def cli(workspace: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return elsewhere(workspace, ["-m", "engine.cli", *args], tmp_path)


def test_cli_reads_show_stored_python_values_without_the_module(computed: Path, tmp_path: Path) -> None:
    status = cli(computed, tmp_path, "status", "-c", "t", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["columns"]["loud"] == {"done": 2}
    show = cli(computed, tmp_path, "show", "-c", "t")
    assert show.returncode == 0, show.stderr
    assert "ANN" in show.stdout and "Hello BOB" in show.stdout
    out = tmp_path / "out.csv"
    export = cli(computed, tmp_path, "export", "-c", "t", "-o", str(out))
    assert export.returncode == 0, export.stderr
    assert out.read_text().splitlines()[1:] == ["1,ann,ANN,Hello ANN", "2,bob,BOB,Hello BOB"]
    query = cli(computed, tmp_path, "query", "SELECT loud, greeting FROM t ORDER BY row_id", "--format", "csv")
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["loud,greeting", "ANN,Hello", "ANN", "BOB,Hello", "BOB"]


def test_python_and_http_api_reads_work_without_the_module(computed: Path, tmp_path: Path) -> None:
    found = elsewhere(computed, ["-c", API_READS, str(computed)], tmp_path)
    assert found.returncode == 0, found.stderr
    reads = json.loads(found.stdout)
    assert reads["page"]["1:loud"] == ["ANN", "done"] and reads["page"]["2:greeting"] == ["Hello BOB", "done"]
    assert reads["cell"] == "ANN"
    assert reads["status"]["loud"] == {"done": 2}
    assert reads["values"] == ["ANN", "BOB"]
    assert reads["http_campaigns"] == [200, ["t"]] and reads["http_runs"] == 200


def test_computing_without_the_module_fails_the_cell_naming_pythonpath(computed: Path, tmp_path: Path) -> None:
    edit = cli(computed, tmp_path, "set", "t", "1", "first", "cy")
    assert edit.returncode == 0, edit.stderr
    cli(computed, tmp_path, "run", "-c", "t", "--column", "loud", "--rows", "2", "--force")  # Run Again
    campaign = Workspace(computed).campaign("t")
    for row_id in (1, 2):
        loud = campaign.cell(row_id, "loud")
        assert loud.status is Status.ERROR and loud.error_code == "python_error"
        assert loud.error_message is not None and "\n" not in loud.error_message
        assert f"cannot import module '{MODULE}'" in loud.error_message and "PYTHONPATH" in loud.error_message


def test_a_reads_pull_leaves_a_stale_python_cell_as_stored_and_computes_free_cells_after_it() -> None:
    graph = ColumnGraph.build(
        [
            ColumnNode("first", is_input=True),
            ColumnNode("loud", code=True, deps=("first",)),
            ColumnNode("greeting", deps=("loud",)),
            ColumnNode("initial", deps=("first",)),
        ]
    )
    stale = {"loud": Status.STALE, "greeting": Status.STALE, "initial": Status.STALE}
    pulled = plan_row(graph, stale, Request.pull(graph.auto_steps()))
    assert "loud" not in pulled  # kept as stored: stale, old value shown
    assert pulled["greeting"].action is Action.RUN and pulled["initial"].action is Action.RUN
    empty = plan_row(graph, {}, Request.pull(graph.auto_steps()))
    assert "loud" not in empty and empty["greeting"].action is Action.WAIT and empty["greeting"].blame == "loud"
    computing = plan_row(graph, stale, Request.run(graph.auto_steps(), run_paid=False))
    assert computing["loud"].action is Action.RUN  # a request to compute still computes it


def test_apply_still_refuses_a_module_it_cannot_import(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(Exception) as refused:
        ws.apply(textwrap.dedent(SPEC).replace(MODULE, "no_such_module_here"))
    assert "cannot import module 'no_such_module_here'" in str(refused.value)
    assert "PYTHONPATH" in refused.value.hint  # type: ignore[attr-defined]
