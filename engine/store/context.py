"""Global context documents (brand brief, value propositions, ICP, offer, personas): versioned text that AI
steps read as `{{ context.<name> }}`. Saving a document keeps the old version in the history."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb

from engine.errors import EditError
from engine.spec import NAME_PATTERN


@dataclass(frozen=True)
class ContextDocument:
    name: str
    text: str
    version: str
    updated_at: datetime | None
    updated_by: str | None


def read_context(con: duckdb.DuckDBPyConnection) -> dict[str, ContextDocument]:
    rows = con.execute("SELECT name, text, version, updated_at, updated_by FROM context ORDER BY name").fetchall()
    return {row[0]: ContextDocument(*row) for row in rows}


def context_versions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT name, version FROM context").fetchall())


def save_context(con: duckdb.DuckDBPyConnection, name: str, text: str, actor: str) -> ContextDocument | None:
    """Store a document's new text; None if the text did not change (nothing goes stale then)."""
    if not NAME_PATTERN.match(name):
        raise EditError(f"{name!r} is not a valid context name", hint="use letters, digits and underscores, e.g. icp")
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    current = con.execute("SELECT version FROM context WHERE name = ?", [name]).fetchall()
    if current and current[0][0] == version:
        return None
    con.execute("INSERT OR REPLACE INTO context VALUES (?, ?, ?, now(), ?)", [name, text, version, actor])
    con.execute("INSERT INTO context_history VALUES (?, ?, ?, now(), ?)", [name, text, version, actor])
    return read_context(con)[name]


def delete_context(con: duckdb.DuckDBPyConnection, name: str, actor: str) -> bool:
    found = con.execute("DELETE FROM context WHERE name = ? RETURNING name", [name]).fetchall()
    if found:
        con.execute("INSERT INTO context_history VALUES (?, NULL, 'deleted', now(), ?)", [name, actor])
    return bool(found)
