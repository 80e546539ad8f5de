"""The warm runner (engine/warm.py): started and stopped by PID, runs what it is handed as a normal run in its own
process, refuses a wrong secret, never outlives its parent; `runsheet run` falls back to running in-process
when no runner is up or its descriptor is stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine import RunSelection, WarmRunner, Workspace
from engine.cli import app
from engine.warm import Descriptor, _alive
from tests.conftest import copy_workspace
from tests.support.consent import apply_active

SPEC = """
campaign: t
columns:
  - {name: first, kind: input}
  - {name: opener, kind: probe, inputs: [first], run: manual, credits: 3}
  - {name: opener_length, kind: formula, expression: "length(opener)"}
"""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.init(tmp_path / "ws")
    apply_active(workspace, SPEC)
    workspace.campaign("t").add_rows([{"first": "Ann"}, {"first": "Bob"}, {"first": "Cy"}])
    workspace.release()
    return workspace


@pytest.fixture
def runner(ws: Workspace) -> Iterator[WarmRunner]:
    started = WarmRunner.start(ws.path)
    try:
        assert started.ready(), "the warm runner did not come up"
        yield started
    finally:
        started.stop()


def wait_until(condition, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until it holds (a wait with a generous deadline, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def last_run(ws: Workspace) -> dict[str, object]:
    return dict(ws.runs(1)[0])


def run_cli(ws: Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", "--workspace", str(ws.path), "--campaign", "t", *args, "--as", "ann"])
    return result.exit_code, result.output


def test_a_small_cli_run_goes_through_the_runner(ws: Workspace, runner: WarmRunner) -> None:
    code, output = run_cli(ws, "--column", "opener", "--rows", "2")
    assert code == 0, output
    run = last_run(ws)
    assert run["pid"] == runner.pid != os.getpid()  # the runner's process ran it, not this one
    assert run["actor"] == "ann" and run["trigger"] == "cli" and run["status"] == "done"
    assert f"run {run['run_id']}" in output and "1 done" in output
    campaign = ws.campaign("t")
    assert [campaign.cell(row, "opener").value for row in (1, 2, 3)] == [None, "probe(Bob)", None]


def test_the_runner_answers_errors_and_exit_codes_as_the_cli_does(ws: Workspace, runner: WarmRunner) -> None:
    code, output = run_cli(ws, "--column", "nope", "--rows", "1")
    assert code == 1 and output.startswith("error: ") and "nope" in output
    ws.campaign("t").set(1, "first", "Bob")
    code, output = run_cli(ws, "--column", "opener", "--rows", "1", "--json")
    assert code == 0 and json.loads(output)["counts"] == {"opener": {"done": 1}, "opener_length": {"done": 1}}


def test_the_cli_runs_in_process_when_no_runner_is_up(ws: Workspace) -> None:
    code, output = run_cli(ws, "--column", "opener", "--rows", "2")
    assert code == 0, output
    assert last_run(ws)["pid"] == os.getpid()


def test_a_stale_descriptor_is_ignored_and_removed(ws: Workspace) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = Descriptor.path(ws.path, gone.pid)
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        json.dumps({"pid": gone.pid, "port": 1, "secret": "x", "parent": os.getpid(), "workspace": str(ws.path)})
    )
    assert WarmRunner.find(ws.path) is None
    assert not path.exists()
    code, output = run_cli(ws, "--column", "opener", "--rows", "2")
    assert code == 0, output
    assert last_run(ws)["pid"] == os.getpid()


def test_an_unreachable_runner_is_skipped(ws: Workspace) -> None:
    path = Descriptor.path(ws.path, os.getpid())  # alive, but nothing listens on its port
    path.parent.mkdir(exist_ok=True)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    path.write_text(
        json.dumps({"pid": os.getpid(), "port": port, "secret": "x", "parent": 1, "workspace": str(ws.path)})
    )
    assert WarmRunner.submit(ws.path, "t", RunSelection.of(["opener"], [2])) is None
    code, output = run_cli(ws, "--column", "opener", "--rows", "2")
    assert code == 0 and last_run(ws)["pid"] == os.getpid()


def test_a_wrong_secret_is_refused_and_runs_nothing(ws: Workspace, runner: WarmRunner) -> None:
    descriptor = WarmRunner.find(ws.path)
    assert descriptor is not None and descriptor.pid == runner.pid
    assert Descriptor.path(ws.path, runner.pid).stat().st_mode & 0o077 == 0  # only the owner may read the secret
    before = ws.runs(50)
    request = {"secret": "guess", "campaign": "t", "selection": {"columns": ["opener"], "rows": [2]}}
    with socket.create_connection(("127.0.0.1", descriptor.port)) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(sock.makefile("rb").readline())
    assert answer == {"refused": "wrong secret"}
    assert ws.runs(50) == before


def test_stopping_by_pid_ends_the_runner_and_removes_its_descriptor(ws: Workspace) -> None:
    runner = WarmRunner.start(ws.path)
    assert runner.ready()
    runner.stop()
    assert runner.process.returncode == 0
    assert WarmRunner.find(ws.path) is None and not Descriptor.path(ws.path, runner.pid).exists()


def test_the_runner_stops_when_its_parent_dies(ws: Workspace) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from engine import WarmRunner; r = WarmRunner.start(sys.argv[1]); r.ready();"
            " print(r.pid, flush=True); time.sleep(600)",
            str(ws.path),
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.kill()  # no chance to stop its child
    parent.wait()
    assert wait_until(lambda: not _alive(pid)), "the runner outlived its parent"
    assert WarmRunner.find(ws.path) is None


@pytest.mark.parametrize("command", ["ui", "serve"])
def test_ui_and_serve_start_a_runner_and_stop_it(ws: Workspace, tmp_path: Path, command: str) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    face = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", command, "--workspace", str(ws.path), "--port", str(port)]
        + ["--exit-after", "300"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: WarmRunner.find(ws.path) is not None), "no runner came up"
        descriptor = WarmRunner.find(ws.path)
        assert descriptor is not None and descriptor.parent == face.pid
        code, output = run_cli(ws, "--column", "opener", "--rows", "3")
        assert code == 0 and last_run(ws)["pid"] == descriptor.pid
    finally:
        face.terminate()
        face.wait(timeout=60)
    assert not _alive(descriptor.pid)  # stopped by its parent, not left to notice
    assert WarmRunner.find(ws.path) is None


def test_a_descriptor_copied_with_its_workspace_is_not_the_copys_runner(
    ws: Workspace, runner: WarmRunner, tmp_path: Path
) -> None:
    copy = copy_workspace(ws.path, tmp_path / "copy")
    assert WarmRunner.find(ws.path) is not None
    assert WarmRunner.find(copy) is None  # the runner serves the original folder only
    code, output = run_cli(Workspace(copy), "--column", "opener", "--rows", "2")
    assert code == 0, output
    assert last_run(Workspace(copy))["pid"] == os.getpid()
