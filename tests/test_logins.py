"""UI logins (engine/logins.py): passwords stored as argon2id hashes, sessions stored by digest with an expiry,
every way a session ends, and API tokens stored as SHA-256. The clock is passed in (`now`), never waited for."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine import EditError, LoginError, PermissionDeniedError, Workspace

T0 = datetime(2026, 3, 2, 9, 0, 0)


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    """ada (admin, password), max (member, password), vic (viewer, no password); acting as ada."""
    Workspace.init(tmp_path / "ws")
    admin = Workspace(tmp_path / "ws", actor="ada")
    admin.set_role("ada", "admin", "ada-password")
    admin.set_role("max", "member", "max-password")
    admin.set_role("vic", "viewer")
    return admin


def table(ws: Workspace, sql: str) -> list[tuple[object, ...]]:
    with ws.db.transaction(commit=False) as con:
        return con.execute(sql).fetchall()


def test_an_open_workspace_needs_no_login_and_one_with_users_does(tmp_path: Path, ws: Workspace) -> None:
    assert not Workspace.init(tmp_path / "open").needs_login()
    assert ws.needs_login()


def test_passwords_are_stored_as_argon2id_hashes_never_as_text(ws: Workspace) -> None:
    stored = dict(table(ws, "SELECT user_name, hash FROM passwords"))
    assert set(stored) == {"ada", "max"}
    assert all(str(h).startswith("$argon2id$") for h in stored.values())
    assert "max-password" not in str(stored["max"])
    assert stored["ada"] != stored["max"]
    ws.set_password("vic", "max-password")  # the same password, salted differently
    assert dict(table(ws, "SELECT user_name, hash FROM passwords"))["vic"] != stored["max"]
    assert {u["name"]: u["password"] for u in ws.users()} == {"ada": True, "max": True, "vic": True}


def test_the_right_password_opens_a_session_stored_by_its_digest_until_it_expires(ws: Workspace) -> None:
    login = ws.log_in("max", "max-password", now=T0)
    assert (login.user, login.via, login.expires_at) == ("max", "password", T0 + timedelta(hours=12))
    assert login.session_id.startswith("rss_") and len(login.session_id) > 40
    stored = table(ws, "SELECT session_hash, user_name, via, expires_at FROM sessions")
    assert stored == [(hashlib.sha256(login.session_id.encode()).hexdigest(), "max", "password", login.expires_at)]
    assert login.session_id not in str(stored)
    assert ws.login_session(login.session_id, now=T0 + timedelta(hours=11, minutes=59)) == login
    assert ws.login_session(login.session_id, now=T0 + timedelta(hours=12)) is None  # expired: asked again
    assert login.live(T0 + timedelta(hours=11)) and not login.live(T0 + timedelta(hours=12))
    assert ws.login_session("rss_" + "x" * 43, now=T0) is None
    assert ws.login_session("not-a-session", now=T0) is None


def test_the_login_hours_setting_sets_how_long_a_session_lasts(ws: Workspace) -> None:
    ws.set_setting("login_hours", 1.5)
    login = ws.log_in("ada", "ada-password", now=T0)
    assert login.expires_at == T0 + timedelta(hours=1, minutes=30)
    with pytest.raises(EditError, match="login_hours"):
        ws.set_setting("login_hours", 0)
    assert ws.settings().login_hours == 1.5


def test_an_expired_session_is_purged_at_the_next_login(ws: Workspace) -> None:
    old = ws.log_in("max", "max-password", now=T0)
    ws.log_in("ada", "ada-password", now=T0 + timedelta(hours=13))
    assert [r[0] for r in table(ws, "SELECT user_name FROM sessions")] == ["ada"]
    assert ws.login_session(old.session_id, now=T0) is None  # gone, not only expired


@pytest.mark.parametrize(
    ("user", "password"),
    [("max", "wrong-password"), ("max", ""), ("nobody", "max-password"), ("vic", "whatever-it-is"), ("", "")],
)
def test_a_wrong_login_is_refused_in_one_line_and_opens_nothing(ws: Workspace, user: str, password: str) -> None:
    with pytest.raises(LoginError) as refused:
        ws.log_in(user, password, now=T0)
    assert refused.value.message == "wrong user name or password"  # the same whichever part is wrong
    assert "runsheet users password" in refused.value.hint
    assert table(ws, "SELECT count(*) FROM sessions") == [(0,)]
    logged = [(a["action"], a["outcome"]) for a in ws.activity(10) if a["action"] == "log_in"]
    assert logged == [("log_in", "refused")]


def test_an_api_token_logs_in_as_its_user_and_revoking_it_ends_that_session(ws: Workspace) -> None:
    token = ws.create_token("max")
    by_token = ws.log_in(token=token, now=T0)
    by_password = ws.log_in("max", "max-password", now=T0)
    assert (by_token.user, by_token.via) == ("max", "token")
    with pytest.raises(LoginError, match="unknown API token"):
        ws.log_in(token=token + "x", now=T0)
    with pytest.raises(LoginError, match="unknown API token"):
        ws.log_in(token="not-a-token", now=T0)
    assert ws.revoke_tokens("max") == 1
    assert ws.login_session(by_token.session_id, now=T0) is None
    assert ws.login_session(by_password.session_id, now=T0) == by_password  # the password's session stays
    with pytest.raises(LoginError):
        ws.log_in(token=token, now=T0)


def test_api_tokens_are_stored_as_their_sha256_only(ws: Workspace) -> None:
    token = ws.create_token("max", "crm")
    assert token.startswith("rs_") and len(token) >= 40  # 32 random bytes
    stored = table(ws, "SELECT token_hash, user_name, label FROM api_tokens")
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), "max", "crm")]
    assert ws.user_for_token(token) == "max" and ws.user_for_token(token[:-1]) is None


def test_log_out_removing_the_user_or_a_new_password_ends_sessions(ws: Workspace) -> None:
    first = ws.log_in("max", "max-password", now=T0)
    assert ws.log_out(first.session_id) is True
    assert ws.login_session(first.session_id, now=T0) is None
    assert ws.log_out(first.session_id) is False
    second = ws.log_in("max", "max-password", now=T0)
    ws.set_password("max", "a-new-password")
    assert ws.login_session(second.session_id, now=T0) is None
    with pytest.raises(LoginError):
        ws.log_in("max", "max-password", now=T0)
    third = ws.log_in("max", "a-new-password", now=T0)
    assert ws.remove_user("max")
    assert ws.login_session(third.session_id, now=T0) is None
    assert table(ws, "SELECT count(*) FROM passwords WHERE user_name = 'max'") == [(0,)]
    actions = [(a["action"], a["outcome"], a["actor"]) for a in reversed(ws.activity(20)) if "log" in a["action"]]
    assert actions == [
        ("log_in", "done", "max"),
        ("log_out", "done", "max"),
        ("log_in", "done", "max"),
        ("log_in", "refused", "max"),
        ("log_in", "done", "max"),
    ]


def test_a_user_sets_their_own_password_and_only_an_admin_sets_anothers(ws: Workspace) -> None:
    member = Workspace(ws.path, actor="max")
    member.set_password("max", "max-changed-it")
    assert member.log_in("max", "max-changed-it", now=T0).user == "max"
    before = table(ws, "SELECT user_name, hash FROM passwords ORDER BY 1")
    with pytest.raises(PermissionDeniedError, match="max is a member and may not manage users"):
        member.set_password("ada", "taken-over!")
    assert table(ws, "SELECT user_name, hash FROM passwords ORDER BY 1") == before


@pytest.mark.parametrize(
    ("user", "password", "message"),
    [
        ("max", "short", "at least 8 characters"),
        ("max", "        ", "at least 8 characters"),
        ("max", "x" * 2000, "at most 1024"),
        ("nobody", "long-enough", "no user 'nobody'"),
    ],
)
def test_a_bad_password_or_user_changes_nothing(ws: Workspace, user: str, password: str, message: str) -> None:
    session = ws.log_in("max", "max-password", now=T0)
    before = table(ws, "SELECT user_name, hash FROM passwords ORDER BY 1")
    roles = [(u["name"], u["role"]) for u in ws.users()]
    with pytest.raises(EditError, match=message):
        ws.set_password(user, password)
    if user == "max":  # the same password given with a role change: the role stays too
        with pytest.raises(EditError, match=message):
            ws.set_role("max", "admin", password)
    assert table(ws, "SELECT user_name, hash FROM passwords ORDER BY 1") == before
    assert [(u["name"], u["role"]) for u in ws.users()] == roles
    assert ws.login_session(session.session_id, now=T0) == session


def test_a_weak_stored_hash_is_replaced_at_the_next_good_login(ws: Workspace) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("max-password")
    with ws.db.transaction() as con:
        con.execute("UPDATE passwords SET hash = ? WHERE user_name = 'max'", [weak])
    assert ws.log_in("max", "max-password", now=T0).user == "max"
    stored = str(table(ws, "SELECT hash FROM passwords WHERE user_name = 'max'")[0][0])
    assert stored != weak and PasswordHasher().verify(stored, "max-password")
    assert not PasswordHasher().check_needs_rehash(stored)
