"""The action builder's chats: one row per message, per action (by lower-cased name: a chat may draft an action
that does not exist yet). A user's message is the request; an assistant's carries its proposal whole (the
step, its description, the plan, the diff shown and the estimate), so accepting it applies exactly what was
shown. Reset Chat deletes the action's rows."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from engine.store.database import dict_rows

CHAT_COLUMNS = "message_id, action, action_id, turn, role, content, proposal, created_at, actor, accepted_at"


def add_message(
    con: duckdb.DuckDBPyConnection,
    action: str,
    action_id: int | None,
    role: str,
    content: str,
    actor: str,
    proposal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append a message to `action`'s chat (its turn: one more than the chat's last); returns it as stored."""
    found = con.execute(
        "INSERT INTO action_chats (message_id, action, action_id, turn, role, content, proposal, created_at, actor) "
        "SELECT (SELECT coalesce(max(message_id), 0) + 1 FROM action_chats), lower(?), ?, "
        "(SELECT coalesce(max(turn), 0) + 1 FROM action_chats WHERE action = lower(?)), ?, ?, ?, now(), ? "
        "RETURNING message_id",
        [action, action_id, action, role, content, None if proposal is None else json.dumps(proposal), actor],
    ).fetchall()
    message = read_message(con, int(found[0][0]))
    assert message is not None
    return message


def read_message(con: duckdb.DuckDBPyConnection, message_id: int) -> dict[str, Any] | None:
    rows = dict_rows(con.execute(f"SELECT {CHAT_COLUMNS} FROM action_chats WHERE message_id = ?", [message_id]))
    return _decoded(rows[0]) if rows else None


def read_chat(con: duckdb.DuckDBPyConnection, action: str) -> list[dict[str, Any]]:
    """`action`'s chat, oldest message first."""
    rows = dict_rows(
        con.execute(f"SELECT {CHAT_COLUMNS} FROM action_chats WHERE action = lower(?) ORDER BY turn", [action])
    )
    return [_decoded(r) for r in rows]


def mark_accepted(con: duckdb.DuckDBPyConnection, message_id: int) -> None:
    con.execute("UPDATE action_chats SET accepted_at = now() WHERE message_id = ?", [message_id])


def clear_chat(con: duckdb.DuckDBPyConnection, action: str) -> int:
    """Reset Chat: remove `action`'s messages; returns how many went."""
    return len(con.execute("DELETE FROM action_chats WHERE action = lower(?) RETURNING 1", [action]).fetchall())


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    proposal = row["proposal"]
    row["proposal"] = json.loads(proposal) if isinstance(proposal, str) else proposal
    for key in ("created_at", "accepted_at"):
        row[key] = None if row[key] is None else row[key].isoformat()
    return row


def rename_chat(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """An action's chat follows its rename (a chat already under the new name is the caller's to refuse)."""
    con.execute("UPDATE action_chats SET action = lower(?) WHERE action = lower(?)", [new, old])


def chat_length(con: duckdb.DuckDBPyConnection, action: str) -> int:
    return int(con.execute("SELECT count(*) FROM action_chats WHERE action = lower(?)", [action]).fetchone()[0])  # type: ignore[index]
