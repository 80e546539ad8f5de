"""What applying a spec changes in the store, worked out before anything is written, then written.

Applying never loses data as a side effect (DESIGN, Invariants 3 and 4):
- a column the spec no longer lists is dropped only while it holds nothing. An input column that holds values
  (imported, typed, or a field created by Save to Record) is kept, listed after the spec's columns; a step that
  holds values (a paid kind's results, or cells edited by hand) is refused. `prune` drops them explicitly;
- `renamed_from` renames a column in place: its table, cells, keys and history stay;
- an input retyped so that stored values would change (DOUBLE to BIGINT rounds 1.5 to 2) needs `allow_lossy`;
- history (activity, runs, credits, outbox) is never deleted here: a removed column's rows keep its last name.

A dry run works the same changes out and writes nothing; what the real apply would refuse is in `refusals`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import duckdb

from engine.cells import INPUT_KIND, KINDS
from engine.errors import SpecError
from engine.graph.fate import HAND_SET, sql_in
from engine.spec import CampaignSpec, ColumnSpec, parse_spec
from engine.store.database import scalar
from engine.store.pause import set_paused
from engine.store.runlog import follow_rename
from engine.store.schema import input_table_ddl, rows_table_ddl, step_table_ddl

Prune = bool | Collection[str]  # True: every column the spec leaves out; names: only those
PRUNE_FIX = "drop it with --prune; --dry-run shows what would go"


@dataclass(frozen=True)
class TypeChange:
    """An input column given a new type, and how many stored values the cast would change (or a step's JSON
    values unwrapped to plain text: none change)."""

    column: str
    old: str
    new: str
    changed_values: int = 0
    example: str | None = None  # one such value: "1.5 -> 2"


@dataclass
class SpecChanges:
    """What applying a spec did to the stored campaign (or, in a dry run, would do)."""

    created: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # dropped: empty columns, and pruned ones
    changed: list[str] = field(default_factory=list)  # step versions changed: their cells are out of date
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> new name
    kept: dict[str, int] = field(default_factory=dict)  # not in the spec but holding values (name -> how many)
    pruned: dict[str, int] = field(default_factory=dict)  # dropped by prune, with the values they held
    retyped: list[TypeChange] = field(default_factory=list)
    new_steps: list[str] = field(default_factory=list)  # steps with no cells before: added, or of a new kind
    refusals: list[SpecError] = field(default_factory=list)  # why a dry run's spec would be refused

    @property
    def nothing(self) -> bool:
        return not (self.created or self.added or self.removed or self.changed or self.renamed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "renamed": self.renamed,
            "kept": self.kept,
            "pruned": self.pruned,
            "retyped": [vars(t) for t in self.retyped],
            "refused": [str(r) for r in self.refusals],
        }


@dataclass(frozen=True)
class _Stored:
    kind: str
    version: str
    value_type: str
    table: str


def store_spec(
    con: duckdb.DuckDBPyConnection,
    spec: CampaignSpec,
    *,
    prune: Prune = False,
    allow_lossy: bool = False,
    dry_run: bool = False,
) -> SpecChanges:
    """Create or update the campaign to match `spec`: new tables for new columns, renamed and retyped columns
    kept in place, dropped tables for removed columns that hold nothing (or are pruned). Raises the first
    refusal (SpecError) before writing anything; `dry_run` writes nothing and returns the refusals instead."""
    found = con.execute("SELECT campaign_id, spec FROM campaigns WHERE name = ?", [spec.name]).fetchall()
    if not found:
        if not dry_run:
            _create(con, spec)
        steps = [c.name for c in spec.columns if not c.is_input]
        return SpecChanges(created=True, added=list(spec.names), new_steps=steps)
    campaign_id, old_json = found[0]
    stored = {
        name: _Stored(kind, version, value_type, table)
        for name, kind, version, value_type, table in con.execute(
            "SELECT name, kind, version, value_type, table_name FROM columns WHERE campaign_id = ? ORDER BY position",
            [campaign_id],
        ).fetchall()
    }
    changes = SpecChanges()
    final = _plan(con, spec, stored, json.loads(old_json), changes, prune, allow_lossy)
    if dry_run:
        return changes
    if changes.refusals:
        raise changes.refusals[0]
    assert final is not None
    _write(con, campaign_id, final, stored, changes)
    return changes


def _plan(
    con: duckdb.DuckDBPyConnection,
    spec: CampaignSpec,
    stored: dict[str, _Stored],
    old_source: dict[str, Any],
    changes: SpecChanges,
    prune: Prune,
    allow_lossy: bool,
) -> CampaignSpec | None:
    """Fill `changes` with what applying `spec` over `stored` does; returns the spec to store (the applied one
    and the columns kept), or None when it is refused."""
    refuse = changes.refusals.append
    for column in spec.columns:
        old = column.renamed_from
        # once renamed, the spec keeps saying so: a column of the old name made since is another column
        if old is not None and old in stored and column.name not in stored:
            changes.renamed[old] = column.name
    current = {changes.renamed.get(name, name): found for name, found in stored.items()}

    def pruning(name: str) -> bool:
        return prune is True or (not isinstance(prune, bool) and name in prune)

    kept_sources = []
    old_entries = {c.get("name"): c for c in old_source.get("columns", []) if isinstance(c, dict)}
    for name, found in current.items():
        if name in spec.names:
            continue
        held = _held(con, found)
        if held == 0 or pruning(name):
            changes.removed.append(name)
            if held:
                changes.pruned[name] = held
        elif found.kind == INPUT_KIND:
            changes.kept[name] = held
            kept_sources.append(old_entries.get(name) or {"name": name, "kind": INPUT_KIND, "type": found.value_type})
        else:
            refuse(
                SpecError(
                    f"the {found.kind} step is not in the spec but holds {held} value(s)",
                    hint=f"keep it in the spec, rename it with renamed_from, or {PRUNE_FIX}",
                    column=name,
                )
            )
    by_case = {n.lower(): n for n in spec.names}
    for name in changes.kept:
        if name.lower() in by_case:
            refuse(
                SpecError(
                    f"the name differs from the campaign's column '{name}' only in case (names are case-insensitive)",
                    hint=f"spell it '{name}', or rename that column with `renamed_from: {name}`",
                    column=by_case[name.lower()],
                )
            )
    for column in spec.columns:
        had = current.get(column.name)
        if had is None:
            changes.added.append(column.name)
            if not column.is_input:
                changes.new_steps.append(column.name)
            continue
        if had.kind == column.kind and had.value_type == column.value_type:
            if had.version != column.version:
                changes.changed.append(column.name)
            continue
        changes.changed.append(column.name)
        if had.kind == column.kind == INPUT_KIND:
            _check_retype(con, column, had, allow_lossy, changes)
            continue
        if had.kind == column.kind and _unwraps(had.value_type, column.value_type):
            if had.version == column.version:
                changes.changed.remove(column.name)  # the same values, stored as plain text: nothing to recompute
            changes.retyped.append(TypeChange(column.name, had.value_type, column.value_type))
            continue
        if not column.is_input and had.kind != column.kind:
            changes.new_steps.append(column.name)
        # A new kind, or a step's new value type, starts the column's cells anew: what they hold that cannot be
        # computed again (inputs, paid results of another kind, hand edits) needs a prune.
        held = _held(con, had) if column.kind != had.kind else _held(con, had, by_hand_only=True)
        if held and pruning(column.name):
            changes.pruned[column.name] = held
        elif held:
            what = "input column" if had.kind == INPUT_KIND else f"{had.kind} step"
            replaced = f"a {column.kind} column" if column.kind != had.kind else f"its new type {column.value_type}"
            refuse(
                SpecError(
                    f"the {what} holds {held} value(s) that {replaced} would replace",
                    hint=f"give the {column.kind} column a new name, or {PRUNE_FIX}",
                    column=column.name,
                )
            )
    if changes.refusals:
        return None
    if not kept_sources:
        return spec
    try:
        return parse_spec({**spec.source, "columns": [*_settled(spec), *kept_sources]}, check_code=False)
    except SpecError as err:  # a kept column the new spec cannot live beside
        refuse(err)
        return None


def stored_source(spec: CampaignSpec) -> str:
    """The spec as the campaign stores it: what it is, without the renames that made it so (`renamed_from` is
    an instruction to the apply that reads it; a column of the old name made later is another column)."""
    return json.dumps({**spec.source, "columns": _settled(spec)}, sort_keys=True)


def _settled(spec: CampaignSpec) -> list[Any]:
    """The spec's columns without `renamed_from`."""
    return [
        {k: v for k, v in column.items() if k != "renamed_from"} if isinstance(column, dict) else column
        for column in spec.source["columns"]
    ]


def _held(con: duckdb.DuckDBPyConnection, found: _Stored, *, by_hand_only: bool = False) -> int:
    """How many of a column's cells hold data that dropping it would lose: an input's values, a paid kind's
    results, and cells edited by hand (a free step's computed values are its inputs' to compute again); with
    `by_hand_only`, only the cells edited by hand."""
    if found.kind == INPUT_KIND:
        return int(scalar(con, f"SELECT count(*) FROM {found.table} WHERE value IS NOT NULL"))
    free = KINDS[found.kind].free or by_hand_only
    by_hand = "" if not free else f" AND {sql_in('status', HAND_SET)}"
    return int(scalar(con, f"SELECT count(*) FROM {found.table} WHERE value IS NOT NULL{by_hand}"))


def _unwraps(old: str, new: str) -> bool:
    """A step's values going from JSON to plain text (an http step with a `path`): kept in place, unwrapped."""
    return old == "JSON" and new == "VARCHAR"


def unwrap_values(con: duckdb.DuckDBPyConnection, table: str, *, memo: bool = True) -> None:
    """Turn a step table's JSON values into plain text in place: a JSON string becomes its text (no quotes), a
    number or boolean its JSON text, an object or list stays JSON text. With `memo` (the step's version is the
    same, so its cell keys still answer from the memo) the memo's answers for the table's keys are unwrapped the
    same way, so an answer taken from it reads as a new one would."""
    if memo:
        con.execute(
            f"""UPDATE memo SET value = json_extract_string(value, '$')
                WHERE key IN (SELECT key FROM {table} WHERE key IS NOT NULL) AND json_valid(value)"""
        )
    # the cast, then the unwrap as an update: a USING expression would be replayed from the WAL before the json
    # extension is loaded
    con.execute(f"ALTER TABLE {table} ALTER value TYPE VARCHAR")
    con.execute(f"UPDATE {table} SET value = json_extract_string(value, '$') WHERE value IS NOT NULL")


def upgrade_value_types(con: duckdb.DuckDBPyConnection) -> None:
    """Bring step tables of a workspace made by an older version to the type their spec now gives: an http step
    with a `path` stored JSON is now plain text (unwrap_values). A read when there is nothing to upgrade."""
    candidates = con.execute(
        """SELECT c.campaign_id, c.spec, k.name, k.table_name FROM columns k JOIN campaigns c USING (campaign_id)
           WHERE k.kind = 'http' AND k.value_type = 'JSON'"""
    ).fetchall()
    for campaign_id, source, name, table in candidates:
        entry = next((e for e in json.loads(source)["columns"] if isinstance(e, dict) and e.get("name") == name), {})
        if not entry.get("path"):
            continue
        unwrap_values(con, table)
        con.execute("UPDATE columns SET value_type = 'VARCHAR' WHERE campaign_id = ? AND name = ?", [campaign_id, name])
        # a catalog write: processes that keep the campaign's catalog (store/catalog.py) load it again
        con.execute("UPDATE campaigns SET updated_at = now() WHERE campaign_id = ?", [campaign_id])


def _check_retype(
    con: duckdb.DuckDBPyConnection, column: ColumnSpec, found: _Stored, allow_lossy: bool, changes: SpecChanges
) -> None:
    """Refuse a retype that cannot cast a stored value, and one that would change a value (unless
    `allow_lossy`): a value is kept exactly when casting it back gives it again."""
    new, old = column.value_type, found.value_type
    cast = f"TRY_CAST(value AS {new})"
    failing, failing_example, lossy, lossy_example = con.execute(
        f"""SELECT count(*) FILTER (WHERE {cast} IS NULL), any_value(value::VARCHAR) FILTER (WHERE {cast} IS NULL),
                count(*) FILTER (WHERE {cast} IS NOT NULL AND TRY_CAST({cast} AS {old}) IS DISTINCT FROM value),
                any_value(value::VARCHAR || ' -> ' || {cast}::VARCHAR)
                    FILTER (WHERE {cast} IS NOT NULL AND TRY_CAST({cast} AS {old}) IS DISTINCT FROM value)
            FROM {found.table} WHERE value IS NOT NULL"""
    ).fetchall()[0]
    changes.retyped.append(TypeChange(column.name, old, new, int(lossy), lossy_example))
    if failing:
        changes.refusals.append(
            SpecError(
                f"{failing} stored value(s) cannot become {new}, e.g. {failing_example!r}",
                hint="fix those values first, or keep the old type",
                column=column.name,
            )
        )
    elif lossy and not allow_lossy:
        changes.refusals.append(
            SpecError(
                f"changing {old} to {new} would change {lossy} stored value(s), e.g. {lossy_example}",
                hint=f"keep {old}, or accept the change with --allow-lossy",
                column=column.name,
            )
        )


def _create(con: duckdb.DuckDBPyConnection, spec: CampaignSpec) -> None:
    campaign_id = _next_id(con)
    rows_table = f"c{campaign_id}_rows"
    con.execute(rows_table_ddl(rows_table))
    con.execute(
        "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, 1, now(), now())",
        [campaign_id, spec.name, spec.description, stored_source(spec), rows_table],
    )
    for position, column in enumerate(spec.columns):
        _add_column(con, campaign_id, position, column)


def _write(
    con: duckdb.DuckDBPyConnection,
    campaign_id: int,
    spec: CampaignSpec,
    stored: dict[str, _Stored],
    changes: SpecChanges,
) -> None:
    """Write the planned changes: the campaign's spec (with the kept columns), renames, drops, retypes and new
    tables. Only tables of dropped columns are deleted; no history row is."""
    campaign = str(scalar(con, "SELECT name FROM campaigns WHERE campaign_id = ?", [campaign_id]))
    con.execute(
        "UPDATE campaigns SET spec = ?, description = ?, updated_at = now() WHERE campaign_id = ?",
        [stored_source(spec), spec.description, campaign_id],
    )
    for old, new in changes.renamed.items():  # a spec never renames a column into a name it still has
        con.execute("UPDATE columns SET name = ? WHERE campaign_id = ? AND name = ?", [new, campaign_id, old])
        follow_rename(con, campaign_id, campaign, old, new)
    current = {changes.renamed.get(name, name): found for name, found in stored.items()}
    for name in changes.removed:
        con.execute(f"DROP TABLE {current[name].table}")
        con.execute("DELETE FROM columns WHERE campaign_id = ? AND name = ?", [campaign_id, name])
        set_paused(con, campaign_id, name, False, "apply")  # a switch of a column that is gone (not history)
    for position, column in enumerate(spec.columns):
        found = current.get(column.name)
        if found is not None and found.kind == column.kind and found.value_type == column.value_type:
            con.execute(
                "UPDATE columns SET position = ?, version = ? WHERE campaign_id = ? AND name = ?",
                [position, column.version, campaign_id, column.name],
            )
            continue
        if found is not None and found.kind == column.kind and _unwraps(found.value_type, column.value_type):
            unwrap_values(con, found.table, memo=found.version == column.version)
            con.execute(
                "UPDATE columns SET position = ?, version = ?, value_type = ? WHERE campaign_id = ? AND name = ?",
                [position, column.version, column.value_type, campaign_id, column.name],
            )
            continue
        if found is not None and found.kind == column.kind == INPUT_KIND:
            con.execute(f"ALTER TABLE {found.table} ALTER value TYPE {column.value_type}")
            con.execute(
                "UPDATE columns SET position = ?, version = ?, value_type = ? WHERE campaign_id = ? AND name = ?",
                [position, column.version, column.value_type, campaign_id, column.name],
            )
            continue
        if found is not None:  # a new kind, or a step's new type: its cells are computed anew
            con.execute(f"DROP TABLE {found.table}")
            con.execute("DELETE FROM columns WHERE campaign_id = ? AND name = ?", [campaign_id, column.name])
        _add_column(con, campaign_id, position, column)


def _add_column(con: duckdb.DuckDBPyConnection, campaign_id: int, position: int, column: ColumnSpec) -> None:
    table = f"c{campaign_id}_{_next_id(con)}"
    ddl = input_table_ddl if column.is_input else step_table_ddl
    con.execute(ddl(table, column.value_type))
    con.execute(
        "INSERT INTO columns VALUES (?, ?, ?, ?, ?, ?, ?)",
        [campaign_id, column.name, position, column.kind, column.version, column.value_type, table],
    )


def _next_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "SELECT nextval('ids')"))
