"""Start and stop a `runsheet ui` server in its own process: on 127.0.0.1, on a free port, stopped by its PID
(and by itself after `exit_after` seconds, should its owner die first). Used by the browser tests and bench/."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ui_server(workspace: Path, *, exit_after: float = 600, user: str = "e2e") -> Iterator[str]:
    """`runsheet ui` for `workspace`; yields its URL once it answers, and stops it (SIGTERM, then SIGKILL)."""
    port = free_port()
    log_path = workspace.parent / f"ui-{port}.log"
    env = {**os.environ, "RUNSHEET_USER": user, "PYTHONPATH": str(ROOT)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "ui",
                "--workspace",
                str(workspace),
                "--port",
                str(port),
                "--exit-after",
                str(exit_after),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"runsheet ui did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
