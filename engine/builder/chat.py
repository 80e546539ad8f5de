"""The action builder chat: a plain-language request becomes a proposal (a complete step of the right kind,
the action's description, a plan, what changed and why), checked by the spec validator (repaired once by asking
the model again with the error, or reported), previewed on a few sample records (free at once, paid only once
the estimate is confirmed) and shown as a diff of the action's spec. Nothing is applied until `accept`, which
applies exactly the diff shown, or refuses when the action changed since. It also answers questions about an
action from its spec, its description and the provenance of its cells and results.

Every turn is kept in the action's chat (engine/store/chats.py); a failure (the provider's, the validator's)
changes no action."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from engine.actions.library import ActionLibrary, check_name, may_see
from engine.auth import authorize, role_of
from engine.builder.model import BuilderModel, ask
from engine.builder.offline import offline_draft
from engine.builder.preview import Preview, preview
from engine.builder.proposal import (
    ANSWER_SCHEMA,
    PROPOSAL_SCHEMA,
    Draft,
    check_draft,
    column_in,
    spec_diff,
    spec_text,
)
from engine.builder.questions import column_of, facts_about
from engine.builder.reading import Reading, read_workspace, sample_rows
from engine.cells import kind_named
from engine.errors import EditError, NotFoundError, RunsheetError
from engine.spec import ColumnSpec
from engine.store.actions import StoredAction, read_action
from engine.store.catalog import CampaignTables, load_campaign
from engine.store.chats import add_message, clear_chat, mark_accepted, read_chat, read_message
from engine.store.database import Database
from engine.store.settings import load_settings

QUESTION = re.compile(r"^\s*(what|why|how|which|when|does|is|are|can|where|who|explain)\b|\?\s*$", re.IGNORECASE)
HISTORY_MESSAGES = 6  # earlier messages of the chat the model is shown
SYSTEM = """You are Runsheet's action builder. A RevOps user describes, in plain language, a step to run on each \
record of a campaign; you write it as ONE Runsheet step of the right kind: `ai` (a Jinja2 prompt over the \
record's fields, {{ field }}, with an optional system prompt, an output_schema when the answer has parts, a tier, \
run_if and required fields), `formula` (a DuckDB SQL expression over the record's columns), `python` (a function \
package.module:function, listing its inputs), or `http` (a lookup: url, method, headers, path into the JSON \
answer, secrets named as environment variables). Use only the columns the campaign has; prefer a formula when \
SQL can do it. An ai prompt that names no field is given the whole record and the global context. Understand \
and plan first, read the reference below, check the plan against it, then write the step. Answer with one \
JSON object: {"kind": ..., "options": {...the step's options...}, "description": "the action's standard \
operating procedure, in plain words", "plan": ["short steps"], "changes": "what changed and why"}."""


class ActionBuilder:
    """The builder chat of the workspace's actions, as `actor`. `update` applies an accepted change to an existing
    action (the workspace's, which carries it to the campaign columns made from it)."""

    def __init__(
        self,
        db: Database,
        cache_dir: Path,
        *,
        actor: str,
        trigger: str = "api",
        model: BuilderModel | None = None,
        update: Callable[..., Any] | None = None,
    ) -> None:
        self.db, self.cache_dir, self.actor, self.trigger = db, cache_dir, actor, trigger
        self.model = model or BuilderModel()
        self.library = ActionLibrary(db, cache_dir, actor=actor, trigger=trigger)
        self._update = update or self.library.update
        self.timings: list[dict[str, float]] = []  # per turn: seconds in all, in the provider (benches read it)

    # ---- the chat ----------------------------------------------------------------------------------------

    def history(self, action: str) -> list[dict[str, Any]]:
        """The action's chat, oldest first (for those who may see the action)."""
        with self.db.transaction() as con:
            self._may_see(con, action)
            return read_chat(con, action)

    def reset(self, action: str) -> int:
        """Reset Chat: start the action's chat over; returns how many messages went. The action is untouched."""
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=action)
            return clear_chat(con, action)

    def chat(self, action: str, message: str, **options: Any) -> dict[str, Any]:
        """A question about an existing action is answered (`ask`); anything else is a request (`turn`)."""
        with self.db.transaction() as con:
            exists = read_action(con, action) is not None
        if exists and QUESTION.search(message):
            return self.ask(action, message, campaign=options.get("campaign"))
        return self.turn(action, message, **options)

    def turn(
        self,
        action: str,
        request: str,
        *,
        campaign: str | None = None,
        attachments: dict[str, str] | None = None,
        confirm_preview: bool = False,
    ) -> dict[str, Any]:
        """One request: returns the assistant's message, its `proposal` (status `proposed`, `invalid` or
        `failed`) with the diff, the estimate and the preview. Nothing is applied."""
        started = time.perf_counter()
        if not request.strip():
            raise EditError("say what the action should do", hint='e.g. "normalise the company domain"')
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=action)
            existing = read_action(con, action)
            if existing is None:
                check_name(action)  # a new action's name is refused before anything is asked
            tables = None if campaign is None else load_campaign(con, campaign)
            skip = None if existing is None or tables is None else column_of(tables, existing)
            reading = read_workspace(con, tables, attachments, skip)
            earlier = read_chat(con, action)
            tiers = load_settings(con).tiers
            add_message(con, action, _id(existing), "user", request, self.actor)
        name = existing.name if existing is not None else action
        drafted = self._draft(name, request, existing, tables, reading, earlier, tiers)
        proposal = drafted.proposal
        provider = drafted.provider_seconds
        if proposal["status"] == "proposed" and tables is not None and campaign is not None:
            assert drafted.column is not None
            shown = self._preview(drafted.column, tables, campaign, confirm_preview)
            proposal["preview"] = shown.to_json()
        with self.db.transaction() as con:
            message = add_message(con, action, _id(existing), "assistant", _reply(proposal), self.actor, proposal)
        self.timings.append({"seconds": time.perf_counter() - started, "provider_seconds": provider})
        return message

    def confirm_preview(self, proposal_id: int) -> dict[str, Any]:
        """Run a priced preview now that its estimate is confirmed; returns the proposal with the preview."""
        message = self._proposal(proposal_id)
        proposal = message["proposal"]
        with self.db.transaction() as con:  # it may spend: as making the proposal does, it takes an admin
            authorize(self.db, self.actor, "manage_actions", con=con, what=proposal["name"])
        campaign = proposal.get("campaign")
        if campaign is None:
            raise EditError("this proposal has no campaign to preview on", hint="ask again with --campaign")
        with self.db.transaction() as con:
            tables = load_campaign(con, campaign)
        column = column_in(tables, proposal["name"], proposal["kind"], proposal["options"])
        shown = self._preview(column, tables, campaign, True)
        proposal["preview"] = shown.to_json()
        with self.db.transaction() as con:
            con.execute(
                "UPDATE action_chats SET proposal = ? WHERE message_id = ?", [json.dumps(proposal), proposal_id]
            )
        return proposal

    def accept(self, proposal_id: int) -> dict[str, Any]:
        """Apply proposal `proposal_id` exactly as its diff showed it: a new action is added (paused, as every new
        action starts) or the action's step and description are updated. Refused when the proposal is not a valid
        one, was accepted already, or the action changed since it was shown."""
        message = self._proposal(proposal_id)
        proposal = message["proposal"]
        if message["accepted_at"] is not None:
            raise EditError(f"proposal {proposal_id} was accepted already", hint="ask for a new change")
        name = proposal["name"]
        with self.db.transaction() as con:
            authorize(self.db, self.actor, "manage_actions", con=con, what=name)
            current = read_action(con, name)
        now = "" if current is None else spec_text(current.kind, current.options, current.description)
        if now != proposal["before"]:
            raise EditError(
                f"action '{name}' changed since proposal {proposal_id} was shown: it is not applied",
                hint="ask again: the builder drafts from the action as it is now",
            )
        if current is None:
            self.library.add(
                name,
                proposal["kind"],
                proposal["options"],
                category=proposal.get("category") or "research",
                description=proposal["description"],
            )
        else:
            self._update(name, options=proposal["options"], description=proposal["description"])
        with self.db.transaction() as con:
            mark_accepted(con, proposal_id)
            applied = read_action(con, name)
            assert applied is not None
            add_message(con, name, applied.action_id, "event", f"accepted proposal {proposal_id}", self.actor)
        return self.library.show(name)

    def ask(self, action: str, question: str, *, campaign: str | None = None) -> dict[str, Any]:
        """Answer a question about an existing action from its spec, its description and the provenance of its
        cells and results (a row named in the question: `row 12`). The offline model answers with the facts."""
        started = time.perf_counter()
        with self.db.transaction() as con:
            existing = self._may_see(con, action)
            if existing is None:
                raise NotFoundError(f"no action named '{action}'", hint="ask for one to be built first")
            if not self.model.offline:  # a model's answer costs credits: those who may run may ask
                authorize(self.db, self.actor, "run", con=con, what=action)
            tables = None if campaign is None else load_campaign(con, campaign)
            facts = facts_about(con, existing, tables, question)
            add_message(con, action, existing.action_id, "user", question, self.actor)
        provider = 0.0
        if self.model.offline:
            answer = "offline: here is what the action's spec and its results say; set a model for an explanation\n"
            answer += facts
        else:
            messages = [
                (
                    "system",
                    "You explain a Runsheet action to the user who runs it, briefly and plainly, from the "
                    'facts given. Answer with one JSON object: {"answer": "..."}.',
                ),
                ("user", f"{facts}\n\nQuestion: {question}"),
            ]
            asked = ask(
                self.db,
                self.model,
                messages,
                ANSWER_SCHEMA,
                tool="answer",
                action=existing.name,
                action_id=existing.action_id,
                who=(self.actor, self.trigger),
            )
            provider = asked.provider_seconds
            answer = (
                str(asked.value["answer"])
                if asked.value is not None
                else f"the model could not answer ({asked.failed}); the facts:\n{facts}"
            )
        with self.db.transaction() as con:
            message = add_message(con, action, existing.action_id, "assistant", answer, self.actor)
        self.timings.append({"seconds": time.perf_counter() - started, "provider_seconds": provider})
        return message

    # ---- drafting ---------------------------------------------------------------------------------------

    def _draft(
        self,
        name: str,
        request: str,
        existing: StoredAction | None,
        tables: CampaignTables | None,
        reading: Reading,
        earlier: list[dict[str, Any]],
        tiers: dict[str, float],
    ) -> _Drafted:
        before = "" if existing is None else spec_text(existing.kind, existing.options, existing.description)
        base: dict[str, Any] = {
            "name": name,
            "new": existing is None,
            "campaign": None if tables is None else tables.spec.name,
            "read": reading.sources(),
            "before": before,
            "model": self.model.model,
            "model_calls": 0,
            "records": reading.records,
        }
        if self.model.offline:
            draft, note, template = offline_draft(request, None if existing is None else existing.to_json())
            category = None if template is None else _template_category(template)
            return self._checked(base | {"note": note, "category": category}, draft, existing, tables, tiers, 0.0)
        messages = self._messages(request, existing, reading, earlier)
        who = (self.actor, self.trigger)
        asking = partial(ask, self.db, self.model, tool="propose_step", action=name, action_id=_id(existing), who=who)
        asked = asking(messages, PROPOSAL_SCHEMA)
        base["model_calls"] = 1
        provider = asked.provider_seconds
        if asked.value is None:
            return _Drafted(
                base | {"status": "failed", "error": f"the model gave no proposal ({asked.failed})"}, provider
            )
        drafted = self._checked(base, _from_answer(asked.value), existing, tables, tiers, provider)
        if drafted.proposal["status"] != "invalid":
            return drafted
        error = drafted.proposal["error"]
        messages += [
            ("assistant", json.dumps(asked.value)),
            ("user", f"That proposal is invalid: {error}. Answer again with the corrected proposal."),
        ]
        repaired = asking(messages, PROPOSAL_SCHEMA)
        base |= {"model_calls": 2, "repaired_from": error}
        provider += repaired.provider_seconds
        if repaired.value is None:
            return _Drafted(
                base | {"status": "invalid", "error": f"{error}; the repair failed ({repaired.failed})"}, provider
            )
        return self._checked(base, _from_answer(repaired.value), existing, tables, tiers, provider)

    def _checked(
        self,
        base: dict[str, Any],
        draft: Draft | str,
        existing: StoredAction | None,
        tables: CampaignTables | None,
        tiers: dict[str, float],
        provider: float,
    ) -> _Drafted:
        """The proposal of a draft once checked: `proposed` with its diff and estimate, or `invalid` with why."""
        if isinstance(draft, str):
            return _Drafted(base | {"status": "invalid", "error": draft}, provider)
        try:
            options, column = check_draft(draft, base["name"], existing, tables)
        except RunsheetError as err:
            return _Drafted(base | draft.to_json() | {"status": "invalid", "error": str(err)}, provider)
        after = spec_text(draft.kind, options, draft.description)
        rows = base["records"]
        price = _price(draft.kind, options, tiers)
        proposal = (
            base
            | draft.to_json()
            | {
                "status": "proposed",
                "options": options,
                "after": after,
                "diff": spec_diff(base["name"], base["before"], after),
                "estimate": {
                    "credits_per_record": price,
                    "records": rows,
                    "credits_all_records": None if rows is None else price * rows,
                },
            }
        )
        return _Drafted(proposal, provider, column)

    def _messages(
        self, request: str, existing: StoredAction | None, reading: Reading, earlier: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        messages = [("system", f"{SYSTEM}\n\n{reading.as_text()}")]
        for message in earlier[-HISTORY_MESSAGES:]:
            if message["role"] in ("user", "assistant"):
                messages.append((message["role"], message["content"]))
        if existing is not None:
            now = spec_text(existing.kind, existing.options, existing.description)
            request = f"The action '{existing.name}' is now:\n{now}\nChange it: {request}"
        messages.append(("user", request))
        return messages

    def _preview(self, column: ColumnSpec, tables: CampaignTables, campaign: str, confirm: bool) -> Preview:
        with self.db.transaction() as con:
            rows = sample_rows(con, tables)
        return preview(self.db, self.cache_dir, campaign, column, rows, confirm=confirm, who=(self.actor, self.trigger))

    def _may_see(self, con: Any, action: str) -> StoredAction | None:
        """The action (None when it does not exist yet); raises NotFoundError when this actor may not see it."""
        found = read_action(con, action)
        if found is not None and not may_see(role_of(con, self.actor), found):
            raise NotFoundError(f"no action named '{action}'", hint="list the actions with `runsheet action list`")
        return found

    def _proposal(self, proposal_id: int) -> dict[str, Any]:
        with self.db.transaction() as con:
            message = read_message(con, int(proposal_id))
        if message is None or message["proposal"] is None:
            raise NotFoundError(
                f"no proposal {proposal_id}", hint="see the chat with `runsheet action chat A --history`"
            )
        if message["proposal"]["status"] != "proposed":
            raise EditError(
                f"proposal {proposal_id} is {message['proposal']['status']}: "
                f"{message['proposal'].get('error', '')}; it cannot be applied",
                hint="ask again",
            )
        return message


class _Drafted:
    """A proposal as drafted, the seconds its model calls spent in the provider, and (checked against a
    campaign) its step read as a column of it."""

    def __init__(self, proposal: dict[str, Any], provider_seconds: float, column: ColumnSpec | None = None) -> None:
        self.proposal, self.provider_seconds, self.column = proposal, provider_seconds, column


def _from_answer(value: dict[str, Any]) -> Draft | str:
    try:
        return Draft.from_answer(value)
    except (KeyError, TypeError, ValueError) as err:
        return f"the answer is not a proposal: {err}"


def _id(action: StoredAction | None) -> int | None:
    return None if action is None else action.action_id


def _template_category(name: str) -> str | None:
    from engine.actions.templates import TEMPLATES

    found = TEMPLATES.get(name)
    return None if found is None else str(found.get("category"))


def _price(kind: str, options: dict[str, Any], tiers: dict[str, float]) -> float:
    step = kind_named(kind)
    return 0.0 if step.free else step.price(step.options.model_validate(options), tiers)


def _reply(proposal: dict[str, Any]) -> str:
    """The assistant's message: what it read, the plan, what changed and why, the diff, estimate and preview."""
    lines = [proposal["note"]] if proposal.get("note") else []
    lines.append("Read: " + "; ".join(proposal["read"]) + ".")
    if proposal["status"] == "failed":
        lines.append(f"No proposal: {proposal['error']}. The action is unchanged.")
        return "\n".join(lines)
    if proposal.get("plan"):
        lines.append("Plan:\n" + "\n".join(f"  {i}. {p}" for i, p in enumerate(proposal["plan"], 1)))
    if proposal["status"] == "invalid":
        lines.append(f"The proposal is invalid and is not applied: {proposal['error']}")
        return "\n".join(lines)
    if proposal.get("repaired_from"):
        lines.append(f"The first draft was invalid ({proposal['repaired_from']}); repaired.")
    lines.append(f"What changed and why: {proposal['changes']}")
    lines.append(f"Description: {proposal['description']}")
    estimate = proposal["estimate"]
    cost = f"{estimate['credits_per_record']:g} credits a record"
    if estimate["records"] is not None:
        cost += f", {estimate['credits_all_records']:g} for all {estimate['records']} records"
    lines.append(f"Estimate: {cost}.")
    shown = proposal.get("preview")
    if shown is not None:
        if shown["status"] == "ran":
            lines.append("Preview:")
            lines += [
                f"  row {r['row_id']}: {r['status']}: "
                f"{json.dumps(r['value'], ensure_ascii=False) if r['value'] is not None else r['error'] or ''}"
                for r in shown["rows"]
            ]
        else:
            lines.append(f"Preview not run: {shown['reason']}.")
    lines.append("Diff:\n" + proposal["diff"])
    lines.append("Nothing is applied until you accept.")
    return "\n".join(lines)
