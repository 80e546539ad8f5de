"""Fixtures for actions: the receiver process (receiver.py) started once and stopped by its PID, workspaces
that may reach it, and a bare TCP listener that counts the connections it gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Workspace
from tests.support.servers import LocalServer, start_process


class Receiver(LocalServer):
    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("/ledger")["requests"])

    def deliveries(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["method"] == "POST"]

    def posts(self) -> int:
        return int(self._call("/count")["posts"])


def start_receiver(lifetime: float = 900.0) -> Receiver:
    return Receiver(*start_process("tests.actions.receiver", "--lifetime", str(lifetime), what="the receiver"))


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
