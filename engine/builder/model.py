"""The builder's and Copilot's calls to a model: through engine/llm's one seam (`complete`), made by the call pool
as every other paid call is (deadline, retries by the workspace's policy, the budget), priced by a tier and logged:
one activity row per call (action `builder`, or `copilot`), a credit row for what it cost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine.cells.ai import attempt_completion
from engine.llm.types import OFFLINE_MODEL, CompletionRequest, Transport
from engine.run.paid import close_transports, run_coroutine
from engine.runner.budget import Budget
from engine.runner.calls import Answer, CellResult, PaidCall
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool
from engine.store.database import Database
from engine.store.settings import balance, load_settings
from engine.types import ErrorCode, Status

BUILDER_OUTPUT_TOKENS = 1500  # an answer's cap: a whole step with its description and plan


@dataclass(frozen=True)
class BuilderModel:
    """Which model writes the steps: any model the workspace can call (litellm names, `openai/...` with an
    `api_base` for the direct transport), or the offline model (drafts from the templates)."""

    model: str = OFFLINE_MODEL
    api_base: str | None = None
    api_key_env: str | None = None
    transport: Transport = "auto"
    tier: str = "standard"  # the credits one builder call costs: this tier's price
    timeout: float = 120.0  # seconds for one attempt
    # Ask for the answer as a forced tool call (the function's parameters are the answer's schema); off, in JSON
    # mode, for endpoints that do not offer tool calling. A model that answers in prose anyway is read as well.
    tools: bool = True

    @property
    def offline(self) -> bool:
        return self.model == OFFLINE_MODEL


@dataclass
class Asked:
    """One question to the model: its parsed answer (None when it failed; `text` when no schema was asked for),
    how the call ended, and the seconds spent inside the provider's calls (what the builder's own overhead is
    measured without)."""

    value: dict[str, Any] | None
    result: CellResult
    provider_seconds: float = 0.0
    attempts: list[float] = field(default_factory=list)
    text: str | None = None

    @property
    def failed(self) -> str | None:
        if self.value is not None or self.text is not None:
            return None
        code = self.result.error_code.value if self.result.error_code else self.result.status.value
        return f"{code}: {self.result.error_message or 'no answer'}"


def ask(
    db: Database,
    model: BuilderModel,
    messages: list[tuple[str, str]],
    schema: dict[str, Any] | None,
    *,
    tool: str | None = None,
    action: str,
    action_id: int | None,
    who: tuple[str, str],
    logged_as: str = "builder",
    record: tuple[int, int] | None = None,
) -> Asked:
    """Ask `model` for a JSON object satisfying `schema` (as the arguments of a call of the function `tool` when
    one is named and the model takes tools), or, without a schema, for text; logs the call as `logged_as`, on
    `record` (campaign id, row id) when given. A failure is in the result, not raised."""
    with db.transaction() as con:
        settings = load_settings(con)
        budget = Budget(balance=balance(con), run_cap=settings.run_cap)
    credits = 0.0 if model.offline else settings.tiers.get(model.tier, 0.0)
    request = CompletionRequest(
        model=model.model,
        messages=tuple(messages),
        params={"max_tokens": BUILDER_OUTPUT_TOKENS, "temperature": 0.2},
        schema=schema,
        api_base=model.api_base,
        api_key_env=model.api_key_env,
        transport=model.transport,
        tool=tool if model.tools else None,
    )
    asked = Asked(None, CellResult(action, 0, None, Status.ERROR))

    async def attempt() -> Answer:
        started = time.perf_counter()
        try:
            return await attempt_completion(request)  # an answer that does not fit the schema is asked again
        finally:
            asked.attempts.append(time.perf_counter() - started)

    call = PaidCall(
        column=action,
        row_id=0,
        key=0,
        model=model.model,
        credits=credits,
        est_tokens=sum(len(c) for _, c in messages) // 4 + BUILDER_OUTPUT_TOKENS,
        cache_key=None,  # every question is asked anew: the chat moves on
        force=True,
        deadline=model.timeout,
        attempt=attempt,
        detail={"model": model.model, logged_as: True},
    )
    results: list[CellResult] = []
    pool = CallPool(
        concurrency=1,
        budget=budget,
        on_result=results.append,
        stop=threading.Event(),
        policy=RetryPolicy(max_attempts=settings.max_attempts),
    )

    async def go() -> None:
        try:
            await pool.run([call])
        finally:
            await close_transports()

    run_coroutine(go())
    result = results[0] if results else CellResult(action, 0, None, Status.ERROR, error_code=ErrorCode.CANCELLED)
    asked.result = result
    asked.provider_seconds = sum(asked.attempts)
    if result.status is Status.DONE and isinstance(result.value, dict):
        asked.value = result.value
    elif result.status is Status.DONE and schema is None and isinstance(result.value, str):
        asked.text = result.value
    _log(db, model, result, (action, action_id, logged_as), who, record)
    return asked


def _log(
    db: Database,
    model: BuilderModel,
    result: CellResult,
    what: tuple[str, int | None, str],
    who: tuple[str, str],
    record: tuple[int, int] | None,
) -> None:
    """One activity row for the call (`what`: the action or column asked about, its action id, and the activity
    it is logged as), and a credit row for what it cost."""
    action, action_id, logged_as = what
    campaign_id, row_id = record if record is not None else (None, None)
    code = result.error_code.value if result.error_code else None
    outcome = "refused" if result.error_code is ErrorCode.INSUFFICIENT_CREDITS else result.status.value
    with db.transaction() as con:
        con.execute(
            "INSERT INTO activity (campaign_id, row_id, column_name, cells, action, outcome, logged_at, duration_ms, "
            "cost, actor, trigger, tokens, provider_cost, cached, error_code, action_id, new_value) "
            "VALUES (?, ?, ?, 1, ?, ?, now(), ?, ?, ?, ?, ?, ?, false, ?, ?, ?)",
            [
                campaign_id,
                row_id,
                action,
                logged_as,
                outcome,
                result.latency_ms,
                result.credits,
                *who,
                result.tokens,
                result.provider_cost,
                code,
                action_id,
                model.model,
            ],
        )
        if result.credits:
            con.execute("INSERT INTO credit_ledger VALUES (now(), ?, NULL, NULL, ?)", [-result.credits, logged_as])
