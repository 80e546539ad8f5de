"""`export`: a side effect per record: a webhook POST (Standard Webhooks headers and HMAC signature, plus an
`Idempotency-Key`) or an append to a CSV or JSON-lines file.

An export sends again only when its payload changed, or a person asked (Run Again on the export cell). Its cell
runs again whenever its inputs or their runs change (a Run Again upstream propagates like an edit, DESIGN rule 7),
but a payload equal to the one last delivered for that record sends nothing. The idempotency key derives from
the payload's content (campaign, record, step and the canonical JSON of `type` and `data`; never the timestamp),
so a receiver can always deduplicate; Run Again adds its run to the key, and a payload going back to one the
receiver had before gets a key of its own, so neither is dropped as a repeat.

Delivery is at-least-once. The step says what each claimed cell would send (`payloads`); the engine writes the
decision to send to the outbox (engine/store/outbox.py) in the transaction that claims the cell, with the
payload frozen at that moment, and settles it in the one that writes the cell's result. Each delivery is marked in
the result cache the moment the receiver acknowledges it, so after a crash the next run repeats only the
deliveries that were in flight, with the same key and `webhook-id`. An export fires only on upstream values
that are current: an upstream cell that failed blocks it, and one that is stale or pinned (edited by hand and
not yet confirmed, `Campaign.confirm`) makes it wait.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import Field, model_validator

from engine.cells.base import PrepareEnv, SendEnv, StepKind, StepOptions, decode_json_input
from engine.cells.http import SECRETS, secret_values, send
from engine.cells.prompt import render
from engine.graph.fate import SENDABLE
from engine.graph.references import template_references
from engine.llm.types import ProviderFailure, classify_status, parse_retry_after
from engine.runner.calls import Answer, PaidCall
from engine.types import ErrorCode, Status

# Upstream statuses an export may read: current values only (not stale, not pinned-and-unconfirmed).
READS_ONLY = SENDABLE
# What `prepare` reads beside the inputs: the outbox's decision for each row (engine/store/outbox.py, decide_sends).
FRAME_COLUMNS = ("_delivery_id", "_idempotency_key", "_message_id", "_payload", "_unchanged")
DELIVERED = "delivery:"  # result cache entries marking an acknowledged delivery, by idempotency key


class ExportOptions(StepOptions):
    url: str | None = Field(default=None, description="webhook: the URL records are POSTed to")
    file: str | None = Field(default=None, description="or a .csv / .jsonl file records are appended to")
    fields: tuple[str, ...] | None = Field(default=None, description="the record's fields to send (default: inputs)")
    event: str = Field(default="record.exported", description="the payload's `type`")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers; values are templates")
    secrets: tuple[str, ...] = Field(default=(), description="environment variables read as {{ secrets.NAME }}")
    signing_secret_env: str | None = Field(
        default=None, description="environment variable holding the Standard Webhooks secret (whsec_...)"
    )
    timeout: float = Field(default=30.0, gt=0, le=600)
    credits: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> ExportOptions:
        if (self.url is None) == (self.file is None):
            raise ValueError("give exactly one target: url (a webhook) or file (.csv or .jsonl)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.file is not None and not self.file.endswith((".csv", ".jsonl")):
            raise ValueError("file must end in .csv or .jsonl")
        return self


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature header value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


_file_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def append_record(path: Path, payload: str, delivery: dict[str, str]) -> None:
    """Append one record durably (fsync) as a JSON line or a CSV row, with its idempotency key."""
    with _locks_guard:
        lock = _file_locks.setdefault(str(path.resolve()), threading.Lock())
    record = json.loads(payload)
    with lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            line = json.dumps({"idempotency_key": delivery["key"], "webhook_id": delivery["id"], **record})
            data = (line + "\n").encode()
        else:
            fields = {"idempotency_key": delivery["key"], "webhook_id": delivery["id"], **record["data"]}
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            if not path.exists() or path.stat().st_size == 0:
                writer.writerow(list(fields))
            writer.writerow(["" if v is None else v for v in fields.values()])
            data = buffer.getvalue().encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class Export(StepKind):
    """Differs in: paid (`prepare`), priced at its `credits`, a side effect (`payloads`) that reads current
    upstream values only and is keyed on the runs that made them."""

    name: ClassVar[str] = "export"
    free: ClassVar[bool] = False
    options: ClassVar[type[StepOptions]] = ExportOptions
    side_effect: ClassVar[bool] = True
    reads_only: ClassVar[frozenset[Status]] = READS_ONLY
    # The key also covers which run produced each upstream step cell, so re-running an upstream cell runs the
    # export cell again (or makes a manual export stale) even when it gives the same value; whether that run
    # sends depends on its payload (`payloads`).
    keys_on_upstream_runs: ClassVar[bool] = True

    def references(self, options: ExportOptions) -> set[str]:
        found = set(options.fields or ())
        for text in options.headers.values():
            found |= template_references(text)
        return found - {SECRETS}

    def value_type(self, options: ExportOptions, input_types: dict[str, str]) -> str | None:
        return "JSON"

    def price(self, options: ExportOptions, tiers: dict[str, float]) -> float:
        return options.credits

    def payloads(self, options: ExportOptions, rows: pl.DataFrame, env: SendEnv) -> pl.DataFrame:
        """The record each claimed row would send (its `fields`, by default its inputs), stamped now."""
        fields = list(options.fields or [c for c in rows.columns if c not in ("row_id", "key")])
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        payloads = []
        for row in rows.iter_rows(named=True):
            data = {"campaign": env.campaign, "record": row["row_id"], "step": env.column}
            data.update({f: decode_json_input(row.get(f), f in env.json_columns) for f in fields})
            payloads.append(json.dumps({"type": options.event, "timestamp": stamp, "data": data}, default=str))
        return pl.DataFrame({"row_id": rows["row_id"], "key": rows["key"], "payload": payloads})

    def prepare(self, options: ExportOptions, frame: pl.DataFrame, env: PrepareEnv) -> Iterator[PaidCall]:
        if "_payload" not in frame.columns:  # an estimate: nothing was decided, so nothing is prepared to send
            frame = frame.with_columns(
                pl.lit(None).alias("_delivery_id"),
                pl.lit("").alias("_idempotency_key"),
                pl.lit("").alias("_message_id"),
                pl.lit("{}").alias("_payload"),
                pl.lit(False).alias("_unchanged"),
            )
        for row in frame.iter_rows(named=True):
            delivery = {"key": row["_idempotency_key"], "id": row["_message_id"], "payload": row["_payload"]}
            if row["_unchanged"]:
                yield _unchanged(options, env, row, delivery)
                continue

            async def attempt(delivery: dict[str, str] = delivery, row: dict[str, Any] = row) -> Answer:
                if options.file is not None:
                    await asyncio.to_thread(append_record, Path(options.file), delivery["payload"], delivery)
                    return Answer(
                        {
                            "delivered": True,
                            "id": delivery["id"],
                            "idempotency_key": delivery["key"],
                            "file": options.file,
                        }
                    )
                return await _post(options, env, delivery, row)

            # Marked in the result cache the moment it is acknowledged (the runner stores answers at once), so
            # a run resumed after a crash finds it there instead of sending it again. The key itself tells a Run
            # Again apart, so the runner always looks.
            marker = DELIVERED + delivery["key"] if delivery["key"] else None
            yield PaidCall(
                column=env.column,
                row_id=row["row_id"],
                key=row["key"],
                model="export",
                credits=options.credits,
                est_tokens=0,
                cache_key=marker,
                force=False,
                deadline=options.timeout + 5,
                attempt=attempt,
                detail={
                    "delivery_id": row["_delivery_id"],
                    "webhook_id": delivery["id"],
                    "idempotency_key": delivery["key"],
                    "target": options.url or options.file,
                },
            )


def _unchanged(options: ExportOptions, env: PrepareEnv, row: dict[str, Any], delivery: dict[str, str]) -> PaidCall:
    """A cell whose payload is the one already delivered: done at once, sending nothing, costing nothing."""
    value = {"delivered": True, "id": delivery["id"], "idempotency_key": delivery["key"], "unchanged": True}

    async def attempt() -> Answer:
        return Answer(value)

    return PaidCall(
        column=env.column,
        row_id=row["row_id"],
        key=row["key"],
        model="export",
        credits=0.0,
        est_tokens=0,
        cache_key=None,
        force=False,
        deadline=options.timeout + 5,
        attempt=attempt,
        detail={
            "webhook_id": delivery["id"],
            "idempotency_key": delivery["key"],
            "unchanged": True,
            "target": options.url or options.file,
        },
    )


async def _post(options: ExportOptions, env: PrepareEnv, delivery: dict[str, str], row: dict[str, Any]) -> Answer:
    assert options.url is not None
    secrets = secret_values(options.secrets)
    headers = {name: render(value, {**row, SECRETS: secrets}, {}) for name, value in options.headers.items()}
    timestamp = int(time.time())
    headers.update(
        {
            "content-type": "application/json",
            "webhook-id": delivery["id"],
            "webhook-timestamp": str(timestamp),
            "idempotency-key": delivery["key"],
        }
    )
    if options.signing_secret_env:
        secret = secret_values((options.signing_secret_env,))[options.signing_secret_env]
        headers["webhook-signature"] = sign(secret, delivery["id"], timestamp, delivery["payload"])
    status, text, _, retry_after = await send(
        env.allowed_hosts, "POST", options.url, headers, delivery["payload"].encode(), options.timeout
    )
    if not 200 <= status < 300:
        failure = classify_status(status, f"HTTP {status}: {text[:200]}", parse_retry_after(retry_after))
        if status in (400, 422):
            raise ProviderFailure(
                ErrorCode.PROVIDER_ERROR,
                failure.message + " (the receiver refused the record)",
                retryable=False,
                status=status,
            )
        raise failure
    return Answer({"delivered": True, "id": delivery["id"], "idempotency_key": delivery["key"], "status": status})
