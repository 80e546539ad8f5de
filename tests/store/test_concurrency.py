"""Processes on one workspace at once: a writer loop and a reader loop both succeed; the UI, `runsheet serve` and
a CLI run writing together lose no write."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from engine import Workspace
from engine.auth import create_token, set_user
from engine.types import Status
from tests.conftest import BASIC_ROWS, BASIC_SPEC

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import json, pathlib, sys
from engine import Workspace
campaign = Workspace(sys.argv[1]).campaign("t")
edits = 0
while edits < int(sys.argv[2]):
    campaign.set(1 + edits % 3, "first", f"name{edits}")
    edits += 1
pathlib.Path(sys.argv[3]).touch()  # tells the reader the edits are over
print(json.dumps({"edits": edits}))
"""

READER = """
import json, pathlib, sys
from engine import Workspace
campaign = Workspace(sys.argv[1]).campaign("t")
reads = 0
while reads < int(sys.argv[2]) or not pathlib.Path(sys.argv[3]).exists():  # reads while the writer edits
    page = campaign.page()
    assert len(page.rows) == 3
    for row in page.rows:  # a reader never sees a half-applied edit
        assert row["greet"].value == "Hi " + row["first"].value + " at " + row["domain"].value, row
    reads += 1
print(json.dumps({"reads": reads}))
"""


def test_a_writer_and_a_reader_process_share_a_workspace(ws) -> None:  # type: ignore[no-untyped-def]
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    count, over = "20", str(ws.path.parent / "edits-over")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(ws.path), count, over],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for code in (WRITER, READER)
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            proc.kill()  # a reader whose writer failed would wait for ever
    assert outputs[0]["edits"] == 20 and outputs[1]["reads"] >= 20, outputs
    final = ws.campaign("t").page()
    assert {row["first"].value for row in final.rows} <= {f"name{i}" for i in range(outputs[0]["edits"])}


# ---- the UI, `runsheet serve` and a CLI run writing at once (issue 13, item 6) ------------------------------

RACE_SPEC = """
campaign: t
columns:
  - {name: email, kind: input}
  - {name: first, kind: input}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: research, kind: probe, inputs: [domain, first], delay: 0.4}
"""
RACE_ROWS = 120  # the CLI run claims them all, then computes 4 at a time: 12 s of calls at least
EDITED = range(RACE_ROWS - 40, RACE_ROWS + 1, 4)  # rows the UI edits (late in the run: still in flight)
UPSERTED = range(1, 31)  # rows the API upserts (each once, by its email)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Intake:
    """An API client posting records from threads of its own: appends and upserts, each answer kept; a 503 is
    sent again after its Retry-After, as a well-behaved client does."""

    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token
        self.answers: list[int] = []
        self.busy_without_retry_after = 0
        self.upserted: dict[int, str] = {}  # row -> first, once the API acknowledged it
        self.stop = threading.Event()

    def post(self, body: dict[str, Any]) -> bool:
        request = urllib.request.Request(
            f"{self.base}/campaigns/t/records",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "content-type": "application/json"},
        )
        while True:
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    self.answers.append(response.status)
                    return True
            except urllib.error.HTTPError as answer:
                self.answers.append(answer.code)
                if answer.code != 503:
                    return False
                if answer.headers.get("Retry-After") is None:
                    self.busy_without_retry_after += 1
                time.sleep(float(answer.headers.get("Retry-After") or 1))

    def appends(self, name: str) -> None:
        n = 0
        while not self.stop.is_set() and n < 40:
            self.post({"records": [{"email": f"{name}{n}.{i}@new.org", "first": f"N{n}"} for i in range(2)]})
            n += 1

    def upserts(self) -> None:
        for row in UPSERTED:
            if self.stop.is_set():
                return
            first = f"api{row}"
            if self.post({"records": [{"email": f"p{row}@c{row % 7}.com", "first": first}], "key": "email"}):
                self.upserted[row] = first


def test_the_ui_the_api_and_a_cli_run_writing_at_once_lose_no_write(tmp_path: Path) -> None:
    """A CLI run computes a slow paid step over every row while the UI (this process, the public API) edits
    inputs and pins cells on rows in flight, and `runsheet serve` takes records from concurrent clients. Every
    acknowledged write is stored, no answer is a 500, and no cell is `done` with a value computed from inputs
    it no longer has (the run's answer for an edited row used to land over the edit, marked done)."""
    ws = Workspace(Workspace.init(tmp_path / "ws").path, actor="ada")
    set_user(ws.db, "ada", "ada", "admin")
    ws.apply(RACE_SPEC, actor="ada")
    ui = ws.campaign("t", actor="ada", trigger="ui")
    ui.add_rows([{"email": f"p{i}@c{i % 7}.com", "first": f"F{i}"} for i in range(1, RACE_ROWS + 1)], run=False)
    token = create_token(ws.db, "ada", "ada")
    ws.release()
    env = {**os.environ, "RUNSHEET_USER": "ada", "RUNSHEET_WORKSPACE": str(ws.path)}
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--exit-after", "300", "--no-schedules"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    intake = _Intake(port, token)
    clients: list[threading.Thread] = []
    runner: subprocess.Popen[str] | None = None
    try:
        _wait_for_health(port)
        runner = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", "-c", "t", "--concurrency", "4"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while not ui.status_counts()["research"].get("running"):  # the run claimed its cells
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.05)
        clients = [
            threading.Thread(target=intake.appends, args=("a",)),
            threading.Thread(target=intake.appends, args=("b",)),
            threading.Thread(target=intake.upserts),
        ]
        for client in clients:
            client.start()
        edits: dict[tuple[int, str], str] = {}
        for n, row in enumerate(EDITED):  # what a person does in the grid and the cell panel
            column, value = ("research", f"typed {n}") if n % 4 == 3 else ("first", f"Edited{n}")
            ui.set(row, column, value, run_paid=False)
            edits[(row, column)] = value
        run_out, run_err = runner.communicate(timeout=300)
        for client in clients:
            client.join(300)
    finally:
        intake.stop.set()
        for client in clients:
            client.join(60)
        for process in (runner, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    server_err = server.stderr.read() if server.stderr else ""
    assert runner is not None and runner.returncode == 0, run_err
    assert "Traceback" not in server_err, server_err
    assert 500 not in intake.answers and intake.busy_without_retry_after == 0, intake.answers
    assert len(intake.upserted) == len(UPSERTED)

    cells = ui.page(limit=RACE_ROWS)
    stored = {row_id: row for row_id, row in zip(cells.row_ids, cells.rows, strict=True)}
    for (row, column), value in edits.items():
        assert stored[row][column].value == value, (row, column, stored[row][column])
        if column == "research":
            assert stored[row][column].status is Status.PINNED
    for row, first in intake.upserted.items():
        assert stored[row]["first"].value == first, (row, stored[row]["first"])
    stale_done = [
        (row_id, cells["first"].value, cells["research"].value)
        for row_id, cells in stored.items()
        if cells["research"].status is Status.DONE
        and cells["research"].value != f"probe({cells['domain'].value}|{cells['first'].value})"
    ]
    assert stale_done == []  # a done cell holds the answer for the inputs it has now


def _wait_for_health(port: int) -> None:
    for _ in range(1200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if json.loads(response.read()) == {"ok": True}:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError("runsheet serve did not answer /health")


def test_a_request_that_finds_the_workspace_busy_is_a_503_with_retry_after_and_stores_nothing(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from engine.api import create_app

    ws = Workspace(Workspace.init(tmp_path / "ws").path, actor="ada")
    set_user(ws.db, "ada", "ada", "admin")
    ws.apply(RACE_SPEC, actor="ada")
    auth = {"Authorization": f"Bearer {create_token(ws.db, 'ada', 'ada')}"}
    holding, done = threading.Event(), threading.Event()

    def long_write() -> None:  # another request, a run's writer: a transaction of this process that lasts
        with ws.db.transaction():
            holding.set()
            done.wait(60)

    with TestClient(create_app(ws.path)) as client:
        client.app.state.runsheet.workspace.db.busy_timeout = 0.2  # type: ignore[attr-defined]
        writer = threading.Thread(target=long_write)
        writer.start()
        holding.wait(30)
        try:
            answer = client.post("/campaigns/t/records", json={"records": [{"email": "a@b.com"}]}, headers=auth)
        finally:
            done.set()
            writer.join(60)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1" and "busy" in answer.json()["error"]
        assert ws.campaign("t").row_count() == 0
        again = client.post("/campaigns/t/records", json={"records": [{"email": "a@b.com"}]}, headers=auth)
        assert again.status_code == 200 and ws.campaign("t").row_count() == 1
