"""The tables a user's SQL sees, as views over the attached workspace (attached under an alias of its own,
which user SQL may not name: engine/sql/statement.py).

- one wide table per campaign, named after it: `row_id` and each column's value (also `campaign.<name>`, which
  stays reachable when a campaign shares a name with the views below);
- `cells`: one row per (campaign, row, step column) with status, error, credits, tokens, latency and
  timestamps (cells never computed appear as `empty`);
- `runs`, `activity` (with the campaign's name), and `campaigns`;
- the action library: `actions`, `action_results` (each ad hoc run of an action on a record) and `documents`, with
  the action's and the campaign's names.

A column's table normally holds its rows in the row registry's order (see engine/io/writer.py). Such a table
is lined up with POSITIONAL JOIN, which costs nothing; any other is joined on row_id. Which is which is
checked in one scan of the row ids (the sandbox keeps the answer while the file is unchanged).

A positional join reads every row of every column before any WHERE applies: a point lookup on a million rows
(`WHERE email = '...'`) read them all, 30x slower than DuckDB on a plain table. So a statement whose WHERE
compares a column with constants gets its campaign's view joined on row_id instead (`wide_sql(lookup=True)`),
when DuckDB can still plan it well: DuckDB then filters that column's table first and reads the other tables
only in the row groups of the rows found. Tables lined up with the registry hold exactly its rows, so they are
joined with inner joins, which DuckDB plans well up to LOOKUP_ALIGNED_MAX columns; a view with any other table
needs left joins, planned well only up to LOOKUP_MAX_COLUMNS. That view is sorted by row_id, so its rows come
out in the same order as the positional one's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from engine.sql.needs import EVERYTHING, Needs
from engine.sql.statement import Reachable
from engine.store.cells import aligned_tables
from engine.store.schema import literal, quote

# Past this many columns a view joined on row_id is left to the positional join: DuckDB's planner then builds
# hash tables of whole columns instead of the rows found (a point lookup over 12 columns of a million rows: 3 s,
# against 150 ms positionally; up to 8 columns it stays with the rows found).
LOOKUP_MAX_COLUMNS = 8
# Inner joins (every table lined up) stay with the rows found further: a point lookup over 12 columns of a million
# rows 24 ms (positionally 170 ms), 32 columns 120 ms (330 ms); at 48 planning costs as much as reading, at 96 it
# costs 11 s.
LOOKUP_ALIGNED_MAX = 32
SYSTEM_VIEWS = ("cells", "runs", "activity", "campaigns", "actions", "action_results", "documents")
# (cells column, step table field, type when the field is missing)
CELL_FIELDS = (
    ("error_code", "error_code", "VARCHAR"),
    ("error_message", "error_message", "VARCHAR"),
    ("error_hint", "error_hint", "VARCHAR"),
    ("waiting_on", "waiting_on", "VARCHAR"),
    ("credits", "cost", "DOUBLE"),
    ("tokens", "tokens", "BIGINT"),
    ("latency_ms", "latency_ms", "DOUBLE"),
    ("attempts", "attempts", "INTEGER"),
    ("cached", "cached", "BOOLEAN"),
    ("provider_cost", "provider_cost", "DOUBLE"),
    ("started_at", "started_at", "TIMESTAMP"),
    ("finished_at", "finished_at", "TIMESTAMP"),
    ("run_id", "run_id", "BIGINT"),
)
STATE_FIELDS = (
    ("status", "status"),
    ("error_code", "error_code"),
    ("error_message", "error_message"),
    ("credits", "cost"),
)


@dataclass(frozen=True)
class ColumnTable:
    name: str
    kind: str
    table: str
    is_input: bool


@dataclass(frozen=True)
class CampaignLayout:
    """A campaign as the sandbox sees it: its row registry, its columns in spec order, which of their tables
    are lined up with the registry, and the alias of the attached workspace that holds them."""

    name: str
    rows_table: str
    columns: tuple[ColumnTable, ...]
    aligned: frozenset[str]
    db: str = "ws"

    def column(self, name: str) -> ColumnTable:
        return next(c for c in self.columns if c.name == name)

    @property
    def steps(self) -> list[ColumnTable]:
        return [c for c in self.columns if not c.is_input]


@dataclass
class Known:
    """What the sandbox learnt of one state of a workspace file, kept while the file is unchanged: its catalog's
    rows, which column tables line up with their registry, and the views made so far (name: SQL)."""

    campaigns: list[tuple[Any, ...]] | None = None
    columns: list[tuple[Any, ...]] | None = None
    aligned: dict[str, bool] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)


def read_layouts(
    con: duckdb.DuckDBPyConnection, needs: Needs = EVERYTHING, db: str = "ws", known: Known | None = None
) -> list[CampaignLayout]:
    """Every campaign's layout; which tables are lined up is checked only for the columns `needs` reads (and
    every step column when it reads `cells`). What `known` holds is not read again, and it keeps what is read."""
    known = known or Known()
    if known.campaigns is None or known.columns is None:
        known.campaigns = con.execute(
            f"SELECT campaign_id, name, rows_table FROM {db}.campaigns ORDER BY name"
        ).fetchall()
        known.columns = con.execute(
            f"SELECT campaign_id, name, kind, table_name FROM {db}.columns ORDER BY campaign_id, position"
        ).fetchall()
    campaigns, columns = known.campaigns, known.columns
    pairs = [
        (rows, table)
        for cid, name, rows in campaigns
        for ccid, column, kind, table in columns
        if ccid == cid and (needs.table(name) and needs.column(column) or needs.table("cells") and kind != "input")
    ]
    checked = known.aligned
    fresh = aligned_tables(con, [(rows, table) for rows, table in pairs if table not in checked], db)
    checked.update({table: table in fresh for _, table in pairs if table not in checked})
    aligned = {table for table, lined_up in checked.items() if lined_up}
    return [
        CampaignLayout(
            name=name,
            rows_table=rows,
            columns=tuple(
                ColumnTable(col, kind, table, kind == "input") for ccid, col, kind, table in columns if ccid == cid
            ),
            aligned=frozenset(t for ccid, _, _, t in columns if ccid == cid and t in aligned),
            db=db,
        )
        for cid, name, rows in campaigns
    ]


def _joined(
    layout: CampaignLayout,
    parts: list[tuple[ColumnTable, list[str], str]],
    db: str,
    *,
    by_row_id: bool = False,
    base: tuple[ColumnTable, list[str]] | None = None,
) -> str:
    """FROM clause: the row registry `r` (or `base`, a column lined up with it, and the fields it needs), then
    each (column, fields it needs, alias) lined up with it (all of them on row_id with `by_row_id`)."""
    positional, hashed = [], []
    # A table lined up with the registry holds each of its rows once: an inner join on row_id loses none.
    join = "JOIN" if by_row_id and all(c.table in layout.aligned for c, _, _ in parts) else "LEFT JOIN"
    for column, fields, alias in parts:
        wanted = ", ".join(quote(f) for f in fields)
        table = f"{db}.{quote(column.table)}"
        if column.table in layout.aligned and not by_row_id:
            positional.append(f"POSITIONAL JOIN (SELECT {wanted} FROM {table}) {alias}")
        else:
            hashed.append(f"{join} (SELECT row_id, {wanted} FROM {table}) {alias} ON {alias}.row_id = r.row_id")
    if base is not None:
        wanted = ", ".join(quote(f) for f in ["row_id", *base[1]])
        rows = f"(SELECT {wanted} FROM {db}.{quote(base[0].table)}) r "
    else:
        rows = f"{db}.{quote(layout.rows_table)} r "
    return rows + " ".join(positional + hashed)


def ordered(layout: CampaignLayout, names: list[str]) -> bool:
    """Whether the wide view over `names` comes out in row order without sorting."""
    return all(layout.column(n).table in layout.aligned for n in names)


def wide_sql(
    layout: CampaignLayout,
    names: list[str],
    *,
    with_state: bool = False,
    db: str | None = None,
    lookup: bool = False,
    anchor: str | None = None,
) -> str:
    """SELECT row_id and the value of each of `names` (and with `with_state`, each step's status, error code,
    error message and credits, as `<step>.status` ...), from the database `db` (default: the layout's). With
    `lookup`, for a statement that filters a column: every table joined on row_id (see the module docstring),
    to the table of `anchor` (one of `names`, lined up with the registry) instead of the registry if given."""
    parts: list[tuple[ColumnTable, list[str], str]] = []
    base = None
    selects = ["r.row_id"]
    for i, name in enumerate(names):
        column, alias = layout.column(name), f"j{i}"
        if lookup and name == anchor and column.table in layout.aligned:
            alias = "r"
        fields = ["value"]
        selects.append(f"{alias}.value AS {quote(name)}")
        if with_state and not column.is_input:
            fields += [f for _, f in STATE_FIELDS]
            for label, field_name in STATE_FIELDS:
                value = f"{alias}.{quote(field_name)}"
                if field_name == "status":
                    value = f"coalesce({value}, 'empty')"
                selects.append(f"{value} AS {quote(name + '.' + label)}")
        if alias == "r":
            base = (column, fields)
        else:
            parts.append((column, fields, alias))
    source = _joined(layout, parts, db or layout.db, by_row_id=lookup, base=base)
    return f"SELECT {', '.join(selects)} FROM {source}" + (" ORDER BY r.row_id" if lookup else "")


def cells_sql(layouts: list[CampaignLayout], present: dict[str, set[str]]) -> str:
    """The long `cells` table: every step cell of every campaign, `present` saying which fields each table
    has."""
    parts = []
    for layout in layouts:
        for step in layout.steps:
            have = present.get(step.table, set())
            fields = ["value", "status"] + [f for _, f, _ in CELL_FIELDS if f in have]
            selects = [
                literal(layout.name) + " AS campaign",
                "r.row_id",
                literal(step.name) + ' AS "column"',
                "coalesce(j.status, 'empty') AS status",
                "j.value::VARCHAR AS value",
            ] + [
                (f"j.{quote(f)}::{t}" if f in have else f"NULL::{t}") + f" AS {quote(label)}"
                for label, f, t in CELL_FIELDS
            ]
            source = _joined(layout, [(step, fields, "j")], layout.db)
            parts.append(f"SELECT {', '.join(selects)} FROM {source}")
    if not parts:
        empty = ", ".join(f"NULL::{t} AS {quote(label)}" for label, _, t in CELL_FIELDS)
        return (
            'SELECT NULL::VARCHAR AS campaign, NULL::BIGINT AS row_id, NULL::VARCHAR AS "column", '
            f"NULL::VARCHAR AS status, NULL::VARCHAR AS value, {empty} WHERE FALSE"
        )
    return " UNION ALL ".join(parts)


def create_views(
    con: duckdb.DuckDBPyConnection,
    layouts: list[CampaignLayout],
    needs: Needs = EVERYTHING,
    db: str = "ws",
    known: Known | None = None,
    reader: str | None = None,
) -> Reachable:
    """Create the views named in the module docstring, those `needs` reads (a campaign's with the columns it
    names), in the sandbox's own in-memory catalog (those `known` made already as they are now stay); returns
    their names, the only ones user SQL may read. With `reader` (who asks), the action library's views hold only
    the actions that person may see, and their results and documents (as the library lists them)."""
    made = Known().views if known is None else known.views

    def create(name: str, sql: str) -> None:
        if made.get(name) != sql:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
            made[name] = sql

    main: set[str] = set()
    campaign: set[str] = set()
    if not made:  # an instance that kept views has the schema
        con.execute("CREATE SCHEMA IF NOT EXISTS campaign")
    for layout in layouts:
        if not needs.table(layout.name):
            continue
        names = [c.name for c in layout.columns if needs.column(c.name)]
        looked_up = [n for n in [*names, "row_id"] if n.lower() in needs.looked_up]
        lined_up = all(layout.column(n).table in layout.aligned for n in names)
        lookup = bool(looked_up) and len(names) <= (LOOKUP_ALIGNED_MAX if lined_up else LOOKUP_MAX_COLUMNS)
        # The filtered column's table drives (one join fewer) when it holds every row; else the registry does.
        anchor = next((n for n in looked_up if n != "row_id" and layout.column(n).table in layout.aligned), None)
        if "row_id" in looked_up:
            anchor = None
        create(f"campaign.{quote(layout.name)}", wide_sql(layout, names, lookup=lookup, anchor=anchor))
        campaign.add(layout.name.lower())
        if layout.name not in SYSTEM_VIEWS:
            create(f"main.{quote(layout.name)}", f"SELECT * FROM campaign.{quote(layout.name)}")
            main.add(layout.name.lower())
    if needs.table("cells"):
        present: dict[str, set[str]] = {}
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ?", [db]
        ).fetchall():
            present.setdefault(table, set()).add(column)
        create("main.cells", cells_sql(layouts, present))
        main.add("cells")
    for name in ("runs", "activity"):
        if needs.table(name):
            create(
                f"main.{name}",
                f"SELECT c.name AS campaign, t.* FROM {db}.{name} t "
                f"LEFT JOIN {db}.campaigns c ON c.campaign_id = t.campaign_id",
            )
            main.add(name)
    if needs.table("campaigns"):
        create("main.campaigns", f"SELECT name, description, created_at, updated_at FROM {db}.campaigns")
        main.add("campaigns")
    if needs.table("actions"):
        create("main.actions", f"SELECT * FROM {db}.actions{_seen_by(reader, db, 'action_id')}")
        main.add("actions")
    for name in ("action_results", "documents"):
        if needs.table(name):
            create(
                f"main.{name}",
                f"SELECT a.name AS action, c.name AS campaign, t.* FROM {db}.{name} t "
                f"LEFT JOIN {db}.actions a ON a.action_id = t.action_id "
                f"LEFT JOIN {db}.campaigns c ON c.campaign_id = t.campaign_id" + _seen_by(reader, db, "t.action_id"),
            )
            main.add(name)
    listed = [layout.name for layout in layouts if layout.name not in SYSTEM_VIEWS] + list(SYSTEM_VIEWS)
    return Reachable(frozenset(main), frozenset(campaign), tuple(listed))


def _seen_by(reader: str | None, db: str, column: str) -> str:
    """A WHERE keeping the rows whose action (`column`) `reader` may see; nothing for the engine's own reads."""
    return "" if reader is None else f" WHERE {column} IN ({visible_actions(db, reader)})"


def visible_actions(db: str, reader: str) -> str:
    """SELECT the ids of the actions `reader` may see, by the action library's rule (engine/actions/library.py,
    `may_see`): every one for an admin (anyone, in a workspace without users), else those whose roles name the
    reader's role (a reader who is not a user is a viewer)."""
    role = (
        f"(SELECT CASE WHEN count(*) = 0 THEN 'admin' ELSE coalesce(any_value(role) FILTER (WHERE name = "
        f"{literal(reader)}), 'viewer') END FROM {db}.users)"
    )
    return (
        f"SELECT action_id FROM {db}.actions WHERE {role} = 'admin' OR list_contains(CAST(roles AS VARCHAR[]), {role})"
    )
