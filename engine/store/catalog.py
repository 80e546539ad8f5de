"""The catalog: which campaigns exist, their specs, and the table that holds each column."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import duckdb

from engine.cells import INPUT_KIND
from engine.errors import NotFoundError, SpecError
from engine.spec import CampaignSpec, ColumnSpec, parse_spec
from engine.store.database import scalar
from engine.store.schema import input_table_ddl, rows_table_ddl, step_table_ddl


@dataclass(frozen=True)
class CampaignTables:
    """A campaign as stored: its spec and the table behind its row registry and each column."""

    campaign_id: int
    spec: CampaignSpec
    rows_table: str
    tables: dict[str, str]

    def column(self, name: str) -> ColumnSpec:
        try:
            return self.spec.column(name)
        except KeyError:
            raise NotFoundError(
                f"campaign '{self.spec.name}' has no column '{name}'",
                hint=f"use one of: {', '.join(self.spec.names)}",
            ) from None


@dataclass
class SpecChanges:
    """What applying a spec did to the stored campaign."""

    created: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # step versions changed: their cells are out of date

    @property
    def nothing(self) -> bool:
        return not (self.created or self.added or self.removed or self.changed)


@lru_cache(maxsize=64)
def _parse_stored(spec_json: str) -> CampaignSpec:
    return parse_spec(json.loads(spec_json), check_code=False)  # reads never import user code


def campaign_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT name FROM campaigns ORDER BY name").fetchall()]


def load_campaign(con: duckdb.DuckDBPyConnection, name: str) -> CampaignTables:
    found = con.execute("SELECT campaign_id, spec, rows_table FROM campaigns WHERE name = ?", [name]).fetchall()
    if not found:
        known = campaign_names(con)
        hint = f"apply its spec first (known: {', '.join(known)})" if known else "apply a spec with `runsheet apply`"
        raise NotFoundError(f"no campaign named '{name}'", hint=hint)
    campaign_id, spec_json, rows_table = found[0]
    tables = dict(
        con.execute("SELECT name, table_name FROM columns WHERE campaign_id = ?", [campaign_id]).fetchall()
    )
    return CampaignTables(campaign_id, _parse_stored(spec_json), rows_table, tables)


def store_spec(con: duckdb.DuckDBPyConnection, spec: CampaignSpec) -> SpecChanges:
    """Create or update the campaign to match `spec`: new tables for new columns, dropped tables for removed ones."""
    changes = SpecChanges()
    spec_json = json.dumps(spec.source, sort_keys=True)
    existing = scalar(con, "SELECT campaign_id FROM campaigns WHERE name = ?", [spec.name])
    if existing is None:
        campaign_id = _next_id(con)
        rows_table = f"c{campaign_id}_rows"
        con.execute(rows_table_ddl(rows_table))
        con.execute(
            "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, 1, now(), now())",
            [campaign_id, spec.name, spec.description, spec_json, rows_table],
        )
        changes.created = True
        stored: dict[str, tuple[str, str, str, str]] = {}
    else:
        campaign_id = existing
        con.execute(
            "UPDATE campaigns SET spec = ?, description = ?, updated_at = now() WHERE campaign_id = ?",
            [spec_json, spec.description, campaign_id],
        )
        stored = {
            name: (kind, version, value_type, table)
            for name, kind, version, value_type, table in con.execute(
                "SELECT name, kind, version, value_type, table_name FROM columns WHERE campaign_id = ?",
                [campaign_id],
            ).fetchall()
        }
    for name, (_, _, _, table) in stored.items():
        if name not in spec.names:
            con.execute(f"DROP TABLE {table}")
            con.execute("DELETE FROM columns WHERE campaign_id = ? AND name = ?", [campaign_id, name])
            changes.removed.append(name)
    for position, column in enumerate(spec.columns):
        old = stored.get(column.name)
        if old is not None and old[0] == column.kind and old[2] == column.value_type:
            if old[1] != column.version:
                changes.changed.append(column.name)
            con.execute(
                "UPDATE columns SET position = ?, version = ? WHERE campaign_id = ? AND name = ?",
                [position, column.version, campaign_id, column.name],
            )
            continue
        if old is not None and old[0] == column.kind == INPUT_KIND:
            _retype_input(con, column, old[3])
            con.execute(
                "UPDATE columns SET position = ?, version = ?, value_type = ? WHERE campaign_id = ? AND name = ?",
                [position, column.version, column.value_type, campaign_id, column.name],
            )
            changes.changed.append(column.name)
            continue
        if old is not None:  # a step's new kind or type: its computed cells are recomputed
            if old[0] == INPUT_KIND:
                _refuse_if_holding_data(con, column.name, old[3])
            con.execute(f"DROP TABLE {old[3]}")
            con.execute("DELETE FROM columns WHERE campaign_id = ? AND name = ?", [campaign_id, column.name])
            changes.changed.append(column.name)
        else:
            changes.added.append(column.name)
        table = f"c{campaign_id}_{_next_id(con)}"
        ddl = input_table_ddl if column.is_input else step_table_ddl
        con.execute(ddl(table, column.value_type))
        con.execute(
            "INSERT INTO columns VALUES (?, ?, ?, ?, ?, ?, ?)",
            [campaign_id, column.name, position, column.kind, column.version, column.value_type, table],
        )
    return changes


def add_input_columns(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, added: dict[str, str]
) -> CampaignTables:
    """Add input columns (name -> DuckDB type) through the spec, as `runsheet apply` would, so the catalog stays
    the one truth: each gets a new table of its own, no existing table is altered. Returns the campaign anew."""
    source = dict(tables.spec.source)
    source["columns"] = [
        *source["columns"],
        *({"name": name, "kind": INPUT_KIND, "type": value_type} for name, value_type in added.items()),
    ]
    store_spec(con, parse_spec(source))
    return load_campaign(con, tables.spec.name)


def _retype_input(con: duckdb.DuckDBPyConnection, column: ColumnSpec, table: str) -> None:
    bad = con.execute(
        f"SELECT count(*), any_value(value::VARCHAR) FROM {table} "
        f"WHERE value IS NOT NULL AND TRY_CAST(value AS {column.value_type}) IS NULL"
    ).fetchall()[0]
    if bad[0]:
        raise SpecError(
            f"{bad[0]} stored value(s) cannot become {column.value_type}, e.g. {bad[1]!r}",
            hint="fix those values first, or keep the old type",
            column=column.name,
        )
    con.execute(f"ALTER TABLE {table} ALTER value TYPE {column.value_type}")


def _refuse_if_holding_data(con: duckdb.DuckDBPyConnection, name: str, table: str) -> None:
    held = scalar(con, f"SELECT count(*) FROM {table} WHERE value IS NOT NULL")
    if held:
        raise SpecError(
            f"the input column holds {held} value(s) that a step would replace",
            hint="give the step a new name, or remove the input column in a separate apply first",
            column=name,
        )


def _next_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "SELECT nextval('ids')"))
