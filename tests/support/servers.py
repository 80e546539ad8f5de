"""Test servers run as their own process on 127.0.0.1 (the fake provider, the webhook receiver): started with a
lifetime, reached over HTTP for their ledger and controls, and stopped by their PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LocalServer:
    """A server process that printed `PORT <n>` once it listened on 127.0.0.1."""

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

    def control(self, **settings: Any) -> None:
        self._call("/control", settings)

    def reset(self) -> None:
        self._call("/reset", {})

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_process(module: str, *args: str, what: str) -> tuple[subprocess.Popen[str], int]:
    """Run `python -m module args` from the repository and wait for the port it listens on."""
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return process, int(line.split()[1])


def serve_process(
    workspace: Path, port: int, *args: str, stderr: int = subprocess.DEVNULL, user: str = "ada"
) -> subprocess.Popen[bytes]:
    """`runsheet serve` on 127.0.0.1:`port` in its own process, acting for RUNSHEET_USER `user`; it exits by itself
    after two minutes (`args` adds options, e.g. `--no-schedules`). Stop it by its PID (`process.terminate()`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "-w", str(workspace), "--port", str(port), "--exit-after", "120"]
        + list(args),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "RUNSHEET_USER": user},
    )
