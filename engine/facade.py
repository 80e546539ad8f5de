"""What the faces (the CLI, the API, the UI) ask of a workspace beyond campaigns and running them: people and
their roles, API tokens and UI logins, the run log, one run's record, the runs going (and Stop), the activity log,
the credit ledger, a campaign's spec history and live spec, the change
key the UI keeps its reads under, and each person's grid layout (engine/store/layouts.py). (Schedules sit above the
workspace, engine/schedules.py, and reach the faces through `engine`'s exports.)

A mixin of `Workspace` (engine/workspace.py), so the faces reach all of it through `engine`'s public API and
never open the database, the tables or `engine.auth` themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.auth import Action as Permission
from engine.auth import (
    Role,
    authorize,
    create_token,
    list_users,
    remove_user,
    revoke_tokens,
    role_of,
    set_user,
    user_for_token,
)
from engine.errors import EditError
from engine.logins import Login, hash_password, log_in, log_out, needs_login, session_login, set_password
from engine.run.lifecycle import reclaim_dead_runs, reclaim_orphans, request_stop, signal_stop
from engine.store.catalog import campaign_names, load_campaign
from engine.store.database import DB_FILE, dict_rows
from engine.store.layouts import ColumnLayout, load_layout, store_layout
from engine.store.pause import PauseState, pause_state
from engine.store.runlog import run_log
from engine.store.spec_history import history as spec_history
from engine.store.spec_history import live_source, spec_yaml

if TYPE_CHECKING:
    from engine.campaign import Campaign
    from engine.spec import CampaignSpec
    from engine.store.database import Database


class WorkspaceFacade:
    """The faces' reads and small writes on one workspace; each opens its own short transaction."""

    path: Path
    actor: str
    db: Database

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether a workspace lives in the folder `path` (a look at the folder, no database access)."""
        return (Path(path) / DB_FILE).exists()

    def change_key(self) -> tuple[Any, ...]:
        """A value that changes whenever a write to this workspace commits, whichever process made it, and that
        reads leave alone: the inode, size and modification time of the database file and its write-ahead log
        (a stat of two files, no database access). The UI keeps its reads under it."""
        key: list[Any] = []
        for name in (DB_FILE, DB_FILE + ".wal"):
            try:
                found = os.stat(self.path / name)
            except FileNotFoundError:
                key.append(None)
            else:
                key.append((found.st_ino, found.st_size, found.st_mtime_ns))
        return tuple(key)

    def handle(self, name: str, *, actor: str, trigger: str) -> Campaign:
        """A handle on campaign `name` without opening it (no transaction): its first read or write raises
        NotFoundError if there is no such campaign. `campaign(...)` checks at once."""
        from engine.campaign import Campaign

        return Campaign(self.db, name, actor=actor, trigger=trigger)

    def campaign_state(self, name: str) -> tuple[CampaignSpec, PauseState]:
        """The campaign's spec and what is paused in it, read in one transaction (NotFoundError if unknown)."""
        with self.db.transaction() as con:
            tables = load_campaign(con, name)
            return tables.spec, pause_state(con, tables.campaign_id)

    # ---- each person's grid layout -----------------------------------------------------------------------------

    def column_layout(self, campaign: str) -> ColumnLayout:
        """The acting user's grid layout of `campaign` (the default one if they kept none); columns the spec no
        longer has are left out."""
        with self.db.transaction() as con:
            tables = load_campaign(con, campaign)
            return load_layout(con, self.actor, tables.campaign_id, tables.spec.names)

    def save_column_layout(self, campaign: str, layout: ColumnLayout) -> None:
        """Keep `layout` as the acting user's grid layout of `campaign` (anyone may keep their own; nobody else's
        changes); EditError naming the fix if it names a column the campaign does not have."""
        with self.db.transaction() as con:
            tables = load_campaign(con, campaign)
            store_layout(con, self.actor, tables.campaign_id, tables.spec.names, layout)

    # ---- people and tokens -----------------------------------------------------------------------------------

    def remove_user(self, user: str) -> bool:
        """Remove a user and their tokens (admin only); False if there was no such user."""
        return remove_user(self.db, self.actor, user)

    def create_token(self, user: str, label: str = "") -> str:
        """A new API token acting as `user`, who must be a user (admin only); only its digest is stored, so this is
        the one time it is seen."""
        return create_token(self.db, self.actor, user, label)

    def revoke_tokens(self, user: str) -> int:
        """Revoke every token of `user` (admin only); returns how many."""
        return revoke_tokens(self.db, self.actor, user)

    def user_for_token(self, token: str) -> str | None:
        """The user an API token acts as, or None for an unknown token."""
        return user_for_token(self.db, token)

    # ---- UI logins (engine/logins.py) ------------------------------------------------------------------------

    def needs_login(self) -> bool:
        """Whether the UI asks for a login: the workspace has users (an open one has none)."""
        return needs_login(self.db)

    def set_password(self, user: str, password: str) -> None:
        """Set `user`'s password for UI logins (an admin, or the user themself); ends their open sessions.
        EditError for a password under 8 characters or an unknown user, and nothing changes."""
        set_password(self.db, self.actor, user, password)

    def log_in(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        now: datetime | None = None,
    ) -> Login:
        """Open a UI session with a user's password, or with an API `token`; LoginError when either is wrong
        (the refusal is logged, nothing else changes)."""
        return log_in(self.db, user=user, password=password, token=token, now=now)

    def login_session(self, session_id: str, *, now: datetime | None = None) -> Login | None:
        """The session `session_id` opened, or None once it expired, was ended or its user removed."""
        return session_login(self.db, session_id, now)

    def log_out(self, session_id: str) -> bool:
        """End a UI session; False if it had already ended."""
        return log_out(self.db, session_id)

    # ---- the run log -----------------------------------------------------------------------------------------

    def run_log(
        self,
        *,
        campaign: str | None = None,
        trigger: str | None = None,
        actor: str | None = None,
        after: int = 0,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Runs newest first, with scope, outcomes and seconds worked out (engine/store/runlog.py); a run whose
        runner died is shown interrupted."""
        with self.db.transaction() as con:
            reclaim_dead_runs(con)
            return run_log(con, campaign=campaign, trigger=trigger, actor=actor, after=after, limit=limit)

    def credit_ledger(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent rows of the credit ledger, newest first: when, amount (grants positive, spending
        negative), the run and campaign that spent it, and why."""
        with self.db.transaction() as con:
            cursor = con.execute(
                "SELECT l.*, c.name AS campaign FROM credit_ledger l LEFT JOIN campaigns c USING (campaign_id) "
                "ORDER BY l.rowid DESC LIMIT ?",
                [limit],
            )
            return dict_rows(cursor)

    def run_record(self, run_id: int) -> dict[str, Any] | None:
        """One run's row (as in `runs()`, with its campaign's name), or None if there is no such run; a run whose
        runner died is shown interrupted."""
        with self.db.transaction() as con:
            reclaim_dead_runs(con)
            cursor = con.execute(
                "SELECT r.*, c.name AS campaign FROM runs r LEFT JOIN campaigns c USING (campaign_id) WHERE run_id = ?",
                [run_id],
            )
            names = [d[0] for d in cursor.description]
            found = cursor.fetchall()
        if not found:
            return None
        row = dict(zip(names, found[0], strict=True))
        for field in ("request", "counts"):
            if isinstance(row.get(field), str):
                row[field] = json.loads(row[field])
        return row

    # ---- spec history ----------------------------------------------------------------------------------------

    def spec_history(self, campaign: str, limit: int = 50) -> list[dict[str, Any]]:
        """The changes of `campaign`'s spec, newest first: change_id, changed_at, actor, origin (file, ui, api,
        import, edit) and diff (a unified diff of the YAML); NotFoundError if there is no such campaign."""
        with self.db.transaction() as con:
            return spec_history(con, load_campaign(con, campaign).campaign_id, limit)

    def spec_yaml(self, campaign: str) -> str:
        """`campaign`'s live spec (with every change made in the UI, the API or an import) as YAML that `apply`
        reads back unchanged; NotFoundError if there is no such campaign."""
        with self.db.transaction() as con:
            load_campaign(con, campaign)
            source = live_source(con, campaign)
        assert source is not None
        return spec_yaml(source)

    # ---- people ------------------------------------------------------------------------------------------

    def authorize(self, action: Permission, what: str = "") -> None:
        """Raise PermissionDeniedError (and log it) unless this workspace's actor may do `action`: a check for
        entry points that hand work to another process (the UI launching a run)."""
        authorize(self.db, self.actor, action, what=what)

    def role(self, user: str | None = None) -> Role:
        """The role of `user` (default: the actor): admin in a workspace with no users, viewer for a stranger."""
        with self.db.transaction() as con:
            return role_of(con, user or self.actor)

    def users(self) -> list[dict[str, object]]:
        """The workspace's users: name, role, created_at, created_by, tokens, password (whether one is set);
        empty: the workspace is open."""
        return list_users(self.db)

    def set_role(self, user: str, role: str, password: str | None = None) -> None:
        """Give `user` a role (admin only), creating the user, and with `password` their UI password in the same
        transaction; the first user must be an admin."""
        set_user(self.db, self.actor, user, role, password_hash=None if password is None else hash_password(password))

    def pause_state(self, campaign: str) -> PauseState:
        """What is paused in `campaign`."""
        with self.db.transaction() as con:
            return pause_state(con, load_campaign(con, campaign).campaign_id)

    def stop_run(self, run_id: int) -> bool:
        """Ask a running run to stop: in-flight calls are cancelled, nothing new starts. False if it is not running."""
        return bool(self.stop_runs([run_id]))

    def stop_runs(self, run_ids: Iterable[int] | None = None, *, campaign: str | None = None) -> list[int]:
        """Ask running runs to stop (those of `run_ids`; with None, every running run, of `campaign` when given):
        in-flight calls are cancelled, nothing new starts. Needs the `stop` permission. Returns the ids of the
        runs asked (a run that is not running is left out)."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "stop", con=con)
            campaign_id = None if campaign is None else load_campaign(con, campaign).campaign_id
            asked = request_stop(con, run_ids, campaign_id)
        signal_stop(self.path, asked)  # after the commit: the flag is the durable record, the file the fast path
        return asked

    def active_runs(self, campaign: str | None = None) -> list[dict[str, object]]:
        """Runs still running (crashed ones are given back first), newest first."""
        with self.db.transaction() as con:
            for name in campaign_names(con):
                if campaign is None or name == campaign:
                    reclaim_orphans(con, load_campaign(con, name))
        return [
            run
            for run in self.runs(limit=1000)
            if run["status"] == "running" and (campaign is None or run["campaign"] == campaign)
        ]

    def activity(
        self, limit: int = 100, *, campaign: str | None = None, row_id: int | None = None
    ) -> list[dict[str, object]]:
        """The most recent activity rows, newest first (of `campaign` only, when given: NotFoundError if unknown;
        of its record `row_id` only, when given too: a record's timeline)."""
        if row_id is not None and campaign is None:
            raise EditError("a record's activity needs its campaign", hint="give campaign= with row_id=")
        with self.db.transaction() as con:
            chosen = None if campaign is None else load_campaign(con, campaign).campaign_id
            cursor = con.execute(
                "SELECT a.*, c.name AS campaign FROM activity a LEFT JOIN campaigns c USING (campaign_id) "
                "WHERE ($1::BIGINT IS NULL OR a.campaign_id = $1) AND ($3::BIGINT IS NULL OR a.row_id = $3) "
                "ORDER BY logged_at DESC LIMIT $2",
                [chosen, limit, row_id],
            )
            return dict_rows(cursor)

    def runs(self, limit: int = 20) -> list[dict[str, object]]:
        """The most recent runs, newest first (a run whose runner died is shown interrupted: reclaim_dead_runs)."""
        with self.db.transaction() as con:
            reclaim_dead_runs(con)
            cursor = con.execute(
                "SELECT r.*, c.name AS campaign FROM runs r LEFT JOIN campaigns c USING (campaign_id) "
                "ORDER BY run_id DESC LIMIT ?",
                [limit],
            )
            rows = dict_rows(cursor)
        for row in rows:
            for field in ("request", "counts"):
                if isinstance(row.get(field), str):
                    row[field] = json.loads(row[field])  # type: ignore[arg-type]
        return rows
