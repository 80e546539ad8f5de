"""Copilot: continue any result (a campaign's step cell, an ad hoc action result) in a chat, then save a reply to
the record or pin it as the cell's value (chat.py); what a chat is seeded with (seed.py)."""

from engine.copilot.chat import Copilot

__all__ = ["Copilot"]
