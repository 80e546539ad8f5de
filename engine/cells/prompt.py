"""The prompt an ai step sends: its Jinja2 templates rendered over the record's fields and the global context,
and what context injection adds without the templates naming it.

Context injection: a step can be given the whole record and the global context as a block after the prompt
("## Record", one `name: value` line per non-empty field; "## Context", each document under "### name"), or
have its templates place them with `{{ record }}` and `{{ context }}`. `injection` decides, from the options and
the campaign's column names, what a step is given; the spec keys the step on it (every input column becomes a
dependency, the documents its context: engine/spec.py) and `messages_for` renders exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.sandbox

from engine.graph.references import RECORD, places, sql_references, template_references

if TYPE_CHECKING:
    from engine.cells.ai import AiOptions

# An empty field renders as nothing, not as the word "None" (`{{ website }}` of a record without one).
_env = jinja2.sandbox.ImmutableSandboxedEnvironment(
    autoescape=False, keep_trailing_newline=False, finalize=lambda value: "" if value is None else value
)


@lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _env.from_string(template)


def render(template: str, row: dict[str, Any], context: Mapping[str, str]) -> str:
    return _compiled(template).render({**row, "context": context})


class RecordPart(dict[str, Any]):
    """The record's fields as a template sees them: `{{ record }}` shows one `name: value` line per non-empty
    field (JSON values compact), `{{ record.email }}` one field."""

    def __str__(self) -> str:
        return "\n".join(f"{name}: {_field_text(value)}" for name, value in self.items() if not _empty(value))


class ContextPart(dict[str, str]):
    """Every global-context document by name, as `{{ context.icp }}` reads one; `{{ context }}` shows the step's
    documents (all, or those its `context` option names), each under "### name", by name."""

    def __init__(self, documents: Mapping[str, str], shown: tuple[str, ...] | None = None) -> None:
        super().__init__(documents)
        names = sorted(self) if shown is None else sorted(n for n in set(shown) if n in self)
        # name-mangled: a template's `context.<name>` reaches documents, not this
        self.__text = "\n\n".join(f"### {name}\n{self[name]}" for name in names)

    def __str__(self) -> str:
        return self.__text


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | bool | int | float):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


@dataclass(frozen=True)
class Injection:
    """What a step is given without naming it: the record (every input column) and a context part, each placed
    by its template (`{{ record }}`, `{{ context }}`) or else in the default block after the prompt."""

    record: bool = False
    context: bool = False
    block_record: bool = False
    block_context: bool = False


def injection(options: AiOptions, columns: frozenset[str]) -> Injection:
    """What a step is given, given the campaign's column names. `inject` unset injects exactly when the step
    would otherwise read no column (its templates, run_if and required name none and `inputs` is unset: such a
    step was refused before injection existed, so no stored spec changes meaning)."""
    templates = [t for t in (options.prompt, options.system) if t]
    named = set().union(*(template_references(t) for t in templates))
    places_record = RECORD in named and RECORD not in columns  # a column named `record` keeps its meaning
    places_context = any(places(t, "context") for t in templates)
    if places_record:
        named.discard(RECORD)
    reads_columns = (
        options.inputs is not None
        or bool(named or options.required)
        or bool(options.run_if and sql_references(options.run_if))
    )
    inject = not reads_columns if options.inject is None else options.inject
    return Injection(
        record=inject or places_record,
        context=inject or places_context,
        block_record=inject and not places_record,
        block_context=inject and not places_context,
    )


NO_INJECTION = Injection()


def messages_for(
    options: AiOptions,
    row: dict[str, Any],
    context: Mapping[str, str],
    given: Injection = NO_INJECTION,
    record: tuple[str, ...] = (),
) -> tuple[tuple[str, str], ...]:
    """The chat messages a row's call sends: optional system prompt (with the schema instruction), then the prompt
    and the default block of what the step is `given` (`record`: the record's fields, in spec order; `context`:
    the documents, or a ContextPart made from them once for many rows)."""
    documents = context if isinstance(context, ContextPart) else ContextPart(context, options.context)
    namespace: dict[str, Any] = {**row, "context": documents}
    record_part = RecordPart((name, row.get(name)) for name in record) if given.record else None
    if record_part is not None and RECORD not in row:
        namespace[RECORD] = record_part
    system = _compiled(options.system).render(namespace) if options.system else ""
    if options.output_schema is not None:
        instruction = "Answer with one JSON object that satisfies this JSON schema, and nothing else:\n"
        system = (system + "\n\n" if system else "") + instruction + json.dumps(options.output_schema, sort_keys=True)
    messages = [("system", system)] if system else []
    parts = [_compiled(options.prompt).render(namespace)]
    if given.block_record and record_part is not None and str(record_part):
        parts.append("## Record\n" + str(record_part))
    if given.block_context and str(documents):
        parts.append("## Context\n" + str(documents))
    messages.append(("user", "\n\n".join(p for p in parts if p)))
    return tuple(messages)
