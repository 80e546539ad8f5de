"""Copilot's chats: one per source (`cell:<campaign id>:<row id>:<column>` or `result:<result id>`), holding the
seed it was opened with (the record, the step, the rendered prompt, the result), and its messages in turn order.
An assistant's message records where it was used (`record:<field>` or `cell:<column>`), by whom and when. Reset
deletes the messages and takes a new seed; the chat keeps its id."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from engine.store.database import dict_rows

CHAT_COLUMNS = "chat_id, source, campaign_id, row_id, column_name, result_id, action_id, seed, created_at, created_by"
MESSAGE_COLUMNS = (
    "message_id, chat_id, turn, role, content, model, credits, created_at, actor, used_as, used_at, used_by"
)


def open_chat(
    con: duckdb.DuckDBPyConnection,
    source: str,
    where: tuple[int, int, str | None],
    origin: tuple[int | None, int | None],
    seed: dict[str, Any],
    actor: str,
) -> dict[str, Any]:
    """The chat of `source`: the one kept, or a new one seeded with `seed`. `where` is (campaign id, row id,
    column), `origin` (result id, action id)."""
    found = find_chat(con, source)
    if found is not None:
        return found
    con.execute(
        f"INSERT INTO copilot_chats ({CHAT_COLUMNS}) SELECT (SELECT coalesce(max(chat_id), 0) + 1 FROM "
        "copilot_chats), ?, ?, ?, ?, ?, ?, ?, now(), ?",
        [source, *where, *origin, json.dumps(seed, default=str), actor],
    )
    chat = find_chat(con, source)
    assert chat is not None
    return chat


def find_chat(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, Any] | None:
    rows = dict_rows(con.execute(f"SELECT {CHAT_COLUMNS} FROM copilot_chats WHERE source = ?", [source]))
    return _chat(rows[0]) if rows else None


def read_chat(con: duckdb.DuckDBPyConnection, chat_id: int) -> dict[str, Any] | None:
    rows = dict_rows(con.execute(f"SELECT {CHAT_COLUMNS} FROM copilot_chats WHERE chat_id = ?", [int(chat_id)]))
    return _chat(rows[0]) if rows else None


def read_messages(con: duckdb.DuckDBPyConnection, chat_id: int) -> list[dict[str, Any]]:
    """The chat's messages, oldest first."""
    cursor = con.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM copilot_messages WHERE chat_id = ? ORDER BY turn", [int(chat_id)]
    )
    return [_message(r) for r in dict_rows(cursor)]


def add_message(
    con: duckdb.DuckDBPyConnection,
    chat_id: int,
    role: str,
    content: str,
    actor: str,
    model: str | None = None,
    credits: float = 0.0,
) -> dict[str, Any]:
    """Append a message (its turn: one more than the chat's last); returns it as stored."""
    found = con.execute(
        "INSERT INTO copilot_messages (message_id, chat_id, turn, role, content, model, credits, created_at, actor) "
        "SELECT (SELECT coalesce(max(message_id), 0) + 1 FROM copilot_messages), ?, "
        "(SELECT coalesce(max(turn), 0) + 1 FROM copilot_messages WHERE chat_id = ?), ?, ?, ?, ?, now(), ? "
        "RETURNING message_id",
        [int(chat_id), int(chat_id), role, content, model, credits, actor],
    ).fetchall()
    message = read_message(con, int(found[0][0]))
    assert message is not None
    return message


def read_message(con: duckdb.DuckDBPyConnection, message_id: int) -> dict[str, Any] | None:
    rows = dict_rows(
        con.execute(f"SELECT {MESSAGE_COLUMNS} FROM copilot_messages WHERE message_id = ?", [int(message_id)])
    )
    return _message(rows[0]) if rows else None


def mark_used(con: duckdb.DuckDBPyConnection, message_id: int, used_as: str, actor: str) -> None:
    con.execute(
        "UPDATE copilot_messages SET used_as = ?, used_at = now(), used_by = ? WHERE message_id = ?",
        [used_as, actor, int(message_id)],
    )


def reset_chat(con: duckdb.DuckDBPyConnection, chat_id: int, seed: dict[str, Any]) -> int:
    """Reset: delete the chat's messages and keep `seed` as its new seed; returns how many messages went."""
    gone = con.execute("DELETE FROM copilot_messages WHERE chat_id = ? RETURNING 1", [int(chat_id)]).fetchall()
    con.execute("UPDATE copilot_chats SET seed = ? WHERE chat_id = ?", [json.dumps(seed, default=str), int(chat_id)])
    return len(gone)


def _chat(row: dict[str, Any]) -> dict[str, Any]:
    seed = row["seed"]
    row["seed"] = json.loads(seed) if isinstance(seed, str) else seed
    row["created_at"] = None if row["created_at"] is None else row["created_at"].isoformat()
    return row


def _message(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_at", "used_at"):
        row[key] = None if row[key] is None else row[key].isoformat()
    return row
