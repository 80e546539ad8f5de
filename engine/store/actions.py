"""The action library's tables: workspace-level actions (named, described step definitions), the results of
running one on a single record, and the documents results are kept as.

An action keeps its id for life: rename changes `name` only, so its results, documents and activity rows (which
carry `action_id`) stay its own. Deleting an action (asked for and confirmed by a person) removes it with its
results, documents, schedules and its own activity rows (its runs and refusals); credit rows are money and stay, so the
balance still adds up, and a Save to Record it made stays in the record's history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from engine.store.database import dict_rows

ACTION_COLUMNS = (
    "action_id, name, kind, options, category, description, enabled, active, roles, produces, created_at, "
    "created_by, updated_at, updated_by"
)


@dataclass(frozen=True)
class StoredAction:
    """One action of the library as stored."""

    action_id: int
    name: str
    kind: str
    options: dict[str, Any]
    category: str
    description: str
    enabled: bool
    active: bool
    roles: tuple[str, ...]
    produces: str  # "result" (shown in a panel) or "document" (kept as a markdown document too)
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "name": self.name,
            "kind": self.kind,
            "options": self.options,
            "category": self.category,
            "description": self.description,
            "enabled": self.enabled,
            "active": self.active,
            "roles": list(self.roles),
            "produces": self.produces,
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _action(row: tuple[Any, ...]) -> StoredAction:
    values = list(row)
    values[3] = json.loads(values[3]) if isinstance(values[3], str) else values[3]
    values[8] = tuple(json.loads(values[8]) if isinstance(values[8], str) else values[8])
    return StoredAction(*values)


def read_actions(con: duckdb.DuckDBPyConnection) -> list[StoredAction]:
    rows = con.execute(f"SELECT {ACTION_COLUMNS} FROM actions ORDER BY lower(name)").fetchall()
    return [_action(r) for r in rows]


def read_action(con: duckdb.DuckDBPyConnection, name: str) -> StoredAction | None:
    """The action named `name` (compared without case), or None."""
    rows = con.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE lower(name) = lower(?)", [name]).fetchall()
    return _action(rows[0]) if rows else None


def read_action_by_id(con: duckdb.DuckDBPyConnection, action_id: int) -> StoredAction | None:
    rows = con.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE action_id = ?", [int(action_id)]).fetchall()
    return _action(rows[0]) if rows else None


def insert_action(con: duckdb.DuckDBPyConnection, action: StoredAction, actor: str) -> int:
    found = con.execute(
        f"INSERT INTO actions ({ACTION_COLUMNS}) SELECT coalesce(max(action_id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "now(), ?, now(), ? FROM actions RETURNING action_id",
        [
            action.name,
            action.kind,
            json.dumps(action.options, sort_keys=True),
            action.category,
            action.description,
            action.enabled,
            action.active,
            json.dumps(list(action.roles)),
            action.produces,
            actor,
            actor,
        ],
    ).fetchall()
    return int(found[0][0])


def update_action(con: duckdb.DuckDBPyConnection, action_id: int, actor: str, **fields: Any) -> None:
    """Set the given fields of an action (name, options, category, description, enabled, active, roles...)."""
    encoded = {
        k: json.dumps(list(v) if k == "roles" else v, sort_keys=True) if k in ("options", "roles") else v
        for k, v in fields.items()
    }
    assignments = ", ".join(f"{k} = ?" for k in encoded)
    con.execute(
        f"UPDATE actions SET {assignments}, updated_at = now(), updated_by = ? WHERE action_id = ?",
        [*encoded.values(), actor, action_id],
    )


def delete_action(con: duckdb.DuckDBPyConnection, action_id: int) -> dict[str, int]:
    """Remove an action with its results, documents and activity rows; returns how many of each went."""
    counts = {}
    for table in ("documents", "action_results"):
        counts[table] = len(con.execute(f"DELETE FROM {table} WHERE action_id = ? RETURNING 1", [action_id]).fetchall())
    counts["schedules"] = len(
        con.execute("DELETE FROM schedules WHERE action_id = ? RETURNING 1", [action_id]).fetchall()
    )
    # the action's own log; a Save to Record it made is the record's history, and stays
    deleted = con.execute("DELETE FROM activity WHERE action_id = ? AND action = 'action' RETURNING 1", [action_id])
    counts["activity"] = len(deleted.fetchall())
    # its builder chat goes with it (a new action of the same name starts a chat of its own)
    con.execute(
        "DELETE FROM action_chats WHERE action_id = $1 OR action = (SELECT lower(name) FROM actions "
        "WHERE action_id = $1)",
        [action_id],
    )
    # so do the Copilot chats of its results (the results went above)
    con.execute(
        "DELETE FROM copilot_messages WHERE chat_id IN (SELECT chat_id FROM copilot_chats WHERE result_id IS NOT NULL "
        "AND action_id = ?)",
        [action_id],
    )
    con.execute("DELETE FROM copilot_chats WHERE result_id IS NOT NULL AND action_id = ?", [action_id])
    con.execute("DELETE FROM actions WHERE action_id = ?", [action_id])
    return counts


def history_counts(con: duckdb.DuckDBPyConnection, action_id: int) -> dict[str, int]:
    """What deleting the action would remove, for the confirmation to name."""
    found = con.execute(
        "SELECT (SELECT count(*) FROM action_results WHERE action_id = $1), "
        "(SELECT count(*) FROM documents WHERE action_id = $1), "
        "(SELECT count(*) FROM activity WHERE action_id = $1 AND action = 'action'), "
        "(SELECT count(*) FROM schedules WHERE action_id = $1)",
        [action_id],
    ).fetchall()[0]
    names = ("action_results", "documents", "activity", "schedules")
    return {name: int(n) for name, n in zip(names, found, strict=True)}


# A result still `running` whose run is over (its runner died: reclaim_dead_runs marked it interrupted) reads as
# `interrupted`: what is shown is true now.
RESULT_COLUMNS = (
    "r.result_id, r.action_id, a.name AS action, r.campaign_id, c.name AS campaign, r.row_id, r.run_id, "
    "CASE WHEN r.status = 'running' AND coalesce(u.status, '') <> 'running' THEN 'interrupted' ELSE r.status END "
    "AS status, "
    "r.value, r.error_code, r.error_message, r.error_hint, r.credits, r.tokens, r.provider_cost, r.cached, "
    "r.latency_ms, r.detail, r.started_at, r.finished_at, r.actor, r.trigger, r.saved_at, r.saved_by, r.saved_field"
)
_RESULTS_FROM = (
    "FROM action_results r JOIN actions a USING (action_id) LEFT JOIN campaigns c ON c.campaign_id = r.campaign_id "
    "LEFT JOIN runs u ON u.run_id = r.run_id"
)


def insert_result(
    con: duckdb.DuckDBPyConnection,
    action_id: int,
    campaign_id: int,
    row_id: int,
    run_id: int,
    who: tuple[str, str],
) -> int:
    """A `running` result for the run just opened; its outcome is written by `finish_result`."""
    found = con.execute(
        "INSERT INTO action_results (result_id, action_id, campaign_id, row_id, run_id, status, started_at, actor, "
        "trigger) SELECT coalesce(max(result_id), 0) + 1, ?, ?, ?, ?, 'running', now(), ?, ? FROM action_results "
        "RETURNING result_id",
        [action_id, campaign_id, row_id, run_id, *who],
    ).fetchall()
    return int(found[0][0])


def finish_result(con: duckdb.DuckDBPyConnection, result_id: int, outcome: dict[str, Any]) -> None:
    """Store how a result ended: status, value (text), error, credits, tokens, cost, cached, latency, detail."""
    names = list(outcome)
    assignments = ", ".join(f"{n} = ?" for n in names)
    con.execute(
        f"UPDATE action_results SET {assignments}, finished_at = now() WHERE result_id = ?",
        [*(json.dumps(v, default=str) if n == "detail" else v for n, v in outcome.items()), result_id],
    )


def read_result(con: duckdb.DuckDBPyConnection, result_id: int) -> dict[str, Any] | None:
    rows = dict_rows(con.execute(f"SELECT {RESULT_COLUMNS} {_RESULTS_FROM} WHERE r.result_id = ?", [result_id]))
    return _decoded(rows[0]) if rows else None


def _decoded(result: dict[str, Any]) -> dict[str, Any]:
    """A result with its provenance (`detail`: the model, the rendered messages...) as a mapping."""
    detail = result.get("detail")
    return {**result, "detail": json.loads(detail) if isinstance(detail, str) else detail}


def read_results(
    con: duckdb.DuckDBPyConnection,
    *,
    action_id: int | None = None,
    campaign_id: int | None = None,
    row_id: int | None = None,
    limit: int = 50,
    visible: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Results, newest first, of an action and/or a record (of the actions `visible` only, when given)."""
    where, params = _filters(action_id=action_id, campaign_id=campaign_id, row_id=row_id, visible=visible)
    cursor = con.execute(
        f"SELECT {RESULT_COLUMNS} {_RESULTS_FROM} {where} ORDER BY r.result_id DESC LIMIT ?", [*params, limit]
    )
    return [_decoded(r) for r in dict_rows(cursor)]


def mark_saved(con: duckdb.DuckDBPyConnection, result_id: int, actor: str, field: str) -> None:
    con.execute(
        "UPDATE action_results SET saved_at = now(), saved_by = ?, saved_field = ? WHERE result_id = ?",
        [actor, field, result_id],
    )


def insert_document(
    con: duckdb.DuckDBPyConnection,
    action_id: int,
    campaign_id: int,
    row_id: int,
    result_id: int,
    run_id: int,
    title: str,
    body: str,
    author: str,
) -> int:
    found = con.execute(
        "INSERT INTO documents SELECT coalesce(max(document_id), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, now() FROM documents "
        "RETURNING document_id",
        [action_id, campaign_id, row_id, result_id, run_id, title, body, author],
    ).fetchall()
    return int(found[0][0])


DOCUMENT_COLUMNS = (
    "d.document_id, d.action_id, a.name AS action, d.campaign_id, c.name AS campaign, d.row_id, d.result_id, "
    "d.run_id, d.title, d.body, d.author, d.created_at"
)
_DOCUMENTS_FROM = (
    "FROM documents d JOIN actions a USING (action_id) LEFT JOIN campaigns c ON c.campaign_id = d.campaign_id"
)


def read_documents(
    con: duckdb.DuckDBPyConnection,
    *,
    action_id: int | None = None,
    campaign_id: int | None = None,
    row_id: int | None = None,
    limit: int = 200,
    visible: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Documents, newest first, of an action and/or a record (of the actions `visible` only, when given)."""
    where, params = _filters(action_id=action_id, campaign_id=campaign_id, row_id=row_id, visible=visible, alias="d")
    cursor = con.execute(
        f"SELECT {DOCUMENT_COLUMNS} {_DOCUMENTS_FROM} {where} ORDER BY d.document_id DESC LIMIT ?", [*params, limit]
    )
    return dict_rows(cursor)


def read_document(con: duckdb.DuckDBPyConnection, document_id: int) -> dict[str, Any] | None:
    rows = dict_rows(con.execute(f"SELECT {DOCUMENT_COLUMNS} {_DOCUMENTS_FROM} WHERE d.document_id = ?", [document_id]))
    return rows[0] if rows else None


def _filters(
    alias: str = "r", visible: list[int] | None = None, **given: int | None
) -> tuple[str, list[int | list[int]]]:
    chosen = {k: v for k, v in given.items() if v is not None}
    clauses = [f"{alias}.{k} = ?" for k in chosen]
    params: list[int | list[int]] = [v for v in chosen.values() if v is not None]
    if visible is not None:
        clauses.append(f"list_contains(?::BIGINT[], {alias}.action_id)")
        params.append(visible)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
