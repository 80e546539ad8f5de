"""Credits for one run: a call is made only if its price fits under the balance and every cap; cached answers
cost nothing. Prices are reserved before a call and settled when it ends, so concurrent calls cannot together
overdraw within a process. The figures a run starts with are read from the store by its caller
(engine/run/paid.py's `load_budget`): the call pool reads no tables."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Budget:
    """`balance` is what the workspace had when the run started (minus what other runs spend, via `refresh`);
    `run_cap` and `campaign_room` (the campaign's cap minus what it spent) are optional limits."""

    balance: float
    run_cap: float | None = None
    campaign_room: float | None = None
    spent: float = 0.0
    reserved: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def room(self) -> float:
        limits = [self.balance - self.spent]
        if self.run_cap is not None:
            limits.append(self.run_cap - self.spent)
        if self.campaign_room is not None:
            limits.append(self.campaign_room - self.spent)
        return min(limits) - self.reserved

    def tightest(self) -> str:
        """Which limit leaves the least room: what a refusal for credits names."""
        binding = self.binding()
        if binding == "run_cap":
            return f"the run's cap ({self.run_cap:g} credits: --max-credits, or the run_cap setting)"
        if binding == "campaign_room":
            return f"the campaign's cap (campaign_caps: {self.campaign_room:g} credits left)"
        return f"the workspace balance ({self.balance:g} credits)"

    def binding(self) -> str:
        """The limit that leaves the least room: `balance`, `run_cap` or `campaign_room`."""
        limits = {"balance": self.balance, "run_cap": self.run_cap, "campaign_room": self.campaign_room}
        return min((name for name, limit in limits.items() if limit is not None), key=lambda n: limits[n] or 0.0)

    def reserve(self, credits: float) -> bool:
        """Hold `credits` for a call; False (and nothing held) if that would overdraw."""
        if credits <= 0:
            return True
        with self._lock:
            if self.room() + 1e-9 < credits:
                return False
            self.reserved += credits
            return True

    def settle(self, reserved: float, charged: float) -> None:
        """A call ended: release its hold and charge what it cost (0 for a failure or a cache hit)."""
        with self._lock:
            self.reserved -= reserved
            self.spent += charged

    def refresh(self, balance_now: float, spent_written: float) -> None:
        """Take in the balance as stored now; `spent_written` is the part of `spent` already in the ledger."""
        with self._lock:
            self.balance = balance_now + spent_written
