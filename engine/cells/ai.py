"""`ai`: a Jinja2 prompt over the record's fields and the workspace's global context, sent to any litellm model
(or the built-in `offline` one), optionally answering JSON that must satisfy the column's schema.

Context injection: a step can be given the whole record and the global context without naming them, as a block
after the prompt ("## Record", one `name: value` line per non-empty field; "## Context", each document under
"### name"), or placed by the template with `{{ record }}` and `{{ context }}`. `injection` decides, from the
options and the campaign's column names, what a step is given; the spec keys the step on it (every input column
becomes a dependency, the documents its context) and `prepare` renders exactly that.

The step only prepares calls; the runner makes them (concurrency, rate limits, deadline, retries, cache, budget).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Literal

import jinja2
import jinja2.sandbox
import polars as pl
from pydantic import Field, field_validator

from engine.cache import cache_key
from engine.cells.base import DEFAULT_OUTPUT_TOKENS, PrepareEnv, StepKind, StepOptions, decode_json_input
from engine.graph.references import (
    ALL_CONTEXT,
    RECORD,
    context_references,
    places,
    sql_references,
    template_references,
)
from engine.llm.types import OFFLINE_MODEL, CompletionRequest, ProviderFailure, pick_transport
from engine.runner.calls import Answer, PaidCall
from engine.types import NAME_PATTERN, ErrorCode, Status

Tier = Literal["fast", "standard", "deep", "thinking"]
# One markdown code fence (```json ... ```, any case, any tag, prose around it allowed), as real models add.
FENCED = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)


class AiOptions(StepOptions):
    versioned_when_set: ClassVar[frozenset[str]] = frozenset({"inject", "context"})

    prompt: str = Field(description="Jinja2 template over the row's columns and {{ context.<name> }}")
    system: str | None = None
    model: str = OFFLINE_MODEL
    api_base: str | None = Field(default=None, description="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="the environment variable holding the key")
    transport: Literal["auto", "litellm", "direct"] = "auto"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    tier: Tier = "standard"
    output_schema: dict[str, Any] | None = None
    timeout: float = Field(default=60.0, gt=0, le=3600, description="wall-clock seconds for one attempt")
    inject: bool | None = Field(
        default=None,
        description="add the record and the global context after the prompt; unset: when the step names no column",
    )
    context: tuple[str, ...] | None = Field(
        default=None, description="the context documents the injected or placed context part shows; unset: all"
    )

    @field_validator("context")
    @classmethod
    def _plain_names(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            if not NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a context document name (letters, digits and underscores)")
        return names

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as err:
                raise ValueError(f"not a valid JSON schema: {err.message}") from err
        return schema

    def sampling(self) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        return {k: v for k, v in params.items() if v is not None}


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


def parse_output(text: str, schema: dict[str, Any] | None) -> Answer:
    """The cell value an answer gives: text as is, or JSON checked against `schema`; raises invalid_output."""
    if schema is None:
        stripped = text.strip()
        return Answer(stripped if stripped else None, Status.DONE if stripped else Status.NOT_FOUND)
    import jsonschema

    try:
        value = _json_answer(text)
        jsonschema.validate(value, schema)
    except (ValueError, jsonschema.ValidationError) as err:
        reason = err.message if isinstance(err, jsonschema.ValidationError) else "not JSON"
        raise ProviderFailure(
            ErrorCode.INVALID_OUTPUT, f"the answer does not fit the schema: {reason}", retryable=True
        ) from err
    return Answer(value)


def _json_answer(text: str) -> Any:
    """The JSON an answer holds: the whole text, or the inside of its one code fence; raises ValueError."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        blocks = FENCED.findall(stripped)
        if len(blocks) != 1:
            raise
        return json.loads(blocks[0])


class Ai(StepKind):
    """Differs in: paid (`prepare`), priced by tier, cacheable (the memo), reads global context."""

    name: ClassVar[str] = "ai"
    free: ClassVar[bool] = False
    # Same step version, context and inputs give the same answer to reuse (the memo), as far as the user is
    # concerned: a new sample is what Run Again is for.
    cacheable: ClassVar[bool] = True
    options: ClassVar[type[StepOptions]] = AiOptions

    def price(self, options: AiOptions, tiers: dict[str, float]) -> float:
        """Credits one call costs: the tier's price; the offline model is free."""
        return 0.0 if options.model == OFFLINE_MODEL else tiers.get(options.tier, 0.0)

    def guess_tokens(self, options: AiOptions) -> int:
        """The prompt template's tokens and the answer's cap, before the template is rendered."""
        return len(options.prompt) // 4 + (options.max_tokens or DEFAULT_OUTPUT_TOKENS)

    def references(self, options: AiOptions) -> set[str]:
        found = template_references(options.prompt)
        if options.system:
            found |= template_references(options.system)
        return found

    def reads_record(self, options: AiOptions, columns: frozenset[str]) -> bool:
        return injection(options, columns).record

    def context_names(self, options: AiOptions, columns: frozenset[str]) -> set[str]:
        found = context_references(options.prompt)
        if options.system:
            found |= context_references(options.system)
        if injection(options, columns).context:
            found |= set(options.context) if options.context is not None else {ALL_CONTEXT}
        return found

    def value_type(self, options: AiOptions, input_types: dict[str, str]) -> str | None:
        return "JSON" if options.output_schema is not None else "VARCHAR"

    def prepare(self, options: AiOptions, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        """One call per row of `frame` (row_id, key and the step's inputs), rendered lazily."""
        from engine.llm import complete

        credits = self.price(options, env.tiers)
        inputs = [c for c in frame.columns if c not in ("row_id", "key")]
        given = injection(options, env.columns)
        documents = ContextPart(env.context, options.context)  # rendered once, not per row
        sample = CompletionRequest(options.model, (), api_base=options.api_base, transport=options.transport)
        if pick_transport(sample) == "litellm":
            from engine.llm.litellm_transport import litellm_module

            litellm_module()  # importing litellm takes seconds: not inside the first call's deadline
        for row in frame.iter_rows(named=True):
            values = {c: decode_json_input(row[c], c in env.json_columns) for c in inputs}
            try:
                messages = messages_for(options, values, documents, given, env.record)
            except Exception as err:  # a template that fails on this row's values fails this cell only
                yield _failing_call(env, options, row, f"the prompt template failed: {err}")
                continue
            request = CompletionRequest(
                model=options.model,
                messages=messages,
                params=options.sampling(),
                schema=options.output_schema,
                api_base=options.api_base,
                api_key_env=options.api_key_env,
                transport=options.transport,
            )
            key = cache_key(
                options.model,
                {**options.sampling(), "api_base": options.api_base},
                request.message_dicts(),
                options.output_schema,
            )

            async def attempt(request: CompletionRequest = request) -> Answer:
                completion = await complete(request)
                try:
                    answer = parse_output(completion.text, request.schema)
                except ProviderFailure as refused:  # the provider answered and billed: its cost is recorded
                    refused.billed(completion.tokens, completion.provider_cost)
                    raise
                return Answer(
                    answer.value,
                    answer.status,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.provider_cost,
                )

            yield PaidCall(
                column=env.column,
                row_id=row["row_id"],
                key=row["key"],
                model=options.model,
                credits=credits,
                est_tokens=sum(len(m[1]) for m in messages) // 4 + (options.max_tokens or DEFAULT_OUTPUT_TOKENS),
                cache_key=key,
                force=env.force,
                deadline=options.timeout,
                attempt=attempt,
                request_key=key,
                detail={
                    "model": options.model,
                    "tier": options.tier,
                    "cache_key": key,
                    "messages": [{"role": r, "content": c} for r, c in messages],
                },
            )


def _failing_call(env: PrepareEnv, options: AiOptions, row: dict[str, Any], message: str) -> PaidCall:
    async def attempt() -> Answer:
        raise ProviderFailure(ErrorCode.TEMPLATE_ERROR, message, retryable=False)

    return PaidCall(
        column=env.column,
        row_id=row["row_id"],
        key=row["key"],
        model=options.model,
        credits=0.0,
        est_tokens=0,
        cache_key=None,
        force=env.force,
        deadline=options.timeout,
        attempt=attempt,
        detail={"model": options.model},
    )
