"""Identifiers, modes and statuses shared by every layer of the engine."""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal, NewType

ColumnName = NewType("ColumnName", str)
RowId = NewType("RowId", int)

RunMode = Literal["auto", "manual"]
# A plain name: what a campaign, column or context document may be called.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
INPUT_KIND = "input"  # the kind of a column that holds what people and imports put in; every other kind is a step


class Status(str, Enum):
    """The state of one step cell (see DESIGN.md, "Cell states")."""

    EMPTY = "empty"
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STALE = "stale"
    SKIPPED = "skipped"
    NOT_FOUND = "not_found"
    ERROR = "error"
    PINNED = "pinned"
    CONFIRMED = "confirmed"  # pinned, and a person confirmed the edited value: exports may send it
    PAUSED = "paused"  # asked to run while its step or campaign is paused: not an error, resuming runs it


# The status sets (settled, hand-set, current, pending, ...) and the rules over them: engine/graph/fate.py.


class ErrorCode(str, Enum):
    """Why a cell failed; each code has a user-facing hint in HINTS."""

    MISSING_REQUIRED_FIELD = "missing_required_field"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    PROVIDER_ERROR = "provider_error"
    INVALID_OUTPUT = "invalid_output"
    ACTION_DISABLED = "action_disabled"
    CANCELLED = "cancelled"
    UPSTREAM_ERROR = "upstream_error"
    PERMISSION_DENIED = "permission_denied"
    HOST_NOT_ALLOWED = "host_not_allowed"  # the lookup guard refused a non-public address (engine/net/guard.py)
    FORMULA_ERROR = "formula_error"
    PYTHON_ERROR = "python_error"
    TEMPLATE_ERROR = "template_error"


# Failures that say nothing about the cell's inputs: a later run tries these cells again (rule 9 covers the rest).
RETRYABLE_CODES = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.RATE_LIMITED, ErrorCode.CANCELLED, ErrorCode.INSUFFICIENT_CREDITS}
)

# What a paused cell says, beside its status (DESIGN: "paused" with how to resume, never an error).
PAUSED_HINT = "resume the step or campaign to run it: `runsheet resume -c CAMPAIGN [--column STEP]`"

HINTS: dict[ErrorCode, str] = {
    ErrorCode.MISSING_REQUIRED_FIELD: "enrich the record first",
    ErrorCode.INSUFFICIENT_CREDITS: "add credits or raise the cap, then run again",
    ErrorCode.TIMEOUT: "run again, or raise the step's timeout",
    ErrorCode.RATE_LIMITED: "run again later, or lower the concurrency",
    ErrorCode.PROVIDER_ERROR: "check the provider's status and credentials, then run again",
    ErrorCode.INVALID_OUTPUT: "adjust the prompt or schema, then run again",
    ErrorCode.ACTION_DISABLED: "enable the step to run it",
    ErrorCode.CANCELLED: "run again to finish it",
    ErrorCode.UPSTREAM_ERROR: "fix the upstream cell, then run again",
    ErrorCode.PERMISSION_DENIED: "ask an admin for access",
    ErrorCode.HOST_NOT_ALLOWED: (
        "if the host is yours, add it to the workspace's allowed_hosts: "
        "runsheet settings allowed_hosts '[\"host:port\"]'"
    ),
    ErrorCode.FORMULA_ERROR: "fix the expression or the input value",
    ErrorCode.PYTHON_ERROR: "fix the function or the input value",
    ErrorCode.TEMPLATE_ERROR: "fix the prompt template or the input value",
}


def current_user() -> str:
    """Who runs this process: $RUNSHEET_USER (the CLI's `--as` sets it), else the login name."""
    import getpass
    import os

    found = os.environ.get("RUNSHEET_USER") or os.environ.get("USER")
    if not found:
        try:
            found = getpass.getuser()
        except (KeyError, OSError):
            found = "cli"
    return found
