"""The action library: workspace-level actions a person runs on one record (the record page, `runsheet action
run`) or adds to a campaign as a column.

An action is a step definition (any kind: ai, http, export...) with a name, a category (research,
personalization, analysis, enablement, or a custom label), a plain-language description (its standard operating
procedure, shown wherever the action is), a switch (enabled), a consent state (active or paused) and the roles
that may see and run it. Admins always may; viewers see, never run.

Consent first: a new action starts paused, and runs only once someone resumes it. Rename keeps the action's id,
so its results, documents and activity stay its own. Delete removes it with its results, documents and activity
rows, and only when confirmed; credit rows stay (the balance must add up).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from engine.actions.records import resolve_record, search_records
from engine.actions.templates import TEMPLATES
from engine.auth import RANK, ROLES, Role, allowed, authorize, role_of
from engine.campaign import Campaign
from engine.cells import INPUT_KIND, KINDS, kind_named
from engine.errors import EditError, NotFoundError, PermissionDeniedError
from engine.graph import ReferenceError_
from engine.run.adhoc import Started, complete_action_run, open_action_run
from engine.run.lifecycle import reclaim_dead_runs
from engine.spec import NAME_PATTERN
from engine.store.actions import (
    StoredAction,
    delete_action,
    history_counts,
    insert_action,
    mark_saved,
    read_action,
    read_actions,
    read_document,
    read_documents,
    read_result,
    read_results,
    update_action,
)
from engine.store.catalog import load_campaign
from engine.store.chats import chat_length, rename_chat
from engine.store.database import Database
from engine.store.edits import NOTES

CATEGORIES = ("research", "personalization", "analysis", "enablement")
PRODUCES = ("result", "document")
DEFAULT_ROLES: tuple[Role, ...] = ROLES  # everyone sees a new action; members and admins run it


class ActionLibrary:
    """The workspace's actions, acted on as `actor` through `trigger` (cli, api, ui)."""

    def __init__(self, db: Database, cache_dir: Path, *, actor: str, trigger: str = "api") -> None:
        self.db, self.cache_dir, self.actor, self.trigger = db, cache_dir, actor, trigger

    # ---- reading -----------------------------------------------------------------------------------------

    def listed(self, *, runnable: bool = False, search: str = "") -> list[dict[str, Any]]:
        """The actions this actor may see (with `runnable`, only the enabled ones they may run now), each with
        `may_run`; `search` filters by name, category and description."""
        with self.db.transaction() as con:
            role = role_of(con, self.actor)
            actions = read_actions(con)
        found = []
        needle = search.strip().lower()
        for action in actions:
            if not may_see(role, action):
                continue
            if needle and needle not in f"{action.name} {action.category} {action.description}".lower():
                continue
            runs = may_run(role, action) and action.enabled and action.active
            if runnable and not runs:
                continue
            found.append({**action.to_json(), "may_run": runs})
        return found

    def show(self, name: str) -> dict[str, Any]:
        with self.db.transaction() as con:
            action = self._get(con, name)
            if not may_see(role_of(con, self.actor), action):
                raise self._not_found(name)
            return {**action.to_json(), "history": history_counts(con, action.action_id)}

    def name_of(self, action_id: int) -> str:
        """The current name of action `action_id` (its name may have changed since a schedule named it)."""
        with self.db.transaction() as con:
            found = con.execute("SELECT name FROM actions WHERE action_id = ?", [int(action_id)]).fetchall()
        if not found:
            raise NotFoundError(f"no action with id {action_id} (it was deleted)", hint="remove the schedule")
        return str(found[0][0])

    def results(
        self, *, action: str | None = None, campaign: str | None = None, row_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Results of ad hoc runs, newest first, of an action and/or a record: those of the actions this actor may
        see (an action's roles decide who sees its results as well as who runs it)."""
        with self.db.transaction() as con:
            reclaim_dead_runs(con)  # a result whose runner died reads as interrupted
            action_id = None if action is None else self._seen(con, action).action_id
            campaign_id = None if campaign is None else load_campaign(con, campaign).campaign_id
            visible = self._visible(con)
            return read_results(
                con, action_id=action_id, campaign_id=campaign_id, row_id=row_id, limit=limit, visible=visible
            )

    def result(self, result_id: int) -> dict[str, Any]:
        with self.db.transaction() as con:
            reclaim_dead_runs(con)
            found = read_result(con, int(result_id))
            if found is not None and found["action_id"] not in self._visible(con):
                found = None  # another role's: as if it were not there
        if found is None:
            raise NotFoundError(f"no action result {result_id}", hint="list them with `runsheet action results`")
        return found

    def documents(
        self, *, action: str | None = None, campaign: str | None = None, row_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Documents, newest first, of the actions this actor may see, of an action and/or a record."""
        with self.db.transaction() as con:
            action_id = None if action is None else self._seen(con, action).action_id
            campaign_id = None if campaign is None else load_campaign(con, campaign).campaign_id
            visible = self._visible(con)
            return read_documents(con, action_id=action_id, campaign_id=campaign_id, row_id=row_id, visible=visible)

    def document(self, document_id: int) -> dict[str, Any]:
        with self.db.transaction() as con:
            found = read_document(con, int(document_id))
            if found is not None and found["action_id"] not in self._visible(con):
                found = None
        if found is None:
            raise NotFoundError(f"no document {document_id}", hint="list them with `runsheet action documents`")
        return found

    def find_records(self, campaign: str, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Records of `campaign` matching what a person typed (row id, name, email, domain...)."""
        with self.db.transaction() as con:
            return search_records(con, load_campaign(con, campaign), text, limit)

    def record_id(self, campaign: str, key: str | int) -> int:
        with self.db.transaction() as con:
            return resolve_record(con, load_campaign(con, campaign), key)

    # ---- changing the library (admins; pause and resume: members) ------------------------------------------

    def add(
        self,
        name: str,
        kind: str | None = None,
        options: dict[str, Any] | None = None,
        *,
        category: str | None = None,
        description: str | None = None,
        roles: list[str] | tuple[str, ...] | None = None,
        produces: str | None = None,
        template: str | None = None,
    ) -> dict[str, Any]:
        """Add an action, paused (nothing runs until someone resumes it). With `template`, a built-in one
        (TEMPLATES) supplies what is not given."""
        base: dict[str, Any] = {}
        if template is not None:
            if template not in TEMPLATES:
                raise EditError(f"no template '{template}'", hint=f"use one of: {', '.join(TEMPLATES)}")
            base = TEMPLATES[template]
        kind = kind or base.get("kind")
        options = options if options is not None else base.get("options")
        if kind is None or options is None:
            raise EditError(
                f"action '{name}' needs a kind and its options",
                hint=f"give --kind and --options (YAML), or --template ({', '.join(TEMPLATES)})",
            )
        action = StoredAction(
            action_id=0,
            name=check_name(name),
            kind=kind,
            options=check_options(name, kind, options),
            category=check_category(category or base.get("category") or "research"),
            description=(description if description is not None else base.get("description", "")).strip(),
            enabled=True,
            active=False,
            roles=check_roles(roles if roles is not None else DEFAULT_ROLES),
            produces=check_produces(produces or base.get("produces") or "result"),
        )
        if not action.description:
            raise EditError(
                f"action '{name}' needs a description: what it does, in plain words (its standard procedure)",
                hint="give --description",
            )
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=name)
            if read_action(con, name) is not None:
                raise EditError(f"an action named '{name}' exists", hint="pick another name, or edit that one")
            insert_action(con, action, self.actor)
            return read_action(con, name).to_json()  # type: ignore[union-attr]

    def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change an action's options, category, description or produces (admins)."""
        allowed_fields = {"options", "category", "description", "produces"}
        unknown = set(fields) - allowed_fields
        if unknown:
            raise EditError(
                f"cannot change {', '.join(sorted(unknown))} this way", hint="use rename, enable, pause, roles"
            )
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=name)
            action = self._get(con, name)
            checked = dict(fields)
            if "options" in checked:
                checked["options"] = check_options(action.name, action.kind, checked["options"])
            if "category" in checked:
                checked["category"] = check_category(checked["category"])
            if "produces" in checked:
                checked["produces"] = check_produces(checked["produces"])
            if "description" in checked and not str(checked["description"]).strip():
                raise EditError("an action's description cannot be empty", hint="say what the action does")
            update_action(con, action.action_id, self.actor, **checked)
            return self._get(con, name).to_json()

    def rename(self, name: str, new_name: str) -> dict[str, Any]:
        """Rename an action: same id, so its results, documents and activity stay its own."""
        new_name = check_name(new_name)
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=name)
            action = self._get(con, name)
            other = read_action(con, new_name)
            if other is not None and other.action_id != action.action_id:
                raise EditError(f"an action named '{new_name}' exists", hint="pick another name")
            if new_name.lower() != action.name.lower() and chat_length(con, new_name):
                raise EditError(
                    f"a builder chat about a new action '{new_name}' is kept under that name",
                    hint=f"pick another name, or clear that chat: runsheet action chat {new_name} --reset",
                )
            update_action(con, action.action_id, self.actor, name=new_name)
            rename_chat(con, action.name, new_name)  # the chat stays the action's
            return self._get(con, new_name).to_json()

    def delete(self, name: str, *, confirm: bool = False) -> dict[str, int]:
        """Delete an action with its results, documents and activity rows; refused unless `confirm`."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=name)
            action = self._get(con, name)
            counts = history_counts(con, action.action_id)
            if not confirm:
                raise EditError(
                    f"deleting action '{action.name}' removes it with its {counts['action_results']} results, "
                    f"{counts['documents']} documents, {counts['schedules']} schedules and {counts['activity']} "
                    "activity rows (credit rows stay)",
                    hint=f"confirm with `runsheet action delete {action.name} --yes`",
                )
            return delete_action(con, action.action_id)

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        return self._set(name, "manage_actions", enabled=enabled)

    def pause(self, name: str) -> dict[str, Any]:
        return self._set(name, "pause", active=False)

    def resume(self, name: str) -> dict[str, Any]:
        """Activate an action: from now on it may run (this is the consent a new action waits for)."""
        return self._set(name, "pause", active=True)

    def set_roles(self, name: str, roles: list[str] | tuple[str, ...]) -> dict[str, Any]:
        return self._set(name, "manage_actions", roles=check_roles(roles))

    def _set(self, name: str, permission: str, **fields: Any) -> dict[str, Any]:
        with self.db.transaction() as con:
            authorize(self.db, self.actor, permission, con=con, what=name)  # type: ignore[arg-type]
            action = self._get(con, name)
            update_action(con, action.action_id, self.actor, **fields)
            return self._get(con, name).to_json()

    # ---- running on one record -------------------------------------------------------------------------

    def run(self, name: str, campaign: str, record: str | int, *, force: bool = False) -> dict[str, Any]:
        """Run the action on one record and wait for it; returns the stored result. `force` (Regenerate) asks the
        provider again instead of reusing a cached answer."""
        action, row_id, started = self._start(name, campaign, record, force)
        complete_action_run(
            self.db, self.cache_dir, campaign, row_id, action, started, who=(self.actor, self.trigger), force=force
        )
        return self.result(started.result_id)

    def start(self, name: str, campaign: str, record: str | int, *, force: bool = False) -> int:
        """Open the run (its result shows `running` at once) and make the call in a background thread; returns
        the result's id, which `result` reads while it goes. For faces that keep a panel open."""
        return self.start_many(name, campaign, [record], force=force)[0]

    def start_many(self, name: str, campaign: str, records: list[str | int], *, force: bool = False) -> list[int]:
        """`start` on several records (a webhook's, a schedule's): every run is opened now, so each result shows
        `running` at once, and one background thread makes their calls in turn. Nothing starts unless every
        record is found and the action may run."""
        action, row_ids = self._checked(name, campaign, records)
        opened = [(action, row_id, self._open(action, campaign, row_id, force)) for row_id in row_ids]

        def finish() -> None:
            for action, row_id, started in opened:
                complete_action_run(
                    self.db,
                    self.cache_dir,
                    campaign,
                    row_id,
                    action,
                    started,
                    who=(self.actor, self.trigger),
                    force=force,
                )

        if opened:
            threading.Thread(target=finish, name=f"runsheet-action-{opened[0][2].result_id}", daemon=True).start()
        return [started.result_id for _, _, started in opened]

    def _start(self, name: str, campaign: str, record: str | int, force: bool) -> tuple[StoredAction, int, Started]:
        action, [row_id] = self._checked(name, campaign, [record])
        return action, row_id, self._open(action, campaign, row_id, force)

    def _open(self, action: StoredAction, campaign: str, row_id: int, force: bool) -> Started:
        return open_action_run(self.db, campaign, row_id, action, who=(self.actor, self.trigger), force=force)

    def _checked(self, name: str, campaign: str, records: list[str | int]) -> tuple[StoredAction, list[int]]:
        """The action and the row ids of `records`, once this actor may run it on them (every record found, the
        action enabled and active); raises otherwise, before anything is opened."""
        with self.db.transaction() as con:
            action = self._get(con, name)
            role = role_of(con, self.actor)
            tables = load_campaign(con, campaign)
            row_ids = [resolve_record(con, tables, record) for record in records]
        if not may_run(role, action):
            self._refuse(action, role, campaign)
        if not action.enabled:
            raise EditError(
                f"action '{action.name}' is disabled (action_disabled)",
                hint=f"an admin enables it with `runsheet action enable {action.name}`",
            )
        if not action.active:
            raise EditError(
                f"action '{action.name}' is paused: it runs once someone resumes it (new actions start paused)",
                hint=f"resume it with `runsheet action resume {action.name}`",
            )
        return action, row_ids

    def save_result(self, result_id: int, field: str = NOTES) -> dict[str, Any]:
        """Save to Record: the result's text goes into the record's `field` (notes: an appended line
        `<action>: <text>`), logged as an AI-generated timeline entry of the action; later actions see it."""
        found = self.result(result_id)
        if found["status"] != "done" or found["value"] is None:
            raise EditError(
                f"result {result_id} is {found['status']}: only a finished result with a value can be saved",
                hint="run the action again, then save",
            )
        handle = Campaign(self.db, found["campaign"], actor=self.actor, trigger=self.trigger)
        handle.save_text(found["row_id"], found["action"], found["value"], field, action_id=found["action_id"])
        with self.db.transaction() as con:
            mark_saved(con, int(result_id), self.actor, field)
        return self.result(result_id)

    def check_may_run(self, name: str, campaign: str) -> StoredAction:
        """The action, once this actor may run it (what continuing its results in Copilot asks too); a refusal is
        logged and raised as for a run."""
        with self.db.transaction() as con:
            action = self._get(con, name)
            role = role_of(con, self.actor)
        if not may_run(role, action):
            self._refuse(action, role, campaign)
        return action

    # ---- helpers ---------------------------------------------------------------------------------------

    def _get(self, con: duckdb.DuckDBPyConnection, name: str) -> StoredAction:
        found = read_action(con, name)
        if found is None:
            raise self._not_found(name)
        return found

    def _seen(self, con: duckdb.DuckDBPyConnection, name: str) -> StoredAction:
        """Action `name` if this actor may see it; one they may not see is not found, as one that is not there."""
        found = self._get(con, name)
        if not may_see(role_of(con, self.actor), found):
            raise self._not_found(name)
        return found

    def _visible(self, con: duckdb.DuckDBPyConnection) -> list[int]:
        """The ids of the actions this actor may see."""
        role = role_of(con, self.actor)
        return [a.action_id for a in read_actions(con) if may_see(role, a)]

    def _not_found(self, name: str) -> NotFoundError:
        return NotFoundError(f"no action named '{name}'", hint="list the actions with `runsheet action list`")

    def _refuse(self, action: StoredAction, role: Role, campaign: str) -> None:
        """Log and raise the refusal of a run this role may not make."""
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO activity (campaign_id, column_name, cells, action, outcome, logged_at, actor, trigger, "
                "error_code, action_id) SELECT campaign_id, ?, 0, 'action', 'permission_denied', now(), ?, ?, "
                "'permission_denied', ? FROM campaigns WHERE name = ?",
                [action.name, self.actor, self.trigger, action.action_id, campaign],
            )
            runners = [r for r in action.roles if r != "viewer"] or ["admin"]
            who_may = [
                str(r[0])
                for r in con.execute(
                    "SELECT name FROM users WHERE list_contains(?, role) ORDER BY role <> 'admin', name",
                    [sorted({*runners, "admin"})],
                ).fetchall()
            ]
        least = min(runners, key=lambda r: RANK[r])
        raise PermissionDeniedError(
            f"{self.actor} is a {role} and may not run action '{action.name}' (it runs for: "
            f"{', '.join(sorted({*runners, 'admin'}, key=lambda r: -RANK[r]))})",
            hint=f"ask an admin to add {role} to its roles: `runsheet action roles {action.name} "
            f"{' '.join(sorted({*action.roles, role}, key=lambda r: -RANK[r]))}`"
            if role != "viewer"
            else "viewers read results; ask an admin to make you a member",
            actor=self.actor,
            needs=least,
            who_may=tuple(who_may),
        )


def may_see(role: Role, action: StoredAction) -> bool:
    return role == "admin" or role in action.roles


def may_run(role: Role, action: StoredAction) -> bool:
    """Admins always; members when the action's roles include them; viewers never."""
    return allowed(role, "run") and (role == "admin" or role in action.roles)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise EditError(
            f"{name!r} is not a valid action name", hint="use letters, digits and underscores, starting with a letter"
        )
    return name


def check_category(category: str) -> str:
    text = str(category).strip()
    if not text or len(text) > 40:
        raise EditError(
            f"{category!r} is not a category",
            hint=f"use one of {', '.join(CATEGORIES)}, or a short label of your own (up to 40 characters)",
        )
    return text


def check_roles(roles: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(str(r).strip() for r in roles))
    unknown = [r for r in chosen if r not in RANK]
    if unknown or not chosen:
        raise EditError(
            f"unknown role(s): {', '.join(unknown) or '(none given)'}",
            hint=f"use some of: {', '.join(ROLES)} (admins may always run an action; viewers never do)",
        )
    return tuple(sorted(chosen, key=lambda r: -RANK[r]))


def check_produces(produces: str) -> str:
    if produces not in PRODUCES:
        raise EditError(f"an action produces a result or a document, not {produces!r}", hint="use result or document")
    return produces


def check_options(name: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options of a step of `kind`, validated as a campaign column's are (references are checked against a
    campaign when the action runs on one of its records)."""
    if kind == INPUT_KIND or kind not in KINDS:
        raise EditError(f"unknown action kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    if not isinstance(options, dict):
        raise EditError(f"action '{name}': options must be a mapping", hint="e.g. {prompt: 'Summarise {{ company }}'}")
    model = kind_named(kind).options
    try:
        checked = model.model_validate({k: v for k, v in options.items() if k not in ("name", "kind")})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        raise EditError(
            f"action '{name}': bad option '{field}': {first['msg']}",
            hint=f"options of a {kind} step: " + ", ".join(model.model_fields),
        ) from err
    try:
        kind_named(kind).references(checked)
    except ReferenceError_ as err:  # a template or expression that does not parse
        raise EditError(f"action '{name}': {err}", hint="fix the template or expression") from err
    return checked.model_dump(mode="json", exclude_defaults=True)
