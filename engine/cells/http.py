"""`http`: a templated request (method, URL, headers, body) whose JSON answer, or a path into it, is the value
(the whole answer stored as JSON, what a path picks as plain text).

404, 410, 204 and an empty answer are "no data" (`not_found`), not errors. Secrets are named environment
variables (`secrets: [CRM_TOKEN]`, used as `{{ secrets.CRM_TOKEN }}`): read when the call is made, never stored
(the cell's provenance shows `${CRM_TOKEN}`; a value echoed back in an answer or an error is stored and logged as
`[secret CRM_TOKEN]`: engine/redaction.py). Every connection goes through the address guard (engine/net).
The step only prepares calls; the runner makes them (concurrency, deadline, retries, cache, budget).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import polars as pl
from pydantic import Field, field_validator

from engine.cache import cache_key
from engine.cells.base import PrepareEnv, StepKind, StepOptions, decode_json_input
from engine.cells.prompt import render
from engine.graph.references import template_references
from engine.llm.types import ProviderFailure, classify_status, parse_retry_after
from engine.redaction import read_secret
from engine.runner.calls import Answer, PaidCall
from engine.types import ErrorCode, Status

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
NOT_FOUND_STATUSES = frozenset({404, 410})
SECRETS = "secrets"
MAX_BODY_CHARS = 1_000_000  # a larger answer is cut off in the error message, never stored whole as text


class HttpOptions(StepOptions):
    url: str = Field(description="Jinja2 template, e.g. https://api.example.com/companies?domain={{ domain }}")
    method: Method = "GET"
    headers: dict[str, str] = Field(default_factory=dict, description="values are templates")
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="a template (sent as is) or JSON whose text leaves are templates"
    )
    path: str | None = Field(default=None, description="a path into the JSON answer, e.g. data.items.0.name")
    secrets: tuple[str, ...] = Field(default=(), description="environment variables read as {{ secrets.NAME }}")
    timeout: float = Field(default=30.0, gt=0, le=600, description="wall-clock seconds for one attempt")
    credits: float = Field(default=0.0, ge=0, description="credits per call")
    cache: bool = True

    @field_validator("url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        if not url.strip().startswith(("http://", "https://", "{{")):
            raise ValueError("the url must start with http:// or https://")
        return url.strip()

    @field_validator("secrets")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"{name!r} is not an environment variable name")
        return names

    def templates(self) -> list[str]:
        texts = [self.url, *self.headers.values()]
        texts += _leaves(self.body)
        return texts


def _leaves(body: Any) -> list[str]:
    if isinstance(body, str):
        return [body]
    if isinstance(body, dict):
        return [t for v in body.values() for t in _leaves(v)]
    if isinstance(body, list):
        return [t for v in body for t in _leaves(v)]
    return []


def _render_body(body: Any, row: dict[str, Any]) -> Any:
    if isinstance(body, str):
        return render(body, row, {})
    if isinstance(body, dict):
        return {k: _render_body(v, row) for k, v in body.items()}
    if isinstance(body, list):
        return [_render_body(v, row) for v in body]
    return body


def follow_path(value: Any, path: str | None) -> Any:
    """The part of a JSON answer `path` names (dots between keys, numbers index lists); None if absent."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def answer_from(status: int, text: str, content_type: str, path: str | None, retry_after: str | None) -> Answer:
    """How one HTTP response becomes a cell: a value, "no data", or a ProviderFailure (raised)."""
    if status in NOT_FOUND_STATUSES:
        return Answer(None, Status.NOT_FOUND)
    if not 200 <= status < 300:
        raise classify_status(status, f"HTTP {status}: {text[:200]}", parse_retry_after(retry_after))
    if status == 204 or not text.strip():
        return Answer(None, Status.NOT_FOUND)
    try:
        value: Any = json.loads(text)
    except ValueError:
        if path or "json" in content_type:
            raise ProviderFailure(
                ErrorCode.INVALID_OUTPUT, f"the answer is not JSON: {text[:200]!r}", retryable=False
            ) from None
        value = text
    value = follow_path(value, path)
    if value is None or value == "" or value == [] or value == {}:
        return Answer(None, Status.NOT_FOUND)
    if path and not isinstance(value, str):  # stored as plain text (Http.value_type): a number's or object's JSON
        value = json.dumps(value, ensure_ascii=False)
    return Answer(value)


def secret_values(names: tuple[str, ...]) -> dict[str, str]:
    """The secrets' values, read now (and redacted from everything stored from now on: engine/redaction.py);
    raises a non-retryable failure naming a variable that is not set."""
    values = {n: read_secret(n) for n in names}
    missing = [n for n, value in values.items() if value is None]
    if missing:
        raise ProviderFailure(
            ErrorCode.PROVIDER_ERROR,
            f"environment variable {missing[0]} is not set (set it where runsheet runs)",
            retryable=False,
        )
    return {n: value for n, value in values.items() if value is not None}


async def send(
    allowed_hosts: frozenset[str],
    method: str,
    url: str,
    headers: dict[str, str],
    content: bytes | None,
    timeout: float,
) -> tuple[int, str, str, str | None]:
    """Make one guarded request: (status, body text, content type, Retry-After); failures as ProviderFailure."""
    import httpx

    from engine.net.client import client
    from engine.net.guard import BlockedAddress, NetworkPolicy, UnresolvedHost

    try:
        response = await client(NetworkPolicy.allowing(allowed_hosts)).request(
            method, url, headers=headers, content=content, timeout=timeout
        )
    except BlockedAddress as err:
        raise ProviderFailure(ErrorCode.HOST_NOT_ALLOWED, str(err), retryable=False) from None
    except UnresolvedHost as err:
        raise ProviderFailure(ErrorCode.PROVIDER_ERROR, str(err), retryable=True) from None
    except httpx.TooManyRedirects:
        raise ProviderFailure(ErrorCode.PROVIDER_ERROR, f"more than 5 redirects from {url}", retryable=False) from None
    except httpx.TimeoutException:
        raise ProviderFailure(ErrorCode.TIMEOUT, f"no answer from {url} within {timeout:g}s", retryable=True) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
        raise ProviderFailure(ErrorCode.PROVIDER_ERROR, f"bad url {url!r}: {err}", retryable=False) from None
    except httpx.TransportError as err:
        raise ProviderFailure(
            ErrorCode.PROVIDER_ERROR, f"{type(err).__name__} talking to {url}: {err}", retryable=True
        ) from None
    text = response.text[:MAX_BODY_CHARS]
    return response.status_code, text, response.headers.get("content-type", ""), response.headers.get("retry-after")


class Http(StepKind):
    """Differs in: paid (`prepare`), priced at its `credits`."""

    name: ClassVar[str] = "http"
    free: ClassVar[bool] = False
    options: ClassVar[type[StepOptions]] = HttpOptions

    def references(self, options: HttpOptions) -> set[str]:
        found: set[str] = set()
        for text in options.templates():
            found |= template_references(text)
        return found - {SECRETS}

    def value_type(self, options: HttpOptions, input_types: dict[str, str]) -> str | None:
        """The whole answer is JSON; what a `path` picks is plain text (a string as is, a number or an object as
        its JSON text), so `show`, exports, formulas and queries read `good`, not `"good"`."""
        return "VARCHAR" if options.path else "JSON"

    def price(self, options: HttpOptions, tiers: dict[str, float]) -> float:
        return options.credits

    def prepare(self, options: HttpOptions, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        """One request per row; templates are rendered here with the secrets' names standing in for their values,
        and again with the values when the call is made, so no secret reaches the cache key or provenance."""
        inputs = [c for c in frame.columns if c not in ("row_id", "key") and not c.startswith("_")]
        placeholders = {n: "${" + n + "}" for n in options.secrets}
        for row in frame.iter_rows(named=True):
            values = {c: decode_json_input(row[c], c in env.json_columns) for c in inputs}
            shown = _request(options, {**values, SECRETS: placeholders})
            # the answer stored is what `path` picks: two paths into one request are two answers
            picked = {"path": options.path} if options.path else {}
            key = cache_key(
                "http", {"method": options.method, "headers": shown[1], **picked}, shown[0], {"body": shown[2]}
            )

            async def attempt(values: dict[str, Any] = values) -> Answer:
                secrets = secret_values(options.secrets)
                url, headers, content = _request(options, {**values, SECRETS: secrets})
                status, text, content_type, retry_after = await send(
                    env.allowed_hosts, options.method, url, headers, content, options.timeout
                )
                return answer_from(status, text, content_type, options.path, retry_after)

            yield PaidCall(
                column=env.column,
                row_id=row["row_id"],
                key=row["key"],
                model="http",
                credits=options.credits,
                est_tokens=0,
                cache_key=key if options.cache else None,
                force=env.force,
                deadline=options.timeout + 5,
                attempt=attempt,
                request_key=key,
                detail={"method": options.method, "url": shown[0], "cache_key": key},
            )


def _request(options: HttpOptions, row: dict[str, Any]) -> tuple[str, dict[str, str], bytes | None]:
    """The rendered url, headers and body bytes for one row."""
    url = render(options.url, row, {}).strip()
    headers = {name: render(value, row, {}) for name, value in options.headers.items()}
    content: bytes | None = None
    if isinstance(options.body, str):
        content = render(options.body, row, {}).encode()
    elif options.body is not None:
        content = json.dumps(_render_body(options.body, row), ensure_ascii=False).encode()
        headers.setdefault("content-type", "application/json")
    return url, headers, content
