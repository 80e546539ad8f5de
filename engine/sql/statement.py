"""What a user's statement is and what it may name, decided by DuckDB's own parser (`json_serialize_sql`), so
the check and the execution can never read the text differently.

A statement passes when it is one SELECT (or an EXPLAIN of one) whose every table reference is a view the
sandbox built (a campaign's table, `cells`, `runs`, `activity`, `campaigns`, `campaign.<name>`) or a CTE in
scope, and whose every table function is one that reads only its arguments (`range`, `unnest`, ...). Anything
else that could reach the attached workspace file (a qualified name, `duckdb_tables()`, `information_schema`,
`SHOW`, `query_table(...)`) is refused before it runs, whatever the file's alias is.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from engine.errors import QueryError
from engine.sql.needs import KEPT_MAX_CHARS

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
# Table functions that read nothing but their arguments.
VALUE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
PLAIN_REFS = frozenset({"JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "PIVOT"})
DESCRIBES = frozenset({"DESCRIBE", "SUMMARY"})
EXPLAIN = re.compile(r"\s*EXPLAIN\s+(ANALY[SZ]E\s+)?", re.IGNORECASE)
MAX_DEPTH = 1000  # DuckDB's own max_expression_depth
DEPTH_HINT = "flatten it: name the parts with WITH ... AS (...), or use IN (...) for long lists"
PARSED_KEPT = 256  # statements whose parse is kept (`parse_read`)

Tree = dict[str, Any]


@dataclass(frozen=True)
class ReadStatement:
    """One read statement as given (`source`), its text (no trailing `;`) and DuckDB's tree of the SELECT it
    runs or explains (shared by every caller that parses the same text: read it, never change it)."""

    source: str
    text: str
    tree: Tree


@dataclass(frozen=True)
class Reachable:
    """The views a statement may name, lower case: those in `main` (also reached unqualified) and those in the
    `campaign` schema; `listed` is every table a query could read, as error hints name them."""

    main: frozenset[str]
    campaign: frozenset[str]
    listed: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return list(self.listed) or sorted(self.main) + [f"campaign.{n}" for n in sorted(self.campaign)]


# Parses kept per (text, what), the most recently used last: DuckDB's parser gives the same tree for the same
# text, and parsing one (two calls into DuckDB and a JSON decode) costs a third of a point lookup.
_PARSED: OrderedDict[tuple[str, str], ReadStatement] = OrderedDict()
_PARSED_LOCK = threading.Lock()


def parse_read(con: duckdb.DuckDBPyConnection, sql: str, *, what: str = "query") -> ReadStatement:
    """`sql` as one read statement; otherwise a QueryError saying why not (it changes nothing). A statement that
    passed is kept (up to KEPT_MAX_CHARS long), and the same text is not parsed again; one that failed is parsed
    (and refused) each time."""
    if len(sql) > KEPT_MAX_CHARS:
        return _parse_read(con, sql, what)
    key = (sql, what)
    with _PARSED_LOCK:
        kept = _PARSED.get(key)
        if kept is not None:
            _PARSED.move_to_end(key)
            return kept
    parsed = _parse_read(con, sql, what)
    with _PARSED_LOCK:
        _PARSED[key] = parsed
        while len(_PARSED) > PARSED_KEPT:
            _PARSED.popitem(last=False)
    return parsed


def _parse_read(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> ReadStatement:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise _parse_error(err, what) from err
    if len(statements) != 1:
        raise QueryError(
            f"the {what} holds {len(statements)} statements; one is allowed", hint="run one SELECT at a time"
        )
    statement = statements[0]
    if statement.type not in READ_STATEMENTS:
        kind = statement.type.name.replace("_", " ")
        article = "an" if kind[0] in "AEIOU" else "a"
        raise QueryError(
            f"queries are read-only: {article} {kind} statement is not allowed",
            hint="write a SELECT; change data with runsheet import, set or run",
        )
    text = sql.strip().rstrip(";")
    select = text
    if statement.type == duckdb.StatementType.EXPLAIN:
        found = EXPLAIN.match(text)
        if found is None:
            raise QueryError(f"the {what} is an EXPLAIN the sandbox cannot read", hint="write EXPLAIN SELECT ...")
        select = text[found.end() :]
    return ReadStatement(sql, text, _tree(con, select, what))


def _tree(con: duckdb.DuckDBPyConnection, select: str, what: str) -> Tree:
    [(serialized,)] = con.execute("SELECT json_serialize_sql(?)", [select]).fetchall()
    try:
        parsed = json.loads(serialized)
    except RecursionError:
        raise QueryError(f"the {what} is nested too deeply", hint=DEPTH_HINT) from None
    if parsed.get("error"):
        message = str(parsed.get("error_message", "not a SELECT"))
        if "Only SELECT" in message:
            raise QueryError(
                f"the {what} is a statement the sandbox cannot read", hint="write it as one SELECT ... FROM ..."
            )
        raise _parse_error(duckdb.ParserException(message), what)
    statements = parsed.get("statements") or []
    if len(statements) != 1:
        raise QueryError(f"the {what} holds {len(statements)} statements; one is allowed", hint="run one SELECT")
    return statements[0]  # type: ignore[no-any-return]


def _parse_error(err: duckdb.Error, what: str) -> QueryError:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "expression depth" in text:
        return QueryError(f"the {what} is nested more than {MAX_DEPTH} levels deep", hint=DEPTH_HINT)
    return QueryError(f"the {what} is not valid SQL: {text}", hint="fix the SQL syntax")


def check_reach(statement: ReadStatement, reachable: Reachable) -> None:
    """Raise QueryError unless every table and table function `statement` names is one it may read."""
    for node, ctes in _table_refs(statement.tree):
        kind = node["type"]
        if kind == "BASE_TABLE":
            _check_table(node, ctes, reachable)
        elif kind == "TABLE_FUNCTION":
            _check_function(node, reachable)
        elif kind == "SHOW_REF":
            if node.get("show_type") not in DESCRIBES or node.get("table_name") or not node.get("query"):
                raise QueryError(
                    "SHOW lists the database's own tables, which queries cannot read",
                    hint="the tables are: " + ", ".join(reachable.names()),
                )
        elif kind not in PLAIN_REFS:
            raise QueryError(
                f"the query reads from a {kind}, which the sandbox does not allow", hint="write a plain SELECT"
            )


def _table_refs(tree: Tree) -> Iterator[tuple[Tree, frozenset[str]]]:
    """Every table reference in `tree` (what a FROM can hold: a dict with a `type`, an `alias` and a `sample`,
    unlike expressions, which have a `class`), with the CTE names in scope where it stands. Walked without
    recursion: a tree may be deep."""
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, ctes = stack.pop()
        if isinstance(node, list):
            stack.extend((item, ctes) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "RECURSIVE_CTE_NODE":
            ctes = ctes | {str(node.get("cte_name", "")).lower()}
        elif isinstance(node.get("type"), str) and "class" not in node and "alias" in node and "sample" in node:
            yield node, ctes
        entries = (node.get("cte_map") or {}).get("map") or []
        names = [str(e["key"]).lower() for e in entries]
        for i, entry in enumerate(entries):  # a CTE's body sees the CTEs before it, not itself
            stack.append((entry["value"], ctes | frozenset(names[:i])))
        inner = ctes | frozenset(names)
        stack.extend((value, inner) for key, value in node.items() if key != "cte_map")


def _check_table(node: Tree, ctes: frozenset[str], reachable: Reachable) -> None:
    catalog, schema = str(node.get("catalog_name") or ""), str(node.get("schema_name") or "").lower()
    name = str(node.get("table_name") or "")
    key = name.lower()
    if not catalog and (
        not schema
        and (key in ctes or key in reachable.main)
        or schema == "main"
        and key in reachable.main
        or schema == "campaign"
        and key in reachable.campaign
    ):
        return
    shown = ".".join(p for p in (catalog, schema, name) if p)
    raise QueryError(f"Table with name {shown} does not exist", hint="the tables are: " + ", ".join(reachable.names()))


def _check_function(node: Tree, reachable: Reachable) -> None:
    function = node.get("function") or {}
    name = str(function.get("function_name", "")).lower()
    if name in VALUE_FUNCTIONS and not function.get("catalog") and not function.get("schema"):
        return
    raise QueryError(
        f"queries cannot read or write files or call {name}()",
        hint="query the workspace's own tables: " + ", ".join(reachable.names()),
    )
