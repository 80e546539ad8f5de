"""Which columns an SQL expression or a Jinja template reads. Pure parsing, no I/O."""

from __future__ import annotations

import jinja2
import jinja2.meta
import sqlglot
from sqlglot import expressions as exp

# Names a template may use that are not columns.
TEMPLATE_GLOBALS = frozenset({"context", "loop", "range", "true", "false", "none"})


class ReferenceError_(ValueError):
    """An expression or template that cannot be parsed; the message says where."""


def sql_references(expression: str) -> set[str]:
    """The column names an SQL expression reads (the root of `a.b` is `a`; lambda parameters excluded)."""
    try:
        statements = sqlglot.parse(expression, dialect="duckdb")
    except sqlglot.errors.ParseError as err:
        raise ReferenceError_(_first_line(str(err))) from err
    statements = [s for s in statements if s is not None]
    if not statements:
        raise ReferenceError_("the expression is empty")
    if len(statements) > 1:
        raise ReferenceError_("a step expression must be one expression, not several statements")
    tree = statements[0]
    assert tree is not None
    if isinstance(tree, exp.Query | exp.DDL | exp.DML | exp.Command) or any(tree.find_all(exp.Query)):
        raise ReferenceError_("a step expression reads only its own row: no statements or subqueries")
    bound = {
        ident.name
        for lam in tree.find_all(exp.Lambda)
        for ident in lam.expressions
        if isinstance(ident, exp.Identifier | exp.Column)
    }
    names: set[str] = set()
    for column in tree.find_all(exp.Column):
        root = column.parts[0].name if column.parts else column.name
        if root and root not in bound:
            names.add(root)
    return names


def template_references(template: str) -> set[str]:
    """The column names a Jinja template reads (`{{ research.pain_points }}` reads `research`)."""
    env = jinja2.Environment()
    try:
        parsed = env.parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ReferenceError_(f"line {err.lineno}: {err.message}") from err
    return set(jinja2.meta.find_undeclared_variables(parsed)) - TEMPLATE_GLOBALS


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "could not parse"


ALL_CONTEXT = "*"
RECORD = "record"  # `{{ record }}` places the record's fields, unless the campaign has a column of that name


def context_references(template: str) -> set[str]:
    """The global-context documents a template reads: `{{ context.icp }}` reads `icp`. Any other use of `context`
    (a loop over it, `context[name]`) reads them all, written as {"*"}; a bare `{{ context }}` places the step's
    context part, whose documents the step's kind says (engine/cells/ai.py)."""
    parsed = _parse(template)
    named: set[str] = set()
    attribute_uses = 0
    for node in parsed.find_all(jinja2.nodes.Getattr):
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "context":
            named.add(node.attr)
            attribute_uses += 1
    placed = _bare_outputs(parsed).count("context")
    all_uses = sum(1 for n in parsed.find_all(jinja2.nodes.Name) if n.name == "context")
    return named | {ALL_CONTEXT} if all_uses > attribute_uses + placed else named


def places(template: str, name: str) -> bool:
    """Whether a template outputs `name` as it is, `{{ name }}` (not `{{ name.part }}` nor `{{ name | f }}`)."""
    return name in _bare_outputs(_parse(template))


def _bare_outputs(parsed: jinja2.nodes.Template) -> list[str]:
    return [
        node.name
        for output in parsed.find_all(jinja2.nodes.Output)
        for node in output.nodes
        if isinstance(node, jinja2.nodes.Name)
    ]


def _parse(template: str) -> jinja2.nodes.Template:
    try:
        return jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError as err:
        raise ReferenceError_(f"line {err.lineno}: {err.message}") from err
