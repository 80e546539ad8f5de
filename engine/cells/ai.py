"""`ai`: a Jinja2 prompt over the record's fields and the workspace's global context, sent to any litellm model
(or the built-in `offline` one), optionally answering JSON that must satisfy the column's schema.

The prompt it renders, and what context injection adds to it, is engine/cells/prompt.py's.

The step only prepares calls; the runner makes them (concurrency, rate limits, deadline, retries, cache, budget).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field, field_validator

from engine.cache import cache_key
from engine.cells.base import DEFAULT_OUTPUT_TOKENS, PrepareEnv, StepKind, StepOptions, decode_json_input
from engine.cells.prompt import ContextPart, injection, messages_for
from engine.graph.references import ALL_CONTEXT, context_references, template_references
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


async def attempt_completion(request: CompletionRequest) -> Answer:
    """One attempt at a request: the provider's answer, parsed against the request's schema. An answer that does
    not fit is refused (invalid_output, retried) with its tokens and cost recorded: the provider billed it."""
    from engine.llm import complete

    completion = await complete(request)
    try:
        answer = parse_output(completion.text, request.schema)
    except ProviderFailure as refused:
        refused.billed(completion.tokens, completion.provider_cost)
        raise
    return Answer(
        answer.value, answer.status, completion.prompt_tokens, completion.completion_tokens, completion.provider_cost
    )


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
                return await attempt_completion(request)

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
                portable=True,  # a provider request: its key is read where the call is made
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
