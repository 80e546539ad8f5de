"""What the builder reads before it writes, and shows it read: the reference of each step kind, the campaign's
columns with their types and a few sample values (one small page, never the whole table), the names of the
global context documents, and any API documentation the user attached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from engine.builder.reference import BUILDABLE, reference
from engine.graph.fate import CURRENT, sql_in
from engine.store.catalog import CampaignTables
from engine.store.context import read_context
from engine.store.schema import quote

SAMPLE_ROWS = 3  # the rows a preview runs on, and whose values the builder is shown
MAX_COLUMNS = 40  # columns shown with samples; a wider campaign lists the rest by name and type
MAX_VALUE_CHARS = 80  # a sample value is cut to this many characters
MAX_ATTACHED_CHARS = 12_000  # attached documentation is cut to this many characters


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    type: str
    samples: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    """Everything the builder was shown for one turn; `sources` names each, for the reply to show."""

    kinds: tuple[str, ...]
    reference: str
    campaign: str | None = None
    columns: tuple[Column, ...] = ()
    sample_rows: tuple[int, ...] = ()
    context: tuple[str, ...] = ()
    attached: tuple[tuple[str, str], ...] = ()  # (name, text)
    records: int | None = None  # how many records the campaign has

    def sources(self) -> list[str]:
        read = [f"the reference of the {', '.join(self.kinds)} steps"]
        if self.campaign is not None:
            read.append(
                f"campaign '{self.campaign}': {len(self.columns)} columns with their types, "
                f"sample values of {len(self.sample_rows)} records"
            )
        read.append(f"global context documents: {', '.join(self.context) or '(none)'}")
        read += [f"attached documentation: {name}" for name, _ in self.attached]
        return read

    def as_text(self) -> str:
        """The reading as the model is shown it."""
        parts = ["# Runsheet step reference", self.reference]
        if self.campaign is not None:
            parts.append(
                f"# Campaign '{self.campaign}' ({self.records} records): columns (name, kind, type, sample values)"
            )
            parts += [
                f"- {c.name} ({c.kind}, {c.type}): {' | '.join(c.samples) or '(no values yet)'}" for c in self.columns
            ]
        names = ", ".join(self.context) or "(none)"
        parts.append(f"# Global context documents (read in prompts as {{{{ context.NAME }}}}): {names}")
        for name, text in self.attached:
            parts.append(f"# Attached documentation: {name}\n{text}")
        return "\n".join(parts)


def read_workspace(
    con: duckdb.DuckDBPyConnection,
    tables: CampaignTables | None,
    attached: dict[str, str] | None = None,
    skip: str | None = None,
) -> Reading:
    """The reading for one turn (`skip`: the column the action itself is in the campaign, not shown as input)."""
    documents = tuple(read_context(con))
    cut = tuple((name, text[:MAX_ATTACHED_CHARS]) for name, text in (attached or {}).items())
    if tables is None:
        return Reading(BUILDABLE, reference(), context=documents, attached=cut)
    names = [c.name for c in tables.spec.columns if c.name != skip][:MAX_COLUMNS]
    row_ids = sample_rows(con, tables)
    records = sample_values(con, tables, row_ids, names)
    columns = tuple(
        Column(
            name=c.name,
            kind=c.kind,
            type=c.value_type,
            samples=tuple(_shown(r.get(c.name)) for r in records if r.get(c.name) not in (None, "")),
        )
        for c in tables.spec.columns
        if c.name != skip
    )
    [(count,)] = con.execute(f"SELECT count(*) FROM {tables.rows_table}").fetchall()
    return Reading(BUILDABLE, reference(), tables.spec.name, columns, tuple(row_ids), documents, cut, int(count))


def sample_rows(con: duckdb.DuckDBPyConnection, tables: CampaignTables, limit: int = SAMPLE_ROWS) -> list[int]:
    """The first `limit` records' row ids."""
    rows = con.execute(f"SELECT row_id FROM {tables.rows_table} ORDER BY row_id LIMIT ?", [limit]).fetchall()
    return [int(r[0]) for r in rows]


def sample_values(
    con: duckdb.DuckDBPyConnection, tables: CampaignTables, row_ids: list[int], names: list[str]
) -> list[dict[str, Any]]:
    """The values of `names` in the records `row_ids` (a step's only where it is current), in one query."""
    if not row_ids:
        return []
    selects, joins = ["r.row_id"], []
    for i, name in enumerate(names):
        alias = f"t{i}"
        joins.append(f"LEFT JOIN {tables.tables[name]} {alias} ON {alias}.row_id = r.row_id")
        value = f"{alias}.value"
        if not tables.column(name).is_input:
            value = f"CASE WHEN {sql_in(alias + '.status', CURRENT)} THEN {alias}.value END"
        selects.append(f"{value} AS {quote(name)}")
    cursor = con.execute(
        f"SELECT {', '.join(selects)} FROM {tables.rows_table} r {' '.join(joins)} "
        "WHERE r.row_id IN (SELECT unnest(?::BIGINT[])) ORDER BY r.row_id",
        [row_ids],
    )
    return [dict(zip(names, row[1:], strict=True)) for row in cursor.fetchall()]


def _shown(value: Any) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
