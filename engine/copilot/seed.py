"""What a Copilot chat starts from: its source (a campaign's step cell, or an ad hoc action result) read into a
seed: the record's current values, the step or action (its spec and description), the prompt it rendered and the
result. A source with no result to continue is refused with the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.actions import ActionLibrary
from engine.campaign import Campaign
from engine.errors import EditError, NotFoundError
from engine.store.actions import StoredAction, read_action_by_id
from engine.store.database import Database
from engine.types import Status

CURRENT = {Status.DONE, Status.PINNED, Status.CONFIRMED}  # a result Copilot may continue


@dataclass(frozen=True)
class Source:
    """Where a chat's result lives: `key` names it (one chat per source); `label` is what a Save to Record line
    begins with (the step's or action's name); `options` are the step's, which name the model it was made with."""

    key: str
    campaign: str
    campaign_id: int
    row_id: int
    column: str | None
    result_id: int | None
    action_id: int | None
    label: str
    seed: dict[str, Any]
    options: dict[str, Any]


def cell_source(db: Database, campaign: str, row_id: int, column: str, actor: str) -> Source:
    """The step cell (`row_id`, `column`) of `campaign` as a source; EditError when it holds no result."""
    handle = Campaign(db, campaign, actor=actor)
    spec = handle.spec
    if column not in spec.names:
        raise NotFoundError(
            f"campaign '{campaign}' has no column '{column}'", hint=f"its columns: {', '.join(spec.names)}"
        )
    found = spec.columns[spec.names.index(column)]
    if found.is_input:
        raise EditError(
            f"'{column}' is an input column: Copilot continues a step's result",
            hint="send a step cell (an ai, formula, python or http column) to Copilot, or edit the input itself",
        )
    page = handle.page(rows=[int(row_id)])
    if not page.rows:
        raise NotFoundError(f"campaign '{campaign}' has no row {row_id}", hint=f"runsheet show {campaign}")
    cells = page.rows[0]
    cell = cells[column]
    if cell.status not in CURRENT or cell.value is None:
        raise EditError(
            f"row {row_id}'s {column} is {cell.status.value}: it has no result to continue",
            hint=f"run it first with `runsheet run -c {campaign} --column {column} --rows {row_id}`",
        )
    raw = next(c for c in spec.source.get("columns", []) if c.get("name") == column)
    options = {k: v for k, v in raw.items() if k not in ("name", "kind", "from_action")}
    action = _action(db, raw.get("from_action"))
    seed = {
        "record": _record(cells, exclude=column),
        "step": {
            "name": column,
            "kind": found.kind,
            "options": options,
            "description": action.description if action is not None else "",
        },
        "prompt": _prompt(cell.detail),
        "result": _text(cell.value),
        "status": cell.status.value,
    }
    campaign_id = _campaign_id(db, campaign)
    key = f"cell:{campaign_id}:{int(row_id)}:{column}"
    action_id = None if action is None else action.action_id
    return Source(key, campaign, campaign_id, int(row_id), column, None, action_id, column, seed, options)


def result_source(library: ActionLibrary, result_id: int) -> Source:
    """The ad hoc action result `result_id` as a source; EditError when it is not a finished result."""
    found = library.result(result_id)
    if found["status"] != "done" or found["value"] is None:
        raise EditError(
            f"result {result_id} is {found['status']}: it has no result to continue",
            hint=f"run the action again with `runsheet action run {found['action']} ...`, then send that result",
        )
    action = library.show(found["action"])
    handle = Campaign(library.db, found["campaign"], actor=library.actor)
    page = handle.page(rows=[int(found["row_id"])])
    seed = {
        "record": _record(page.rows[0], exclude=None) if page.rows else {},
        "step": {
            "name": action["name"],
            "kind": action["kind"],
            "options": action["options"],
            "description": action["description"],
        },
        "prompt": _prompt(found.get("detail")),
        "result": _text(found["value"]),
        "status": found["status"],
    }
    return Source(
        f"result:{int(result_id)}",
        found["campaign"],
        int(found["campaign_id"]),
        int(found["row_id"]),
        None,
        int(result_id),
        int(found["action_id"]),
        action["name"],
        seed,
        dict(action["options"]),
    )


def _campaign_id(db: Database, campaign: str) -> int:
    with db.transaction() as con:
        return int(con.execute("SELECT campaign_id FROM campaigns WHERE name = ?", [campaign]).fetchall()[0][0])


def _action(db: Database, action_id: Any) -> StoredAction | None:
    if not isinstance(action_id, int):
        return None
    with db.transaction() as con:
        return read_action_by_id(con, action_id)


def _record(cells: dict[str, Any], exclude: str | None) -> dict[str, Any]:
    """The record's current values (inputs, and steps whose value is current), as text or JSON values."""
    return {
        name: cell.value
        for name, cell in cells.items()
        if name != exclude and cell.value is not None and cell.status in CURRENT
    }


def _prompt(detail: Any) -> str | None:
    """The messages the step sent (ai steps keep them in the cell's provenance), as one text."""
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except ValueError:
            return None
    messages = detail.get("messages") if isinstance(detail, dict) else None
    if not isinstance(messages, list):
        return None
    return "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in messages if isinstance(m, dict))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
