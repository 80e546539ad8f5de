"""The catalog: which campaigns exist, their specs, and the table that holds each column."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import duckdb

from engine.cells import INPUT_KIND
from engine.errors import NotFoundError
from engine.spec import CampaignSpec, ColumnSpec, parse_spec
from engine.store.changes import store_spec
from engine.store.spec_history import Origin, live_source, record_change


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


@lru_cache(maxsize=64)
def _parse_stored(spec_json: str) -> CampaignSpec:
    return parse_spec(json.loads(spec_json), check_code=False)  # reads never import user code


def campaign_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT name FROM campaigns ORDER BY name").fetchall()]


# A campaign as last loaded, by what identifies its spec and tables: its id, its row registry, a digest of its stored
# spec and when that was last written (`apply` writes the spec and changes the column tables in one statement's
# time: a column dropped and added back gets a new table, so the same spec written again is loaded again). Every
# write of `columns` sets `campaigns.updated_at` (store/changes.py: apply, and the upgrade made on open).
_LOADED: dict[tuple[int, str, str, object], CampaignTables] = {}
_LOADED_LIMIT = 64


def load_campaign(con: duckdb.DuckDBPyConnection, name: str) -> CampaignTables:
    """The campaign `name` as stored. Its spec and tables are read and parsed again only when the spec's digest or
    the time it was written (one small query, the same one that finds the campaign) differ from the last load's,
    whatever process wrote them: an edit then reads one row instead of the spec and the catalog."""
    found = con.execute(
        "SELECT campaign_id, rows_table, md5(spec::VARCHAR), updated_at FROM campaigns WHERE name = ?", [name]
    ).fetchall()
    if not found:
        known = campaign_names(con)
        hint = f"apply its spec first (known: {', '.join(known)})" if known else "apply a spec with `runsheet apply`"
        raise NotFoundError(f"no campaign named '{name}'", hint=hint)
    campaign_id, rows_table, digest, written = found[0]
    identity = (campaign_id, rows_table, digest, written)
    loaded = _LOADED.get(identity)
    if loaded is None:
        spec_json = con.execute("SELECT spec FROM campaigns WHERE campaign_id = ?", [campaign_id]).fetchall()[0][0]
        tables = dict(
            con.execute("SELECT name, table_name FROM columns WHERE campaign_id = ?", [campaign_id]).fetchall()
        )
        loaded = CampaignTables(campaign_id, _parse_stored(spec_json), rows_table, tables)
        if len(_LOADED) >= _LOADED_LIMIT:
            _LOADED.clear()
        _LOADED[identity] = loaded
    return loaded


def add_input_columns(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    added: dict[str, str],
    *,
    actor: str | None = None,
    origin: Origin = "import",
) -> CampaignTables:
    """Add input columns (name -> DuckDB type) through the spec, as `runsheet apply` would, so the catalog stays
    the one truth: each gets a new table of its own, no existing table is altered; the change goes into the spec
    history as made by `actor` through `origin`. Returns the campaign anew."""
    before = live_source(con, tables.spec.name)
    source = dict(tables.spec.source)
    source["columns"] = [
        *source["columns"],
        *({"name": name, "kind": INPUT_KIND, "type": value_type} for name, value_type in added.items()),
    ]
    store_spec(con, parse_spec(source))
    record_change(con, tables.spec.name, before, actor, origin)
    return load_campaign(con, tables.spec.name)
