"""A stand-in for an LLM provider: an OpenAI-compatible HTTP server on 127.0.0.1, so tests and benchmarks drive
the real client code (litellm, or the direct transport) over real sockets.

Behaviour is switched per request by markers in the prompt, or for every request through POST /control:
  [[fake:429:S]]      429 with Retry-After: S          [[fake:429x2:S]]  429 on the first 2 attempts, then answer
  [[fake:500]]        500 (also [[fake:500x2]])        [[fake:401]] / [[fake:400]]  permanent errors
  [[fake:hang]]       never answers                    [[fake:drip]]  sends the body one byte a second
  [[fake:malformed]]  200 with a body that is not JSON [[fake:latency:S]]  answers after S seconds
  [[fake:invalid]]    answers text that is not JSON (for schema steps) ([[fake:invalidx1]]: only the first time)
  [[fake:fenced]]     wraps the JSON answer in a markdown code fence (```json ... ```), as real models often do
POST /control {"hold": true} holds every answer back (after its latency) until {"hold": false}; GET /ledger's
`in_flight` lists the prompts of the requests being answered now.
Scripted replies: POST /control {"replies": [...]} queues answers given in order, one per request, before any
marker or mode: a string is the answer's text as is (a JSON proposal, prose...), {"status": 500} fails that
request with that status, {"tool_call": {...}} answers with a call of the request's tool (its `tools`) with
those arguments. POST /reset empties the queue.
A request that offers tools (`tools`, a forced `tool_choice`) is answered with a call of that tool, unless its
scripted reply is a string (a model that answers in prose instead): the ledger counts them (`tool_requests`).
A request answered with 200 is billed: GET /ledger lists the billed prompts (sha256 of the messages).
The answer is deterministic: "answer: <last user message>"; in JSON mode {"answer": ..., "score": <0-100>}.

Run: python -m tests.support.fake_llm [--port 0] [--latency 0.0] [--lifetime 900]; it prints "PORT <n>" and
exits by itself after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import time
from collections import Counter
from typing import Any

from aiohttp import web

MARKER = re.compile(r"\[\[fake:([a-z0-9]+)(?::([0-9.]+))?\]\]")


class FakeProvider:
    def __init__(self, latency: float = 0.0) -> None:
        self.control: dict[str, Any] = {"latency": latency, "mode": None}
        self.attempts: Counter[str] = Counter()
        self.billed: list[dict[str, Any]] = []
        self.requests = 0
        self.tool_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.flying: Counter[str] = Counter()  # the prompts of the requests being answered now
        self.scripted: list[Any] = []  # replies given through /control, answered in order
        self.keys: Counter[str] = Counter()  # sha256 of each request's Authorization header (the key it carried)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_post("/chat/completions", self.complete)
        app.router.add_post("/control", self.set_control)
        app.router.add_get("/ledger", self.ledger)
        app.router.add_post("/reset", self.reset)
        return app

    async def set_control(self, request: web.Request) -> web.Response:
        given = await request.json()
        self.scripted.extend(given.pop("replies", []))
        self.control.update(given)
        return web.json_response({**self.control, "scripted": len(self.scripted)})

    async def reset(self, request: web.Request) -> web.Response:
        self.attempts.clear()
        self.keys.clear()
        self.billed.clear()
        self.scripted.clear()
        self.requests = self.max_in_flight = self.tool_requests = 0
        return web.json_response({"ok": True})

    async def ledger(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "billed": self.billed,
                "requests": self.requests,
                "tool_requests": self.tool_requests,
                "max_in_flight": self.max_in_flight,
                "in_flight": sorted(self.flying.elements()),
                "attempts": dict(self.attempts),
                "keys": dict(self.keys),
            }
        )

    async def complete(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.keys[hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        prompt_id = None
        try:
            prompt_id = _prompt_id(await request.json())
            self.flying[prompt_id] += 1
            return await self._complete(request)
        finally:
            self.in_flight -= 1
            if prompt_id is not None:
                self.flying[prompt_id] -= 1
                if not self.flying[prompt_id]:
                    del self.flying[prompt_id]

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages = body.get("messages", [])
        text = "\n".join(str(m.get("content", "")) for m in messages)
        prompt_id = _prompt_id(body)
        tool = _tool_of(body)
        self.tool_requests += tool is not None
        self.attempts[prompt_id] += 1
        attempt = self.attempts[prompt_id]
        latency = float(self.control.get("latency") or 0.0)
        modes = [(m.group(1), m.group(2)) for m in MARKER.finditer(text)]
        if self.control.get("mode"):
            modes.append((str(self.control["mode"]), self.control.get("arg")))
        for mode, arg in modes:
            if mode == "latency":
                latency = float(arg or 0)
        if latency:
            await asyncio.sleep(latency)
        while self.control.get("hold"):  # answers held back: what is in flight stays in flight
            await asyncio.sleep(0.02)
        if self.scripted:
            reply = self.scripted.pop(0)
            if isinstance(reply, dict) and "status" in reply:
                status = int(reply["status"])
                return web.json_response(
                    {"error": {"message": f"scripted {status}", "type": "scripted"}}, status=status
                )
            self._bill(prompt_id)
            if isinstance(reply, dict) and "tool_call" in reply:
                arguments = json.dumps(reply["tool_call"])
                return web.json_response(_completion(body.get("model", "fake"), arguments, text, tool or "answer"))
            return web.json_response(_completion(body.get("model", "fake"), str(reply), text))
        for mode, arg in modes:
            name, _, times = mode.partition("x")
            if times and attempt > int(times):
                continue
            if name == "429":
                return web.json_response(
                    {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                    status=429,
                    headers={"Retry-After": str(arg or "1")},
                )
            if name in ("500", "503", "502"):
                return web.json_response(
                    {"error": {"message": "server error", "type": "server_error"}}, status=int(name)
                )
            if name in ("401", "400", "404"):
                return web.json_response(
                    {"error": {"message": f"error {name}", "type": "invalid_request_error"}}, status=int(name)
                )
            if name == "hang":
                await asyncio.sleep(3600)
            if name == "malformed":
                self._bill(prompt_id)
                return web.Response(text="{not json", content_type="application/json")
            if name == "drip":
                return await self._drip(request, prompt_id)
        content = self._answer(body, messages, modes, attempt)
        self._bill(prompt_id)
        return web.json_response(_completion(body.get("model", "fake"), content, text, tool))

    def _answer(
        self, body: dict[str, Any], messages: list[dict[str, Any]], modes: list[tuple[str, Any]], attempt: int
    ) -> str:
        last = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        last = MARKER.sub("", last).strip()
        for mode, _ in modes:
            name, _, times = mode.partition("x")
            if name == "invalid" and (not times or attempt <= int(times)):
                return "this is not JSON"
        if (body.get("response_format") or {}).get("type") == "json_object" or _tool_of(body):
            score = int(hashlib.sha256(last.encode()).hexdigest(), 16) % 101
            answer = json.dumps({"answer": last, "score": score})
            if any(mode == "fenced" for mode, _ in modes):
                return f"```json\n{answer}\n```"
            return answer
        return f"answer: {last}"

    def _bill(self, prompt_id: str) -> None:
        self.billed.append({"prompt": prompt_id, "at": time.time()})

    async def _drip(self, request: web.Request, prompt_id: str) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        self._bill(prompt_id)
        payload = json.dumps(_completion("fake", "slow", "slow")).encode()
        for byte in payload:
            await response.write(bytes([byte]))
            await asyncio.sleep(1.0)
        return response


def _prompt_id(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body.get("messages", []), sort_keys=True).encode()).hexdigest()


def _tool_of(body: dict[str, Any]) -> str | None:
    """The tool a request forces (`tool_choice`), or the first it offers; None when it offers none."""
    tools = body.get("tools") or []
    if not tools:
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    return str(tools[0]["function"]["name"])


def _completion(model: str, content: str, prompt: str, tool: str | None = None) -> dict[str, Any]:
    """A completion answering `content`, or, with `tool`, a call of that tool whose arguments are `content`."""
    prompt_tokens, completion_tokens = max(1, len(prompt) // 4), max(1, len(content) // 4)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool is not None:
        call = {"id": "call_fake", "type": "function", "function": {"name": tool, "arguments": content}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def serve(port: int, latency: float, lifetime: float) -> None:
    runner = web.AppRunner(FakeProvider(latency).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    await asyncio.sleep(lifetime)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible provider on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.latency, args.lifetime))
    sys.exit(0)


if __name__ == "__main__":
    main()
