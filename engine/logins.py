"""Logins to the UI: passwords, and the sessions a good login opens.

A workspace with users asks the UI for a login: a user's password, or one of their API tokens. A good login
opens a session: a random id that the browser's session keeps, of which the workspace stores only the SHA-256
(as for API tokens, engine/auth.py: the id is 256 random bits, so a fast digest is as safe as a slow one), with
the user, how they logged in and when it expires (the `login_hours` setting, 12 by default). Logging out,
removing the user, setting their password or revoking the token they logged in with ends it; an expired session
is refused, and purged at the next login. A refused login changes nothing but the activity log, which records
every login, refused or not (action `log_in`, the name given as actor).

Passwords are low-entropy secrets, so what is stored must be slow to guess from: argon2id through argon2-cffi's
`PasswordHasher` (its defaults, RFC 9106's low-memory profile). A hash made with weaker parameters than today's
defaults is replaced at the next good login. An unknown user costs the same verification as a wrong password, so
the time of a refusal does not tell which names exist.

The time is `clock()` (UTC, naive, as the TIMESTAMP columns hold it); every function takes `now` to override it,
and tests set `clock` rather than wait.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Literal

from engine.auth import TOKEN_PREFIX, authorize, token_digest
from engine.errors import EditError, LoginError
from engine.store.database import Database, scalar
from engine.store.settings import load_settings

if TYPE_CHECKING:
    from argon2 import PasswordHasher

SESSION_PREFIX = "rss_"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a limit keeps a huge paste from being hashed
Via = Literal["password", "token"]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


clock: Callable[[], datetime] = utc_now


@dataclass(frozen=True)
class Login:
    """An open UI session: who, how they logged in, until when. `session_id` is the secret the browser's session
    keeps; `ref` is what the workspace stores of it (safe to key a cache by)."""

    user: str
    via: Via
    expires_at: datetime
    session_id: str = field(repr=False)

    @property
    def ref(self) -> str:
        return token_digest(self.session_id)

    def live(self, now: datetime | None = None) -> bool:
        """Whether the session has not expired yet (it may still have been ended: `session_login` asks the
        workspace)."""
        return (now or clock()) < self.expires_at


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher  # argon2-cffi: imported when a password is checked, not at CLI start-up

    return PasswordHasher()


@cache
def _decoy() -> str:
    """A hash to verify against when the user has no password, so a refusal takes the same time either way."""
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of a password that passes the rules (EditError names the rule otherwise)."""
    if len(password) < MIN_PASSWORD or not password.strip():
        raise EditError(
            f"a password needs at least {MIN_PASSWORD} characters", hint="choose a longer one; nothing was changed"
        )
    if len(password) > MAX_PASSWORD:
        raise EditError(f"a password may have at most {MAX_PASSWORD} characters", hint="choose a shorter one")
    return _hasher().hash(password)


def set_password(db: Database, actor: str, user: str, password: str) -> None:
    """Set `user`'s password (an admin, or the user themself), ending every UI session they have open."""
    digest = hash_password(password)
    if actor != user:
        authorize(db, actor, "manage_users", what=user)
    with db.transaction() as con:
        if not scalar(con, "SELECT count(*) FROM users WHERE name = ?", [user]):
            raise EditError(f"no user '{user}'", hint=f"create it first: `runsheet users set {user} member`")
        con.execute("INSERT OR REPLACE INTO passwords VALUES (?, ?, now(), ?)", [user, digest, actor])
        con.execute("DELETE FROM sessions WHERE user_name = ?", [user])


def needs_login(db: Database) -> bool:
    """Whether the UI asks for a login: the workspace has users."""
    with db.transaction() as con:
        return bool(scalar(con, "SELECT count(*) FROM users"))


def log_in(
    db: Database,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    trigger: str = "ui",
    now: datetime | None = None,
) -> Login:
    """Open a session for `user` with their password, or for the user of an API `token`. LoginError, and no
    session, when either is wrong."""
    when = now or clock()
    if token is not None:
        via: Via = "token"
        who, token_hash = _token_user(db, token.strip())
        refusal = LoginError(
            "unknown API token", hint="paste a token from `runsheet token create NAME`, or log in with a password"
        )
    else:
        via, token_hash = "password", None
        who = _password_user(db, (user or "").strip(), password or "")
        refusal = LoginError(
            "wrong user name or password",
            hint="check both; an admin sets a password with `runsheet users password NAME`",
        )
    if who is None:
        _log(db, (user or "").strip()[:100] or "?", "log_in", "refused", trigger)
        raise refusal
    session_id = SESSION_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as con:
        hours = load_settings(con).login_hours
        expires = when + timedelta(hours=hours)
        con.execute("DELETE FROM sessions WHERE expires_at <= ?", [when])
        con.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            [token_digest(session_id), who, via, token_hash, when, expires],
        )
    _log(db, who, "log_in", "done", trigger)
    return Login(user=who, via=via, expires_at=expires, session_id=session_id)


def _password_user(db: Database, user: str, password: str) -> str | None:
    """`user` if `password` is theirs (re-hashing it when the hash is weaker than today's defaults), else None."""
    from argon2.exceptions import InvalidHashError, VerificationError

    with db.transaction() as con:
        stored = scalar(
            con,
            "SELECT p.hash FROM passwords p JOIN users u ON u.name = p.user_name WHERE p.user_name = ?",
            [user],
        )
    hasher = _hasher()
    try:
        hasher.verify(_decoy() if stored is None else str(stored), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:  # the decoy's password is never typed, but be sure
        return None
    if hasher.check_needs_rehash(str(stored)):
        with db.transaction() as con:
            con.execute("UPDATE passwords SET hash = ? WHERE user_name = ?", [hasher.hash(password), user])
    return user


def _token_user(db: Database, token: str) -> tuple[str | None, str | None]:
    """The user an API token acts as (who must still be a user) and the token's digest, or (None, None)."""
    if not token.startswith(TOKEN_PREFIX):
        return None, None
    digest = token_digest(token)
    with db.transaction() as con:
        found = scalar(
            con,
            "SELECT t.user_name FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = ?",
            [digest],
        )
    return (None, None) if found is None else (str(found), digest)


def session_login(db: Database, session_id: str, now: datetime | None = None) -> Login | None:
    """The session `session_id` opened, while it lasts and its user is still a user; else None."""
    if not session_id.startswith(SESSION_PREFIX):
        return None
    with db.transaction() as con:
        found = con.execute(
            "SELECT s.user_name, s.via, s.expires_at FROM sessions s JOIN users u ON u.name = s.user_name "
            "WHERE s.session_hash = ? AND s.expires_at > ?",
            [token_digest(session_id), now or clock()],
        ).fetchall()
    if not found:
        return None
    user, via, expires = found[0]
    return Login(user=str(user), via=via, expires_at=expires, session_id=session_id)


def log_out(db: Database, session_id: str, trigger: str = "ui") -> bool:
    """End a session; False if it had already ended (or expired and been purged)."""
    with db.transaction() as con:
        ended = con.execute(
            "DELETE FROM sessions WHERE session_hash = ? RETURNING user_name", [token_digest(session_id)]
        ).fetchall()
    if ended:
        _log(db, str(ended[0][0]), "log_out", "done", trigger)
    return bool(ended)


def _log(db: Database, actor: str, action: str, outcome: str, trigger: str) -> None:
    with db.transaction() as con:
        con.execute(
            "INSERT INTO activity (cells, action, outcome, logged_at, actor, trigger) VALUES (0, ?, ?, now(), ?, ?)",
            [action, outcome, actor, trigger],
        )
