"""Roles: who may do what in a workspace, enforced by the engine for every entry point (CLI, API, UI).

    admin   edit specs, context, settings, credits, users, tokens and the action library; and everything a member
            may do
    member  run steps, edit inputs, add records, stop runs, pause and resume
    viewer  read

A workspace with no users is open: everyone acts as admin (a single person's workspace needs no setup). Once
a user exists, roles apply: an actor who is not a user reads only. A refused action raises
PermissionDeniedError and is written to the activity log (action, actor, outcome `permission_denied`).

Who the actor is comes from the face: the API's bearer token, the UI's login (engine/logins.py), the CLI's
`--as` / $RUNSHEET_USER. The first two are checked; the CLI's is a convenience, not a guard, because whoever
can open the workspace file can change anything in it: the file's owner is its admin.

API tokens stand for a user; only their SHA-256 is stored, so the token is shown once, when it is created. A
fast digest is sound here (unlike for passwords): a token is 256 random bits, so nothing can be guessed from its
digest faster than the token itself, and the lookup stays one indexed read per request.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal, get_args

import duckdb

from engine.errors import EditError, PermissionDeniedError
from engine.store.database import Database, dict_rows, scalar
from engine.types import current_user  # noqa: F401  (here too: who acts is a question of auth)

Role = Literal["admin", "member", "viewer"]
Action = Literal[
    "read",
    "run",
    "edit_inputs",
    "add_records",
    "stop",
    "pause",
    "apply_spec",
    "edit_context",
    "edit_settings",
    "add_credits",
    "manage_users",
    "manage_actions",
]
ROLES: tuple[Role, ...] = get_args(Role)
RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2}
NEEDS: dict[str, Role] = {
    "read": "viewer",
    "run": "member",
    "edit_inputs": "member",
    "add_records": "member",
    "stop": "member",
    "pause": "member",
    "apply_spec": "admin",
    "edit_context": "admin",
    "edit_settings": "admin",
    "add_credits": "admin",
    "manage_users": "admin",
    "manage_actions": "admin",
}
TOKEN_PREFIX = "rs_"


def role_of(con: duckdb.DuckDBPyConnection, actor: str) -> Role:
    """The actor's role: admin in an open workspace (no users), viewer for someone who is not a user."""
    users, found = con.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT role FROM users WHERE name = ?)", [actor]
    ).fetchall()[0]
    if not users:
        return "admin"
    return found if found in RANK else "viewer"  # type: ignore[no-any-return]


def allowed(role: Role, action: Action) -> bool:
    return RANK[role] >= RANK[NEEDS[action]]


def authorize(
    db: Database,
    actor: str,
    action: Action,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    campaign_id: int | None = None,
    what: str = "",
) -> None:
    """Raise PermissionDeniedError unless `actor` may do `action`. Pass the caller's open transaction as `con`
    to check inside it (no extra open of the file); a refusal is logged in a transaction of its own, so it is
    kept although the caller's transaction rolls back."""
    if con is None:
        with db.transaction() as own:
            role = role_of(own, actor)
    else:
        role = role_of(con, actor)
    if allowed(role, action):
        return
    with db.transaction() as log:
        log.execute(
            "INSERT INTO activity (campaign_id, column_name, cells, action, outcome, logged_at, actor, trigger, "
            "error_code) VALUES (?, ?, 0, ?, 'permission_denied', now(), ?, 'auth', 'permission_denied')",
            [campaign_id, what or None, action, actor],
        )
        who_may = [str(r[0]) for r in log.execute(_WHO_MAY, [[r for r in ROLES if allowed(r, action)]]).fetchall()]
        is_user = bool(scalar(log, "SELECT count(*) FROM users WHERE name = ?", [actor]))
    stranger = "" if is_user else " (not a user of this workspace)"
    raise PermissionDeniedError(
        f"{actor} is a {role}{stranger} and may not {action.replace('_', ' ')} (that needs {NEEDS[action]})",
        actor=actor,
        needs=NEEDS[action],
        who_may=tuple(who_may),
    )


_WHO_MAY = "SELECT name FROM users WHERE list_contains(?, role) ORDER BY role <> 'admin', name"


def check_role(role: str) -> Role:
    if role not in RANK:
        raise EditError(f"unknown role '{role}'", hint=f"use one of: {', '.join(get_args(Role))}")
    return role  # type: ignore[return-value]


def set_user(db: Database, actor: str, user: str, role: str, *, password_hash: str | None = None) -> None:
    """Give `user` a role (creating the user), and with `password_hash` their password (engine/logins.py), in one
    transaction. The first user must be an admin, so nobody is locked out; in a workspace with no users everyone
    acts as admin, so the first `set_user` of an admin is allowed whoever the actor is (it bootstraps roles)."""
    chosen = check_role(role)
    if not user.strip():
        raise EditError("a user needs a name", hint="e.g. `runsheet users set ada admin`")
    authorize(db, actor, "manage_users")
    with db.transaction() as con:
        if not scalar(con, "SELECT count(*) FROM users") and chosen != "admin":
            raise EditError("the first user must be an admin", hint=f"run `runsheet users set {user} admin` first")
        con.execute("INSERT OR REPLACE INTO users VALUES (?, ?, now(), ?)", [user, chosen, actor])
        if password_hash is not None:  # a new password ends the user's UI sessions, as `set_password` does
            con.execute("INSERT OR REPLACE INTO passwords VALUES (?, ?, now(), ?)", [user, password_hash, actor])
            con.execute("DELETE FROM sessions WHERE user_name = ?", [user])
        _keep_an_admin(con)


def remove_user(db: Database, actor: str, user: str) -> bool:
    """Remove a user, their tokens, password and UI sessions; False if there was no such user."""
    authorize(db, actor, "manage_users")
    with db.transaction() as con:
        removed = con.execute("DELETE FROM users WHERE name = ? RETURNING name", [user]).fetchall()
        con.execute("DELETE FROM api_tokens WHERE user_name = ?", [user])
        con.execute("DELETE FROM passwords WHERE user_name = ?", [user])
        con.execute("DELETE FROM sessions WHERE user_name = ?", [user])
        _keep_an_admin(con)
    return bool(removed)


def _keep_an_admin(con: duckdb.DuckDBPyConnection) -> None:
    users = int(scalar(con, "SELECT count(*) FROM users"))
    if users and not scalar(con, "SELECT count(*) FROM users WHERE role = 'admin'"):
        raise EditError("a workspace with users needs at least one admin", hint="make another user admin first")


def list_users(db: Database) -> list[dict[str, object]]:
    with db.transaction() as con:
        cursor = con.execute(
            "SELECT u.name, u.role, u.created_at, u.created_by, count(t.token_hash) AS tokens, "
            "p.user_name IS NOT NULL AS password FROM users u LEFT JOIN api_tokens t ON t.user_name = u.name "
            "LEFT JOIN passwords p ON p.user_name = u.name GROUP BY ALL ORDER BY u.name"
        )
        return dict_rows(cursor)


def token_digest(token: str) -> str:
    """What is stored of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, actor: str, user: str, label: str = "") -> str:
    """A new API token acting as `user`, who must be a user (in an open workspace too: a token for a name nobody
    has is a typo, and would make its holder an admin); shown only now."""
    authorize(db, actor, "manage_users")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as con:
        if not scalar(con, "SELECT count(*) FROM users WHERE name = ?", [user]):
            first = not scalar(con, "SELECT count(*) FROM users")
            raise EditError(
                f"no user '{user}'",
                hint=f"create it first: `runsheet users set {user} admin`; the first user must be an admin, and roles "
                "apply from then on"
                if first
                else f"create it first: `runsheet users set {user} ROLE`, where ROLE is admin, member or viewer",
            )
        con.execute("INSERT INTO api_tokens VALUES (?, ?, ?, now())", [token_digest(token), user, label or None])
    return token


def user_for_token(db: Database, token: str) -> str | None:
    """The user a token acts as, or None for an unknown token."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with db.transaction() as con:
        found = scalar(con, "SELECT user_name FROM api_tokens WHERE token_hash = ?", [token_digest(token)])
    return None if found is None else str(found)


def revoke_tokens(db: Database, actor: str, user: str) -> int:
    """Revoke every token of `user`, and end the UI sessions logged in with them; returns how many tokens."""
    authorize(db, actor, "manage_users")
    with db.transaction() as con:
        revoked = con.execute("DELETE FROM api_tokens WHERE user_name = ? RETURNING token_hash", [user]).fetchall()
        con.execute("DELETE FROM sessions WHERE list_contains(?, token_hash)", [[r[0] for r in revoked]])
        return len(revoked)
