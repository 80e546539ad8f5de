"""A proposal: the step the builder drafted (kind and options), the action's plain description (its SOP), the
plan and what changed and why; how a model's answer becomes one, how it is checked (the kind's options model,
then the action read as a column of the campaign: the spec validator), and the diff of the spec it is shown as."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from engine.actions.library import check_options
from engine.builder.reference import BUILDABLE
from engine.errors import EditError, SpecError
from engine.run.adhoc import as_column
from engine.spec import ColumnSpec
from engine.store.actions import StoredAction
from engine.store.catalog import CampaignTables

# What the model answers with (a JSON object; also what the offline drafts are made of).
PROPOSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kind": {"type": "string", "enum": list(BUILDABLE)},
        "options": {"type": "object"},
        "description": {"type": "string", "minLength": 1},
        "plan": {"type": "array", "items": {"type": "string"}},
        "changes": {"type": "string"},
    },
    "required": ["kind", "options", "description", "plan", "changes"],
}
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 1}},
    "required": ["answer"],
}


@dataclass(frozen=True)
class Draft:
    """A step as drafted, before it is checked."""

    kind: str
    options: dict[str, Any]
    description: str
    plan: tuple[str, ...]
    changes: str

    @classmethod
    def from_answer(cls, value: dict[str, Any]) -> Draft:
        return cls(
            kind=str(value["kind"]),
            options=dict(value["options"]),
            description=str(value["description"]).strip(),
            plan=tuple(str(p) for p in value.get("plan", ())),
            changes=str(value.get("changes", "")).strip(),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plan": list(self.plan)}


def check_draft(
    draft: Draft, name: str, existing: StoredAction | None, tables: CampaignTables | None
) -> tuple[dict[str, Any], ColumnSpec | None]:
    """The draft's options as the library would store them, and (with a campaign) the step read as one of its
    columns, which the preview runs; raises EditError or SpecError saying what is wrong:
    a kind the builder does not write, an existing action's kind changed, options its kind refuses, or (with a
    campaign) a field the campaign lacks or an expression its spec refuses."""
    if draft.kind not in BUILDABLE:
        raise EditError(f"the builder writes {', '.join(BUILDABLE)} steps, not {draft.kind!r}", hint="pick one")
    if existing is not None and existing.kind != draft.kind:
        raise EditError(
            f"action '{existing.name}' is a {existing.kind} step and keeps its kind (the draft is a {draft.kind})",
            hint="ask for a new action to get a step of another kind",
        )
    if not draft.description:
        raise EditError("the draft has no description", hint="say what the action does, in plain words")
    options = check_options(name, draft.kind, draft.options)
    if tables is None:
        return options, None
    return options, column_in(tables, name, draft.kind, options)


def column_in(tables: CampaignTables, name: str, kind: str, options: dict[str, Any]) -> ColumnSpec:
    """A step read as a column of `tables`' campaign (the spec validator); raises SpecError."""
    return as_column(tables, StoredAction(0, name, kind, options, "research", "", True, False, (), "result"))


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line text as literal blocks (a prompt reads as written, and diffs line by line)."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def spec_text(kind: str, options: dict[str, Any], description: str) -> str:
    """An action's step as the diff shows it: YAML, the description first."""
    step = {"description": description, "kind": kind, **options}
    return yaml.dump(step, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def spec_diff(name: str, before: str, after: str) -> str:
    """A unified diff of the action's spec, before → after (before is empty for a new action)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{name} (now)" if before else "/dev/null",
        tofile=f"{name} (proposed)",
    )
    return "".join(lines)


def error_text(err: EditError | SpecError) -> str:
    return err.message + (f" ({err.hint})" if err.hint else "")
