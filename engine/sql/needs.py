"""Which views and columns a statement reads, so the sandbox builds only those (a wide view of a million rows
costs nothing until read, but checking how its tables line up does)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp

_ALL_COLUMN_NODES = (exp.Pivot, exp.Columns, exp.Command, exp.Describe, exp.Summarize)


@dataclass(frozen=True)
class Needs:
    """Names (lower case) of the views a statement reads, and of the columns it names; None means all.
    `looked_up` names the columns a WHERE compares with constants (`email = 'a@b.c'`, `id IN (1, 2)`): a view
    with one of them is built so that DuckDB filters that column's table first (views.py, `wide_sql`)."""

    tables: frozenset[str] | None = None
    columns: frozenset[str] | None = None
    looked_up: frozenset[str] = frozenset()

    def table(self, name: str) -> bool:
        return self.tables is None or name.lower() in self.tables

    def column(self, name: str) -> bool:
        return self.columns is None or name.lower() in self.columns

    def plus_tables(self, *names: str) -> Needs:
        if self.tables is None:
            return self
        return Needs(self.tables | {n.lower() for n in names}, self.columns, self.looked_up)


EVERYTHING = Needs()


KEPT_MAX_CHARS = 20_000  # longer statements (a generated IN list, say) are parsed each time, not kept


def needs_of(sql: str) -> Needs:
    """What `sql` reads. Anything the parser cannot follow (a star outside count(*), COLUMNS(...), PIVOT, a
    whole row used as a value, an EXPLAIN, DESCRIBE or SUMMARIZE) means every column; a parse failure (or a
    tree too deep for it to walk) means everything. Kept per text up to KEPT_MAX_CHARS (Needs is immutable):
    parsing costs as much as a point lookup, and the UI and scripts send the same statements again."""
    return _kept_needs(sql) if len(sql) <= KEPT_MAX_CHARS else _needs_of(sql)


@lru_cache(maxsize=256)
def _kept_needs(sql: str) -> Needs:
    return _needs_of(sql)


def _needs_of(sql: str) -> Needs:
    parser_log = logging.getLogger("sqlglot")
    level = parser_log.level
    parser_log.setLevel(logging.CRITICAL)  # it warns when it falls back to a raw command
    try:
        trees = [t for t in sqlglot.parse(sql, dialect="duckdb") if t is not None]
        if not trees or any(isinstance(t, exp.Command) for t in trees):
            return EVERYTHING
        return _needs_of_trees(trees)
    except (sqlglot.errors.SqlglotError, RecursionError):
        return EVERYTHING
    finally:
        parser_log.setLevel(level)


def _needs_of_trees(trees: list[exp.Expr]) -> Needs:
    tables = {t.name.lower() for tree in trees for t in tree.find_all(exp.Table)}
    named = {c.name.lower() for tree in trees for c in tree.find_all(exp.Column)}
    # Every identifier counts as a column it may read (USING (email) names no Column node): a superset is
    # safe.
    columns = named | {i.name.lower() for tree in trees for i in tree.find_all(exp.Identifier)}
    whole = bool(named & tables) or any(
        isinstance(node, _ALL_COLUMN_NODES) or isinstance(node, exp.Star) and not isinstance(node.parent, exp.AggFunc)
        for tree in trees
        for node in tree.walk()
    )
    return Needs(frozenset(tables), None if whole else frozenset(columns), _looked_up(trees))


def _looked_up(trees: list[exp.Expr]) -> frozenset[str]:
    """The columns that some WHERE's conjunct compares for equality with constants."""
    found = set()
    for tree in trees:
        for where in tree.find_all(exp.Where):
            condition = where.this
            for part in condition.flatten() if isinstance(condition, exp.And) else [condition]:
                if isinstance(part, exp.EQ):
                    sides = [part.this, part.expression]
                    column = next((s for s in sides if isinstance(s, exp.Column)), None)
                    constants = [s for s in sides if s is not column]
                elif isinstance(part, exp.In) and not part.args.get("query"):
                    column, constants = part.this, list(part.expressions)
                else:
                    continue
                if isinstance(column, exp.Column) and constants and all(map(_constant, constants)):
                    found.add(column.name.lower())
    return frozenset(found)


def _constant(node: exp.Expr) -> bool:
    return not any(isinstance(n, exp.Column | exp.Query | exp.Subquery | exp.Star) for n in node.walk())
