"""Finding a record to act on: by row id, or by what a person types (a name, an email, a domain), matched
against the record's text fields."""

from __future__ import annotations

from typing import Any

import duckdb

from engine.errors import NotFoundError
from engine.store.catalog import CampaignTables
from engine.store.schema import quote

TEXT_TYPES = ("VARCHAR", "JSON")
SEARCH_FIELDS = 12  # the first text fields searched; a record's name, email and domain come first in practice


def text_fields(tables: CampaignTables) -> list[str]:
    return [c.name for c in tables.spec.columns if c.is_input and c.value_type in TEXT_TYPES][:SEARCH_FIELDS]


def search_records(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, text: str, limit: int = 20
) -> list[dict[str, Any]]:
    """Records whose row id is `text`, or one of whose text fields contains it (case-insensitive), row id first;
    each with its row id and its text fields."""
    fields = text_fields(tables)
    selects = ["r.row_id"] + [f"{quote('f' + str(i))}.value AS {quote(f)}" for i, f in enumerate(fields)]
    joins = " ".join(f"LEFT JOIN {tables.tables[f]} {quote('f' + str(i))} USING (row_id)" for i, f in enumerate(fields))
    needle = text.strip()
    matches = [f"contains(lower({quote('f' + str(i))}.value::VARCHAR), lower(?))" for i in range(len(fields))]
    params: list[Any] = [needle] * len(fields)
    if needle.isdigit():
        matches.insert(0, "r.row_id = ?")
        params.insert(0, int(needle))
    where = " OR ".join(matches) if needle else "true"
    cursor = con.execute(
        f"SELECT {', '.join(selects)} FROM {tables.rows_table} r {joins} WHERE {where} ORDER BY r.row_id LIMIT ?",
        [*(params if needle else []), limit],
    )
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def resolve_record(con: duckdb.DuckDBPyConnection, tables: CampaignTables, key: str | int) -> int:
    """The row id `key` names: a row id, or a value that exactly one record holds in a text field (any case)."""
    text = str(key).strip()
    if text.isdigit():
        found = con.execute(f"SELECT row_id FROM {tables.rows_table} WHERE row_id = ?", [int(text)]).fetchall()
        if found:
            return int(found[0][0])
    fields = text_fields(tables)
    union = " UNION ".join(
        f"SELECT row_id FROM {tables.tables[f]} WHERE lower(value::VARCHAR) = lower(?)" for f in fields
    )
    rows = (
        con.execute(f"SELECT DISTINCT row_id FROM ({union}) ORDER BY row_id LIMIT 6", [text] * len(fields)).fetchall()
        if fields
        else []
    )
    if len(rows) == 1:
        return int(rows[0][0])
    if not rows:
        raise NotFoundError(
            f"campaign '{tables.spec.name}' has no record {text!r} (by row id, or a name, email or domain it holds)",
            hint="search with `runsheet action find CAMPAIGN TEXT`, then give the row id",
        )
    ids = ", ".join(str(r[0]) for r in rows[:5])
    raise NotFoundError(
        f"{text!r} names more than one record of campaign '{tables.spec.name}' (rows {ids})",
        hint="give the row id instead",
    )
