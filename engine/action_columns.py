"""Campaign columns that name a library action (`action: NAME`) instead of repeating its definition: written out
into the action's kind and options when the spec is applied, marked `from_action: <id>`, and carried along when
the action's options change (engine/actions/ owns the library; engine/workspace.py applies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import EditError, SpecError


@dataclass(frozen=True)
class LibraryStep:
    """A library action as a column takes it (engine/actions/): its id, kind and options."""

    action_id: int
    kind: str
    options: dict[str, Any]


def expand_actions(data: Any, actions: dict[str, LibraryStep]) -> Any:
    """The spec mapping with each column that names a library action (`action: NAME`, matched without case)
    written out: the action's kind and options, then what the column sets beside them (its overrides: run,
    run_if, a prompt of its own...), and `from_action: <id>`, which keeps where it came from (and lets a change
    of the action reach the column: Workspace.update_action)."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
        return data
    columns = []
    for raw in data["columns"]:
        if isinstance(raw, dict) and "action" in raw:
            given = dict(raw)
            wanted = given.pop("action")
            name = given.get("name") if isinstance(given.get("name"), str) else None
            found = actions.get(str(wanted).lower())
            if found is None:
                raise SpecError(
                    f"no library action named {wanted!r}", hint="list them with `runsheet action list`", column=name
                )
            if "kind" in given:
                raise SpecError(
                    f"the column names kind {given['kind']!r} and library action {wanted!r}",
                    hint="remove `kind`: the column takes the action's",
                    column=name,
                )
            given.pop("from_action", None)
            raw = {"name": given.pop("name", None), "kind": found.kind, **found.options, **given}
            raw["from_action"] = found.action_id
        columns.append(raw)
    return {**data, "columns": columns}


def follow_action(column: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A column expanded from a library action, after the action's options changed from `old` to `new`: what it
    took from the action follows (a key the action dropped goes), what it set itself (a value that differs from
    the action's) stays."""
    kept = {k: v for k, v in column.items() if not (k in old and old[k] == v)}
    return {
        "name": column["name"],
        "kind": column["kind"],
        **new,
        **{k: v for k, v in kept.items() if k not in ("name", "kind")},
    }


def with_action_column(
    source: dict[str, Any], action: str, name: str, *, after: str | None = None, run: str | None = None
) -> dict[str, Any]:
    """The spec `source` with a column `name` made from library action `action` (`{name, action, run}`) put after
    column `after` (at the end when None). A column of that name already there is refused, never replaced."""
    columns = list(source.get("columns", []))
    names = [c.get("name") for c in columns if isinstance(c, dict)]
    taken = next((str(n) for n in names if str(n).lower() == name.lower()), None)
    if taken is not None:
        raise EditError(
            f"campaign '{source.get('campaign')}' has a column named '{taken}' already: it is kept as it is",
            hint="give the new column another name",
        )
    if after is not None and after not in names:
        raise EditError(
            f"no column named {after!r} to put it after", hint=f"choose one of: {', '.join(map(str, names))}"
        )
    entry: dict[str, Any] = {"name": name, "action": action}
    if run is not None:
        entry["run"] = run
    position = len(columns) if after is None else names.index(after) + 1
    columns.insert(position, entry)
    return {**source, "columns": columns}
