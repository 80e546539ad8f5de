"""Writing staged records into a campaign's tables: matching them by key, changing only the cells that differ,
appending the rest.

Tables are written in row id order and changed cells are updated in place, so a column's table keeps its rows
in the same order as the campaign's row registry; the query sandbox then lines columns up by position instead
of joining a million rows per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from engine.io.names import ROW_ID
from engine.sql.views import CampaignLayout, ColumnTable, wide_sql
from engine.store.catalog import CampaignTables
from engine.store.cells import aligned_tables
from engine.store.database import scalar
from engine.store.schema import quote


@dataclass(frozen=True)
class Changes:
    """The input cells an upsert changed: which columns, on which rows (sorted)."""

    columns: list[str]
    rows: list[int]


def match_rows(con: duckdb.DuckDBPyConnection, tables: CampaignTables, key: str, excluded: str | None) -> int:
    """Create `_match(_n, row_id)`: each staged record paired with every campaign row holding its key. Returns
    how many campaign rows matched."""
    where = [f"s._n NOT IN (SELECT _n FROM {excluded})"] if excluded else []
    if key == ROW_ID:
        pairs = "SELECT s._n, s.row_id FROM _staged s"
        where.append(f"s.row_id IN (SELECT row_id FROM {tables.rows_table})")
    else:
        pairs = f"SELECT s._n, e.row_id FROM _staged s JOIN {tables.tables[key]} e ON e.value = s.{quote(key)}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _match AS {pairs}" + (f" WHERE {' AND '.join(where)}" if where else ""))
    return int(scalar(con, "SELECT count(*) FROM _match"))


def update_matched(con: duckdb.DuckDBPyConnection, tables: CampaignTables, columns: list[str]) -> Changes:
    """Write the matched records' values where they differ from the stored ones (in place). One pass compares
    every column: the stored values are lined up by position where the tables allow (see module docstring)."""
    if not columns:
        return Changes([], [])
    db = str(scalar(con, "SELECT current_database()"))
    pairs = [(tables.rows_table, tables.tables[c]) for c in columns]
    layout = CampaignLayout(
        tables.spec.name,
        tables.rows_table,
        tuple(ColumnTable(c, "input", tables.tables[c], True) for c in columns),
        frozenset(aligned_tables(con, pairs, db)),
    )
    differs = {c: f"cur.{quote(c)} IS DISTINCT FROM s.{quote(c)}" for c in columns}
    flags = {c: quote("changed." + c) for c in columns}
    selected = ", ".join(f"s.{quote(c)}, ({differs[c]}) AS {flags[c]}" for c in columns)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _cmp AS SELECT m.row_id, {selected}
            FROM _match m JOIN _staged s USING (_n) JOIN ({wide_sql(layout, columns, db=db)}) cur
            ON cur.row_id = m.row_id WHERE {" OR ".join(f"({d})" for d in differs.values())}"""
    )
    counted = ", ".join(f"count(*) FILTER (WHERE {flags[c]})" for c in columns)
    counts = con.execute(f"SELECT {counted} FROM _cmp").fetchall()[0]
    changed_columns = []
    for column, count in zip(columns, counts, strict=True):
        if not count:
            continue
        changed_columns.append(column)
        table, flag = tables.tables[column], flags[column]
        updated = con.execute(
            f"UPDATE {table} SET value = c.{quote(column)} FROM _cmp c WHERE {table}.row_id = c.row_id AND c.{flag}"
        ).fetchall()
        if int(str(updated[0][0])) < count:  # some rows had no cell in this column yet
            con.execute(
                f"INSERT INTO {table} SELECT row_id, {quote(column)} FROM _cmp WHERE {flag} "
                f"AND row_id NOT IN (SELECT row_id FROM {table}) ORDER BY row_id"
            )
    rows = [r[0] for r in con.execute("SELECT row_id FROM _cmp ORDER BY row_id").fetchall()]
    return Changes(changed_columns, rows)


def append_rows(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables,
    columns: list[str],
    *,
    excluded: str | None,
    matched: bool,
) -> range:
    """Append the staged records that matched nothing (and were not excluded) as new rows, numbered in file
    order from the campaign's next row id. Returns the new ids."""
    start = int(scalar(con, "SELECT next_row_id FROM campaigns WHERE campaign_id = ?", [tables.campaign_id]))
    before = int(scalar(con, f"SELECT count(*) FROM {tables.rows_table}"))
    if excluded is None and not matched:
        # Every record is new: its row id follows from its position, and no numbering pass is needed.
        ids, source, join = f"{start} + s._n", "_staged s", ""
        count = int(scalar(con, "SELECT count(*) FROM _staged"))
    else:
        skip = [f"_n NOT IN (SELECT _n FROM {t})" for t in (excluded, "_match" if matched else None) if t]
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _fresh AS
                SELECT _n, {start - 1} + row_number() OVER (ORDER BY _n)
                AS row_id FROM _staged WHERE {" AND ".join(skip)}"""
        )
        ids, source, join = "f.row_id", "_fresh f", " JOIN _staged s USING (_n)"
        count = int(scalar(con, "SELECT count(*) FROM _fresh"))
    if not count:
        return range(start, start)
    order = "" if not join else " ORDER BY 1"
    con.execute(f"INSERT INTO {tables.rows_table} SELECT {ids}, now() FROM {source}{order}")
    for column in columns:
        con.execute(f"INSERT INTO {tables.tables[column]} SELECT {ids}, s.{quote(column)} FROM {source}{join}{order}")
    for spec in tables.spec.columns:
        if spec.is_input and spec.name not in columns:
            _pad(con, tables.tables[spec.name], before, f"SELECT {ids} FROM {source}{order}")
    con.execute("UPDATE campaigns SET next_row_id = ? WHERE campaign_id = ?", [start + count, tables.campaign_id])
    return range(start, start + count)


def _pad(con: duckdb.DuckDBPyConnection, table: str, rows_before: int, ids_sql: str) -> None:
    """Give an input column the file does not have an empty cell on each new row, if it has one on every old
    row: that keeps it lined up with the row registry (see the module docstring)."""
    if int(scalar(con, f"SELECT count(*) FROM {table}")) == rows_before:
        con.execute(f"INSERT INTO {table} SELECT * , NULL FROM ({ids_sql})")
