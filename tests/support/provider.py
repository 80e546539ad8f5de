"""Starting and stopping the fake provider (tests/support/fake_llm.py) as its own process on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from tests.support.servers import REPO, LocalServer, start_process

__all__ = ["REPO", "ProviderProcess", "start_provider"]


class ProviderProcess(LocalServer):
    @property
    def api_base(self) -> str:
        return f"{self.base}/v1"

    def ledger(self) -> dict[str, Any]:
        return dict(self._call("/ledger"))


def start_provider(latency: float = 0.0, lifetime: float = 900.0) -> ProviderProcess:
    args = ("--latency", str(latency), "--lifetime", str(lifetime))
    return ProviderProcess(*start_process("tests.support.fake_llm", *args, what="the fake provider"))
