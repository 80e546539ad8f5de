"""Spec history: every change of a campaign's spec, with who made it, when, through what (`origin`: a spec file
applied from the command line, the UI, the API, an import or Save to Record adding a field) and a unified diff of
the YAML; and the guard that keeps a file from silently undoing what was changed elsewhere since it was last
applied.

The history holds the spec as stored after each change (`campaigns.spec`), so the spec before a change is the one
after the change before it, and the spec a file last left is the last `file` entry's.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any, Literal

import duckdb
import yaml

from engine.errors import SpecConflictError
from engine.store.database import dict_rows, scalar

Origin = Literal["file", "ui", "api", "import", "edit"]
FILE: Origin = "file"
TOP_KEYS = ("campaign", "description")  # first in an exported spec; then the rest, then `columns`
COLUMN_KEYS = ("name", "kind")  # first in each column; then its options as stored


def live_source(con: duckdb.DuckDBPyConnection, campaign: str) -> dict[str, Any] | None:
    """The campaign's spec as stored (None when there is no such campaign)."""
    stored = scalar(con, "SELECT spec FROM campaigns WHERE name = ?", [campaign])
    return None if stored is None else dict(json.loads(stored))


def spec_yaml(source: dict[str, Any]) -> str:
    """A stored spec as YAML that `apply` reads back to the same spec: the campaign and its description first, each
    column's name and kind first."""
    ordered = {k: source[k] for k in TOP_KEYS if k in source}
    ordered |= {k: v for k, v in source.items() if k not in (*TOP_KEYS, "columns")}
    ordered["columns"] = [
        {**{k: c[k] for k in COLUMN_KEYS if k in c}, **{k: v for k, v in c.items() if k not in COLUMN_KEYS}}
        if isinstance(c, dict)
        else c
        for c in source.get("columns", [])
    ]
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=110)


def spec_diff(before: dict[str, Any] | None, after: dict[str, Any] | None, label: str = "spec") -> str:
    """A unified diff of two specs' YAML (empty when they are the same)."""
    old = spec_yaml(before).splitlines(keepends=True) if before else []
    new = spec_yaml(after).splitlines(keepends=True) if after else []
    return "".join(difflib.unified_diff(old, new, f"{label} (before)", f"{label} (after)"))


def record_change(
    con: duckdb.DuckDBPyConnection, campaign: str, before: dict[str, Any] | None, actor: str | None, origin: Origin
) -> int | None:
    """Add a history entry if the stored spec of `campaign` differs from `before`; returns its id (None when the
    spec did not change)."""
    found = con.execute("SELECT campaign_id, spec FROM campaigns WHERE name = ?", [campaign]).fetchall()
    campaign_id, stored = found[0]
    after = json.loads(stored)
    if after == before:
        return None
    change_id = int(scalar(con, "SELECT coalesce(max(change_id), 0) + 1 FROM spec_history"))
    con.execute(
        "INSERT INTO spec_history VALUES (?, ?, ?, now(), ?, ?, ?, ?)",
        [change_id, campaign_id, campaign, actor, origin, stored, spec_diff(before, after, campaign)],
    )
    return change_id


def history(con: duckdb.DuckDBPyConnection, campaign_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """A campaign's spec changes, newest first: change_id, changed_at, actor, origin, diff."""
    cursor = con.execute(
        "SELECT change_id, campaign, changed_at, actor, origin, diff FROM spec_history WHERE campaign_id = ? "
        "ORDER BY change_id DESC LIMIT ?",
        [campaign_id, limit],
    )
    return dict_rows(cursor)


def check_file_apply(
    con: duckdb.DuckDBPyConnection,
    campaign: str,
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    kept: list[str],
    pruned: Sequence[str] = (),
) -> None:
    """Raise SpecConflictError when applying a file whose spec is `applied` (as stored; `kept` names the columns
    the apply keeps though the file leaves them out) would undo a change made elsewhere (the UI, the API, an
    import) since the campaign's spec was last applied from a file (a campaign never applied from a file has no
    such spec to compare with: its first file applies as it is). A column or top-level key counts as undone
    when it differs between the last file's spec and the live one, and the file would change it again; columns
    dropped with `prune` (named in `pruned`) were asked for by name, and are not."""
    if live is None:
        return
    entries = con.execute(
        "SELECT origin, spec FROM spec_history WHERE campaign = ? ORDER BY change_id", [campaign]
    ).fetchall()
    last_file = max((i for i, (origin, _) in enumerate(entries) if origin == FILE), default=None)
    if last_file is None or last_file == len(entries) - 1:
        return  # never applied from a file (or before the history began), or nothing changed elsewhere since
    base = json.loads(entries[last_file][1])
    after = dict(applied)
    after_columns = _columns(applied)
    after_columns |= {name: entry for name, entry in _columns(live).items() if name in kept}
    undone = [
        key
        for key in sorted(set(_keys(base, _columns(base))) | set(_keys(live, _columns(live))))
        if _part(base, key) != _part(live, key)
        and _part(live, key) != _part_of(after, after_columns, key)
        and not (key.startswith("column ") and key.removeprefix("column ") in pruned)
    ]
    if not undone:
        return
    shown = {**after, "columns": [after_columns[c] for c in _order(applied, after_columns)]}
    raise SpecConflictError(
        f"applying this file to campaign '{campaign}' would undo changes made since its spec was last applied "
        f"from a file (in the UI, the API or an import): {', '.join(undone)}",
        hint=f"export the live spec with `runsheet spec export -c {campaign} -o FILE` and merge, "
        "or apply with --force to overwrite them",
        undone=undone,
        diff=spec_diff(live, shown, campaign),
    )


def _columns(source: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c for c in source.get("columns", []) if isinstance(c, dict) and "name" in c}


def _keys(source: dict[str, Any], columns: dict[str, Any]) -> list[str]:
    return [k for k in source if k != "columns"] + [f"column {name}" for name in columns]


def _part(source: dict[str, Any], key: str) -> Any:
    return _part_of(source, _columns(source), key)


def _part_of(source: dict[str, Any], columns: dict[str, Any], key: str) -> Any:
    if key.startswith("column "):
        return columns.get(key.removeprefix("column "))
    return source.get(key)


def _order(applied: dict[str, Any], columns: dict[str, Any]) -> list[str]:
    named = list(_columns(applied))
    return named + [c for c in columns if c not in named]
