"""Fixtures for actions: the receiver process (receiver.py) started once and stopped by its PID, workspaces
that may reach it, and a bare TCP listener that counts the connections it gets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import Workspace
from tests.support.provider import REPO


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("/ledger")["requests"])

    def deliveries(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["method"] == "POST"]

    def posts(self) -> int:
        return int(self._call("/count")["posts"])

    def control(self, **settings: Any) -> None:
        self._call("/control", settings)

    def reset(self) -> None:
        self._call("/reset", {})

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


def start_receiver(lifetime: float = 900.0) -> Receiver:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.actions.receiver", "--lifetime", str(lifetime)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return Receiver(process, int(line.split()[1]))


@pytest.fixture(scope="session")
def receiver_process() -> Iterator[Receiver]:
    process = start_receiver()
    yield process
    process.stop()


@pytest.fixture()
def receiver(receiver_process: Receiver) -> Receiver:
    receiver_process.reset()
    return receiver_process


@pytest.fixture()
def ws(tmp_path: Path, receiver: Receiver) -> Workspace:
    """A workspace whose steps may reach the receiver (and nothing else on this machine)."""
    workspace = Workspace.init(tmp_path / "ws")
    workspace.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
    return workspace


class CountingListener:
    """A TCP listener on 127.0.0.1 (and ::1 when available) that counts the connections it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.sockets: list[socket.socket] = []
        first = socket.create_server(("127.0.0.1", 0))
        self.port = first.getsockname()[1]
        self.sockets.append(first)
        try:
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        except OSError:
            pass  # no IPv6 loopback here
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.sockets]
        for thread in self.threads:
            thread.start()

    def _serve(self, server: socket.socket) -> None:
        server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join()
        for server in self.sockets:
            server.close()


@pytest.fixture()
def listener() -> Iterator[CountingListener]:
    found = CountingListener()
    yield found
    found.close()
