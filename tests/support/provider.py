"""Starting and stopping the fake provider (tests/support/fake_llm.py) as its own process on 127.0.0.1."""

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
class ProviderProcess:
    process: subprocess.Popen[str]
    port: int

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def ledger(self) -> dict[str, Any]:
        return self._call("/ledger")

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


def start_provider(latency: float = 0.0, lifetime: float = 900.0) -> ProviderProcess:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_llm",
            "--latency",
            str(latency),
            "--lifetime",
            str(lifetime),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the fake provider did not start: {line!r}")
    return ProviderProcess(process, int(line.split()[1]))
