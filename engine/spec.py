"""Campaign specs: YAML in, a validated CampaignSpec out, or a SpecError that names the column and the fix.

A spec is refused as a whole: nothing about it is applied unless every column is valid.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.action_columns import LibraryStep, expand_actions
from engine.cells import INPUT_KIND, KINDS, StepOptions, kind_named
from engine.cells.base import OptionValueError
from engine.cells.python import IMPORT_FIX, PythonOptions, resolve
from engine.errors import SpecError
from engine.graph import ColumnGraph, ColumnNode, ReferenceError_, sql_references
from engine.graph.references import RECORD
from engine.types import NAME_PATTERN

# Names that mean something already, compared case-insensitively (DuckDB folds the case of identifiers):
# `row_id` in every table and view, `context` and `secrets` in templates, and the fields a run computes beside
# a step's inputs (engine/run/executor.py, engine/run/verdicts.py), which an input of the same name would shadow.
RESERVED = frozenset(
    {
        "row_id",
        "context",
        "secrets",
        "key",
        "old_key",
        "old_status",
        "old_value",
        "old_code",
        "new_value",
        "verdict",
        "present",
        "memo_value",
        "memo_status",
        "batch_status",
        "batch_code",
        "batch_message",
        "batch_cost",
        "_present",
        "_run_if",
        "_missing",
    }
)
# A step's status and run id are read beside its value as s_<step> and r_<step> (engine/run/executor.py).
SHADOW_PREFIXES = ("s_", "r_")
MAX_DEPTH = 64  # nesting a spec may use (lists and mappings); deeper is refused before anything recurses


class InputOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "VARCHAR"
    description: str = ""


@dataclass(frozen=True)
class ColumnSpec:
    """One validated column: its kind, options, dependencies, version and value type."""

    name: str
    kind: str
    options: StepOptions | InputOptions
    deps: tuple[str, ...]
    version: str
    value_type: str
    context: tuple[str, ...] = ()  # global-context documents the step reads ("*": all of them)
    renamed_from: str | None = None  # the column's earlier name: applying keeps its cells, keys and history

    @property
    def is_input(self) -> bool:
        return self.kind == INPUT_KIND

    @property
    def run(self) -> str:
        """The step's run mode (auto or manual); inputs count as auto."""
        return "auto" if isinstance(self.options, InputOptions) else self.options.run

    @property
    def enabled(self) -> bool:
        """Whether the step is switched on; inputs always are."""
        return isinstance(self.options, InputOptions) or self.options.enabled

    @property
    def free(self) -> bool:
        """Whether the step is computed at once when its inputs change (formula, python); inputs are no step."""
        return not self.is_input and KINDS[self.kind].free


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign: its columns in spec order and the graph over them."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    graph: ColumnGraph
    source: dict[str, Any]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def record_fields(self) -> tuple[str, ...]:
        """The record's fields: the input columns, in spec order (what a step that reads the record is given)."""
        return tuple(c.name for c in self.columns if c.is_input)


def load_spec(path: str | Path, actions: dict[str, LibraryStep] | None = None) -> CampaignSpec:
    """Read and validate a YAML spec file (`actions`: the library its columns may name, see `parse_spec`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read {path}: {err.strerror}", hint="check the path") from err
    return parse_spec(text, actions=actions)


def reserved_name(name: str) -> bool:
    """Whether `name` may not name a column because the engine gives it a meaning already (RESERVED), in any
    case: the one rule for specs, Save to Record fields and imported headers."""
    return name.lower() in RESERVED


def parse_spec(
    source: str | dict[str, Any], *, check_code: bool = True, actions: dict[str, LibraryStep] | None = None
) -> CampaignSpec:
    """Validate a spec given as YAML text or an already-parsed mapping. `check_code` imports each python step's
    function to refuse a missing one; a stored spec is read without it, so reads never need user code. With
    `actions` (the workspace's library, by lower-cased name), a column may name one (`action: NAME`) instead of
    repeating its definition: see `expand_actions`."""
    data = _parse_yaml(source) if isinstance(source, str) else source
    _check_depth(data)
    if actions is not None:
        data = expand_actions(data, actions)
    if not isinstance(data, dict):
        raise SpecError("a spec must be a mapping with 'campaign' and 'columns'", hint="see campaigns/outbound.yaml")
    unknown = set(data) - {"campaign", "description", "columns"}
    if unknown:
        raise SpecError(f"unknown top-level key(s): {', '.join(sorted(unknown))}", hint="remove them")
    name = data.get("campaign")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SpecError(
            f"campaign name {name!r} is missing or not a plain name",
            hint="use letters, digits and underscores, starting with a letter",
        )
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise SpecError("'columns' must be a non-empty list", hint="list the campaign's columns under 'columns:'")
    parsed, fields = _add_record_readers([_parse_column(raw, i, check_code) for i, raw in enumerate(raw_columns)])
    renamed = _renames(raw_columns, [p[0] for p in parsed])
    _check_names_apart([p[0] for p in parsed], {p[0] for p in parsed if p[1] != INPUT_KIND})
    graph = ColumnGraph.build(
        ColumnNode(
            name=name_,
            is_input=kind == INPUT_KIND,
            run="auto" if kind == INPUT_KIND else options.run,  # type: ignore[union-attr]
            free=kind == INPUT_KIND or KINDS[kind].free,
            code=isinstance(options, PythonOptions),
            screens=kind != INPUT_KIND and options.run == "manual" and bool(options.run_if),  # type: ignore[union-attr]
            deps=deps,
        )
        for name_, kind, options, deps in parsed
    )
    types = _bind_types(parsed, graph)
    names = frozenset(p[0] for p in parsed)
    columns = tuple(
        ColumnSpec(
            name=name_,
            kind=kind,
            options=options,
            deps=deps,
            version=_version(kind, options, fields.get(name_, ())),
            value_type=types[name_],
            context=_context_names(kind, options, names),
            renamed_from=renamed.get(name_),
        )
        for name_, kind, options, deps in parsed
    )
    return CampaignSpec(
        name=name, description=str(data.get("description", "")), columns=columns, graph=graph, source=data
    )


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise SpecError(f"the spec is not valid YAML{line}", hint="fix the YAML syntax") from err
    except RecursionError:  # the YAML parser recurses once per level of nesting
        raise _too_deep() from None


def _check_depth(data: Any) -> None:
    """Refuse a spec nested deeper than MAX_DEPTH, walking it without recursion (everything after this
    point, from validation to JSON, recurses once per level)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise _too_deep()
                stack.append((child, depth + 1))


def _too_deep() -> SpecError:
    return SpecError(
        f"the spec nests lists or mappings more than {MAX_DEPTH} levels deep",
        hint="flatten it: a spec needs a few levels, a JSON schema a dozen at most",
    )


def _renames(raw_columns: list[Any], names: list[str]) -> dict[str, str]:
    """Each column's `renamed_from` (new name -> old name), checked against the spec's other names."""
    renamed: dict[str, str] = {}
    sources: dict[str, str] = {}
    lower = {n.lower(): n for n in names}
    for raw, name in zip(raw_columns, names, strict=True):
        old = raw.get("renamed_from")
        if old is None:
            continue
        if not isinstance(old, str) or not NAME_PATTERN.match(old):
            raise SpecError(
                f"renamed_from {old!r} is not a column name", hint="give the column's earlier name", column=name
            )
        if lower.get(old.lower(), name) != name:
            raise SpecError(
                f"renamed_from '{old}', a name the spec still has",
                hint=f"remove renamed_from, or remove or rename the column '{lower[old.lower()]}'",
                column=name,
            )
        if old in sources:
            raise SpecError(
                f"renamed_from '{old}', as '{sources[old]}' is",
                hint="rename one column from a name, not two",
                column=name,
            )
        sources[old] = name
        if old != name:
            renamed[name] = old
    return renamed


def _check_names_apart(names: list[str], steps: set[str]) -> None:
    """DuckDB compares names without case, and a run reads a step's status as s_<step>: refuse names that
    differ only in case, and names a run would read in place of a step's status or run."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise SpecError(
                f"the name differs from '{other}' only in case (names are case-insensitive)",
                hint="rename one of them",
                column=name,
            )
    step_names = {s.lower(): s for s in steps}
    for name in names:
        folded = name.lower()
        for prefix in SHADOW_PREFIXES:
            step = step_names.get(folded.removeprefix(prefix)) if folded.startswith(prefix) else None
            if step is not None:
                raise SpecError(
                    f"the name '{name}' is how a run reads the state of step '{step}'",
                    hint=f"rename it, e.g. {name[len(prefix) :]}_{prefix.rstrip('_')}",
                    column=name,
                )


def _parse_column(
    raw: Any, index: int, check_code: bool = True
) -> tuple[str, str, StepOptions | InputOptions, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise SpecError(f"column #{index + 1} is not a mapping", hint="write each column as 'name: ..., kind: ...'")
    raw = dict(raw)
    name = raw.pop("name", None)
    raw.pop("renamed_from", None)  # read by _renames: not an option of the column
    from_action = raw.pop("from_action", None)  # the library action it was expanded from: provenance, no option
    if from_action is not None and (not isinstance(from_action, int) or isinstance(from_action, bool)):
        raise SpecError(
            f"from_action {from_action!r} is not an action id",
            hint="write `action: NAME` to take a library action; from_action is written by apply",
            column=raw.get("name") if isinstance(raw.get("name"), str) else None,
        )
    if "action" in raw:
        raise SpecError(
            f"the column takes library action {raw['action']!r}, which only a workspace can read",
            hint="apply the spec to a workspace (`runsheet apply`), which takes the action's definition",
            column=raw.get("name") if isinstance(raw.get("name"), str) else None,
        )
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SpecError(
            f"column #{index + 1} has a missing or invalid name {name!r}",
            hint="use letters, digits and underscores, starting with a letter",
        )
    if reserved_name(name):
        raise SpecError(
            f"column #{index + 1} has the reserved name {name!r} (the engine uses it, in any case)",
            hint=f"rename it, e.g. {name}_",
        )
    kind = raw.pop("kind", None)
    if kind != INPUT_KIND and kind not in KINDS:
        known = ", ".join([INPUT_KIND, *KINDS])
        raise SpecError(f"unknown kind {kind!r}", hint=f"use one of: {known}", column=name)
    model = InputOptions if kind == INPUT_KIND else kind_named(kind).options
    try:
        options = model.model_validate(raw)
    except ValidationError as err:
        raise _option_error(err, name, kind, model) from err
    if kind == INPUT_KIND:
        return name, kind, options, ()
    assert isinstance(options, StepOptions)
    deps = _dependencies(name, kind, options)
    if check_code and isinstance(options, PythonOptions):
        try:
            resolve(options.function)
        except LookupError as err:
            raise SpecError(
                f"bad value for option 'function': {err}",
                hint=IMPORT_FIX,
                column=name,
            ) from err
    return name, kind, options, deps


def _option_error(err: ValidationError, column: str, kind: str, model: type[BaseModel]) -> SpecError:
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = ".".join(str(part) for part in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        return SpecError(f"unknown option '{field}' for kind {kind}", hint=f"use one of: {allowed}", column=column)
    if first["type"] == "missing":
        return SpecError(f"missing option '{field}' for kind {kind}", hint=f"add '{field}:'", column=column)
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, OptionValueError):
        return SpecError(f"bad value for option '{field}': {cause}", hint=cause.hint, column=column)
    return SpecError(f"bad value for option '{field}': {first['msg']}", hint=f"fix '{field}'", column=column)


def _dependencies(name: str, kind: str, options: StepOptions) -> tuple[str, ...]:
    try:
        found = set(options.inputs) if options.inputs is not None else kind_named(kind).references(options)
        if options.run_if:
            found |= sql_references(options.run_if)
    except ReferenceError_ as err:
        what = "template" if kind == "ai" else "SQL expression"
        raise SpecError(f"invalid {what}: {err}", hint=f"fix the {what}'s syntax", column=name) from err
    found |= set(options.required)
    return tuple(sorted(found))


Parsed = tuple[str, str, StepOptions | InputOptions, tuple[str, ...]]


def _add_record_readers(parsed: list[Parsed]) -> tuple[list[Parsed], dict[str, tuple[str, ...]]]:
    """Make a step that reads the whole record (engine/cells/ai.py, context injection) depend on every input
    column, so its keys cover the values it is given; refuse a step that reads no column at all. Returns the
    columns and, for each step that reads the record, the record's fields in spec order (they enter its version:
    a new field or a new order changes what it is given)."""
    names = frozenset(p[0] for p in parsed)
    fields = tuple(p[0] for p in parsed if p[1] == INPUT_KIND)
    resolved: list[Parsed] = []
    readers: dict[str, tuple[str, ...]] = {}
    for name, kind, options, deps in parsed:
        if kind != INPUT_KIND:
            assert isinstance(options, StepOptions)
            if kind_named(kind).reads_record(options, names):
                deps = tuple(sorted((set(deps) - ({RECORD} - names)) | set(fields)))
                readers[name] = fields
            elif kind != "formula" and options.inputs is None and not deps:
                raise SpecError(
                    f"a {kind} step needs 'inputs'", hint="list the columns it reads under 'inputs:'", column=name
                )
        resolved.append((name, kind, options, deps))
    return resolved, readers


def _context_names(kind: str, options: StepOptions | InputOptions, names: frozenset[str]) -> tuple[str, ...]:
    if kind == INPUT_KIND:
        return ()
    return tuple(sorted(kind_named(kind).context_names(options, names)))


def _version(kind: str, options: StepOptions | InputOptions, record: tuple[str, ...] = ()) -> str:
    """A stable hash of everything in the spec that decides a cell's value (not run mode or enabled): the options
    and, for a step that reads the whole record, the record's fields in order."""
    unversioned = options.unversioned if isinstance(options, StepOptions) else frozenset()
    payload = options.model_dump(mode="json", exclude={"run", "enabled", "description", *unversioned})
    for option in options.versioned_when_set if isinstance(options, StepOptions) else ():
        if payload.get(option) is None:
            del payload[option]
    versioned: dict[str, Any] = {"kind": kind, "options": payload}
    if record:
        versioned["record"] = list(record)
    canonical = json.dumps(versioned, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _bind_types(
    parsed: list[tuple[str, str, StepOptions | InputOptions, tuple[str, ...]]], graph: ColumnGraph
) -> dict[str, str]:
    """Bind every expression against the types of its inputs in an empty DuckDB: catches SQL errors early."""
    by_name = {name: (kind, options, deps) for name, kind, options, deps in parsed}
    types: dict[str, str] = {}
    with duckdb.connect(":memory:") as con:
        for name in graph.order:
            kind, options, deps = by_name[name]
            declared = options.type if isinstance(options, InputOptions | PythonOptions) else None
            if declared is not None:
                types[name] = _check_type(con, name, declared)
                continue
            row = ", ".join(f'NULL::{types[d]} AS "{d}"' for d in deps) or "NULL AS _"
            assert isinstance(options, StepOptions)
            step = kind_named(kind)
            bound = step.value_type(options, {d: types[d] for d in deps})
            if bound is None:
                expression = step.sql(options)
                assert expression is not None, f"a {kind} step gives neither a value type nor SQL"
                bound = _bind(con, name, expression, row)
                _check_repeatable(con, name, expression, row)
            types[name] = bound
            if options.run_if:
                _bind(con, name, f"({options.run_if})::BOOLEAN", row, what="run_if")
    return types


TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])*$")


def _check_type(con: duckdb.DuckDBPyConnection, column: str, type_name: str) -> str:
    try:
        if not TYPE_PATTERN.match(type_name.strip()):
            raise ValueError(type_name)
        con.execute(f"SELECT NULL::{type_name}")
    except (duckdb.Error, ValueError) as err:
        raise SpecError(
            f"bad value for option 'type': {type_name!r} is not a DuckDB type",
            hint="use VARCHAR, BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP or JSON",
            column=column,
        ) from err
    return type_name.upper()


def _bind(con: duckdb.DuckDBPyConnection, column: str, expression: str, row: str, what: str = "expression") -> str:
    try:
        described = con.execute(f"DESCRIBE SELECT {expression} AS value FROM (SELECT {row})").fetchall()
    except duckdb.Error as err:
        message = str(err).strip().splitlines()[0]
        raise SpecError(
            f"invalid SQL {what}: {message}", hint=f"fix the {what} (it is DuckDB SQL over the row)", column=column
        ) from err
    return str(described[0][1])


def _check_repeatable(con: duckdb.DuckDBPyConnection, column: str, expression: str, row: str) -> None:
    """A formula is computed under TRY() (one bad row fails its cell, not the run), which DuckDB refuses for a
    volatile function; and a cell's key is its inputs, so a value that changes on every call could never be fresh."""
    try:
        con.execute(f"DESCRIBE SELECT TRY({expression}) AS value FROM (SELECT {row})").fetchall()
    except duckdb.Error as err:
        if "volatile" not in str(err):
            message = str(err).strip().splitlines()[0]
            raise SpecError(
                f"invalid SQL expression: {message}",
                hint="fix the expression (it is DuckDB SQL over the row)",
                column=column,
            ) from err
        raise SpecError(
            "the expression calls a volatile function (such as random() or uuid()): a formula must give the same "
            "value for the same inputs",
            hint="compute the value from the row's fields (e.g. md5(email) instead of random()), or in a python step",
            column=column,
        ) from err
