"""Outbound network access for steps: the address guard and the guarded HTTP client."""

from __future__ import annotations

from engine.net.guard import BlockedAddress, NetworkPolicy, UnresolvedHost, refusal, set_resolver

__all__ = ["BlockedAddress", "NetworkPolicy", "UnresolvedHost", "refusal", "set_resolver"]
