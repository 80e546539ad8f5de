"""Copilot: "Send to Copilot" on any result (a campaign's step cell, or an ad hoc action result) opens a chat
seeded with the record, the step, the prompt it rendered and the result (seed.py); each message the user sends
("shorter", "mention their Series B") is one model call, made as the builder's are (engine/builder/model.py: any
model the workspace can call, a deadline, retries, credits billed once, logged in activity). Any reply can be
saved to the record (the Save to Record path: `Campaign.save_text`) or used as the cell's value (pinned through
`Campaign.set`, exactly as a hand edit: downstream reacts, exports wait until it is confirmed). Nothing is written
to a record or a cell but by those two commands.

Roles are those of running the step or action: viewers read chats, never send, save or reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from engine.actions import ActionLibrary
from engine.auth import authorize
from engine.builder.model import BuilderModel, ask
from engine.campaign import Campaign
from engine.copilot.seed import Source, cell_source, result_source
from engine.copilot.turn import conversation, model_for
from engine.errors import EditError, NotFoundError, RunsheetError
from engine.store.copilot import (
    add_message,
    find_chat,
    mark_used,
    open_chat,
    read_chat,
    read_message,
    read_messages,
    reset_chat,
)
from engine.store.database import Database
from engine.store.edits import NOTES
from engine.types import Status

Target = Literal["record", "cell"]


class Copilot:
    """The workspace's Copilot chats, as `actor` through `trigger`. Replies come from `model` when given, else
    from the model of the source's ai step (when its key is set), else from the offline model."""

    def __init__(
        self,
        db: Database,
        cache_dir: Path,
        *,
        actor: str,
        trigger: str = "api",
        model: BuilderModel | None = None,
    ) -> None:
        self.db, self.cache_dir, self.actor, self.trigger = db, cache_dir, actor, trigger
        self.model = model
        self.library = ActionLibrary(db, cache_dir, actor=actor, trigger=trigger)

    # ---- opening and reading -----------------------------------------------------------------------------

    def start(
        self,
        *,
        campaign: str | None = None,
        row: int | None = None,
        column: str | None = None,
        result: int | None = None,
    ) -> dict[str, Any]:
        """Send to Copilot: the chat of a step cell (`campaign`, `row`, `column`) or of an action `result`, the
        one kept for it or a new one seeded now. Refused to those who may not run the step or action."""
        source = self._source(campaign, row, column, result)
        self._may_send(source)
        with self.db.transaction() as con:
            where = (source.campaign_id, source.row_id, source.column)
            chat = open_chat(con, source.key, where, (source.result_id, source.action_id), source.seed, self.actor)
        return self.show(int(chat["chat_id"]))

    def find(
        self,
        *,
        campaign: str | None = None,
        row: int | None = None,
        column: str | None = None,
        result: int | None = None,
    ) -> dict[str, Any] | None:
        """The chat kept for a source, or None (anyone who may read the workspace may look)."""
        authorize(self.db, self.actor, "read")
        if result is not None:
            key = f"result:{int(result)}"
        else:
            if campaign is None or row is None or column is None:
                raise _which_source()
            with self.db.transaction() as con:
                found = con.execute("SELECT campaign_id FROM campaigns WHERE name = ?", [campaign]).fetchall()
            if not found:
                return None
            key = f"cell:{found[0][0]}:{int(row)}:{column}"
        with self.db.transaction() as con:
            chat = find_chat(con, key)
        return None if chat is None else self.show(int(chat["chat_id"]))

    def show(self, chat_id: int) -> dict[str, Any]:
        """The chat: its source, seed and messages, oldest first."""
        authorize(self.db, self.actor, "read")
        with self.db.transaction() as con:
            chat = self._chat(con, chat_id)
            chat["campaign"] = _campaign_name(con, int(chat["campaign_id"]))
            chat["messages"] = read_messages(con, int(chat_id))
        return chat

    # ---- the conversation --------------------------------------------------------------------------------

    def say(self, chat_id: int, message: str) -> dict[str, Any]:
        """One turn: the user's `message`, then one model call; returns the assistant's reply, or (role
        `error`) why the model gave none. Nothing outside the chat changes."""
        if not isinstance(message, str) or not message.strip():
            raise EditError("say how the result should change", hint=f'e.g. `runsheet copilot say {chat_id} "shorter"`')
        chat = self.show(chat_id)
        source = self._source_of(chat)
        self._may_send(source)
        model = self.model or model_for(source.options)
        asked_for = conversation(chat, message.strip())
        with self.db.transaction() as con:
            add_message(con, int(chat_id), "user", message.strip(), self.actor)
        asked = ask(
            self.db,
            model,
            asked_for,
            None,
            action=source.label,
            action_id=source.action_id,
            who=(self.actor, self.trigger),
            logged_as="copilot",
            record=(source.campaign_id, source.row_id),
        )
        with self.db.transaction() as con:
            if asked.text is None:
                failed = f"the model gave no reply ({asked.failed}); nothing was changed: send it again to retry"
                return add_message(con, int(chat_id), "error", failed, self.actor, model.model)
            return add_message(
                con, int(chat_id), "assistant", asked.text, self.actor, model.model, asked.result.credits
            )

    def save(
        self,
        chat_id: int,
        *,
        to: Target,
        message_id: int | None = None,
        field: str = NOTES,
        column: str | None = None,
        run_paid: bool = True,
    ) -> dict[str, Any]:
        """Use a reply (the latest, or `message_id`): `to="record"` saves it into the record's `field` (notes:
        an appended line), as Save to Record does; `to="cell"` pins it as the value of the source's cell (or of
        `column`, a step of the record's campaign), as a hand edit does. The row's downstream reacts as after an
        edit (paid auto steps run now, or are queued when `run_paid` is False). Returns the reply, marked used,
        with the edit's `run_id` and how many cells it `queued`."""
        chat = self.show(chat_id)
        source = self._source_of(chat)
        reply = self._reply(chat, message_id)
        handle = Campaign(self.db, source.campaign, actor=self.actor, trigger=self.trigger)
        if to == "record":
            report = handle.save_text(
                source.row_id, source.label, reply["content"], field, action_id=source.action_id, run_paid=run_paid
            )
            used, where = f"record:{field}", field
        elif to == "cell":
            target = column or source.column
            if target is None:
                raise EditError(
                    f"chat {chat_id} continues action result {source.result_id}, which is no campaign cell",
                    hint=f"name the step column to pin it in: `runsheet copilot save {chat_id} --to cell --column X`",
                )
            if target in handle.spec.record_fields:
                raise EditError(
                    f"'{target}' is an input column: a reply is pinned in a step cell",
                    hint=f"save it into the record instead: `runsheet copilot save {chat_id} --to record --field "
                    f"{target}`",
                )
            report = handle.set(source.row_id, target, reply["content"], run_paid=run_paid)
            used, where = f"cell:{target}", target
        else:
            raise EditError(f"cannot save to {to!r}", hint="save --to record or --to cell")
        with self.db.transaction() as con:
            mark_used(con, int(reply["message_id"]), used, self.actor)
            _log_used(con, source, where, "saved" if to == "record" else "pinned", (self.actor, self.trigger))
            found = read_message(con, int(reply["message_id"]))
        assert found is not None
        queued = sum(1 for e in report.events if e.outcome == Status.QUEUED.value)
        return {**found, "run_id": report.run_id, "queued": queued}

    def reset(self, chat_id: int) -> int:
        """Reset: the chat's messages go and it is seeded again from its source as it is now (the seed it had
        stays when the source holds no result any more); returns how many messages went."""
        chat = self.show(chat_id)
        source = self._source_of(chat)
        self._may_send(source)
        seed = chat["seed"]
        try:
            seed = self._fresh_source(chat).seed
        except RunsheetError:
            pass
        with self.db.transaction() as con:
            return reset_chat(con, int(chat_id), seed)

    # ---- helpers -----------------------------------------------------------------------------------------

    def _source(self, campaign: str | None, row: int | None, column: str | None, result: int | None) -> Source:
        if result is not None and campaign is None and column is None:
            return result_source(self.library, int(result))
        if result is None and campaign is not None and row is not None and column is not None:
            return cell_source(self.db, campaign, int(row), column, self.actor)
        raise _which_source()

    def _fresh_source(self, chat: dict[str, Any]) -> Source:
        if chat["result_id"] is not None:
            return result_source(self.library, int(chat["result_id"]))
        return cell_source(self.db, chat["campaign"], int(chat["row_id"]), str(chat["column_name"]), self.actor)

    def _source_of(self, chat: dict[str, Any]) -> Source:
        """The chat's source as it was seeded (the record and campaign it names still exist to act on)."""
        seed = chat["seed"]
        step = seed.get("step", {})
        label = str(chat["column_name"] or step.get("name") or "copilot")
        return Source(
            chat["source"],
            chat["campaign"],
            int(chat["campaign_id"]),
            int(chat["row_id"]),
            chat["column_name"],
            chat["result_id"],
            chat["action_id"],
            label,
            seed,
            dict(step.get("options") or {}),
        )

    def _may_send(self, source: Source) -> None:
        """Refuse, as a run of the step or action is refused, those who may not run it."""
        if source.result_id is not None:
            self.library.check_may_run(str(source.seed["step"]["name"]), source.campaign)
        else:
            authorize(self.db, self.actor, "run", campaign_id=source.campaign_id, what=source.column or "")

    def _chat(self, con: Any, chat_id: int) -> dict[str, Any]:
        chat = read_chat(con, int(chat_id))
        if chat is None:
            raise NotFoundError(
                f"no Copilot chat {chat_id}",
                hint="open one with `runsheet copilot start --campaign C --row N --column X` (or --result ID)",
            )
        return chat

    def _reply(self, chat: dict[str, Any], message_id: int | None) -> dict[str, Any]:
        replies = [m for m in chat["messages"] if m["role"] == "assistant"]
        if message_id is not None:
            replies = [m for m in replies if m["message_id"] == int(message_id)]
            if not replies:
                raise NotFoundError(
                    f"chat {chat['chat_id']} has no reply {message_id}",
                    hint=f"list its replies with `runsheet copilot show {chat['chat_id']}`",
                )
        if not replies:
            raise EditError(
                f"chat {chat['chat_id']} has no reply to save yet",
                hint=f'ask for one first: `runsheet copilot say {chat["chat_id"]} "shorter"`',
            )
        return replies[-1]


def _which_source() -> EditError:
    return EditError(
        "say which result to send to Copilot: a cell (campaign, row and column) or an action result",
        hint="`runsheet copilot start --campaign C --row N --column X`, or `runsheet copilot start --result ID`",
    )


def _campaign_name(con: Any, campaign_id: int) -> str:
    found = con.execute("SELECT name FROM campaigns WHERE campaign_id = ?", [campaign_id]).fetchall()
    return str(found[0][0]) if found else "?"


def _log_used(con: Any, source: Source, where: str, outcome: str, who: tuple[str, str]) -> None:
    """The record's timeline entry for a reply used: AI generated (Copilot), by whom, when, into what."""
    con.execute(
        "INSERT INTO activity (campaign_id, row_id, column_name, cells, action, outcome, logged_at, actor, trigger, "
        "action_id) VALUES (?, ?, ?, 1, 'copilot_reply', ?, now(), ?, ?, ?)",
        [source.campaign_id, source.row_id, where, outcome, *who, source.action_id],
    )
