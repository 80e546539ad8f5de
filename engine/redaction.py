"""Secrets and their redaction: the values of the environment variables steps name (`secrets: [KEY]` in http and
export steps, `signing_secret_env`, an AI step's `api_key_env`) are read only when a call is made, and never
stored or logged.

Every read goes through `read_secret`, which remembers the value for this process. `redact` replaces each
remembered value, as written and as URLs, JSON and Python's repr spell it, with `[secret NAME]`. Two places
apply it, so no writer has to remember to:
- `CellResult` (engine/runner/calls.py), the one type every paid call's outcome is stored from: its error
  message, value and provenance are redacted when it is made, so cell tables, activity, the outbox, the memo
  and the result cache (and from them `query`, exports and the UI) never see a secret;
- a log record factory, installed when the first secret is read: every log line of this process (the engine's,
  httpx's request lines, litellm's), its traceback included.
Values shorter than MIN_SECRET_CHARS are not redacted: too short to be a secret, too common to strip from text.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 6
T = TypeVar("T")

_lock = threading.Lock()
_names: dict[str, str] = {}  # secret value -> the variable it was read from
# (a way a value may be written, its replacement), longest first; replaced whole, so readers need no lock
_spellings: tuple[tuple[str, str], ...] = ()


def read_secret(name: str) -> str | None:
    """The value of the environment variable `name` (None if unset or empty), remembered for redaction."""
    value = os.environ.get(name)
    if value:
        remember(name, value)
    return value or None


def remember(name: str, value: str) -> None:
    """Redact `value` from now on, as `[secret name]`."""
    global _spellings
    if len(value) < MIN_SECRET_CHARS or _names.get(value) == name:
        return
    with _lock:
        first = not _names
        _names[value] = name
        spellings = {
            form: f"[secret {secret_name}]" for secret, secret_name in _names.items() for form in _forms(secret)
        }
        _spellings = tuple(sorted(spellings.items(), key=lambda pair: -len(pair[0])))
        if first:
            _install_log_redaction()


def _forms(value: str) -> set[str]:
    forms = {
        value,
        quote(value, safe=""),
        quote(value, safe="/:@"),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


def redact_text(text: str) -> str:
    """`text` with every remembered secret replaced."""
    for form, replacement in _spellings:
        if form in text:
            text = text.replace(form, replacement)
    return text


def redact(value: T) -> T:
    """`value` (text, or JSON-like lists and dicts of it) with every remembered secret replaced; anything else
    is returned as is."""
    if not _spellings:
        return value
    return _redact(value)  # type: ignore[no-any-return]


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {_redact(k): _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v) for v in value)
    return value


def _install_log_redaction() -> None:
    """Make every log record of this process carry redacted text (message, traceback, stack)."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it itself
            return record
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            cleaned = redact_text(trace)
            if cleaned != trace:  # handlers that render exc_info themselves would show the secret
                record.exc_info, record.exc_text = None, cleaned
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
