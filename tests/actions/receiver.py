"""A webhook receiver and small JSON API on 127.0.0.1, run as its own process by tests (see conftest.py).

It records every request it gets (path, headers, body) and answers according to its controls: a latency, a
status to answer webhooks with, a number of 503s (with Retry-After) to give first. JSON routes serve the `http`
step's tests: /json/<anything> echoes the query, /status/<code>, /empty, /redirect?to=<url>, /text.
Run: python -m tests.actions.receiver --lifetime 600  (prints "PORT <n>", stops by itself after the lifetime)
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

state: dict[str, Any] = {"requests": [], "latency": 0.0, "status": 200, "fail_first": 0, "failed": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None and not isinstance(body, bytes):
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ledger":
            with lock:
                self._send(200, {"requests": state["requests"]})
            return
        if url.path == "/count":
            with lock:
                self._send(200, {"posts": sum(r["method"] == "POST" for r in state["requests"])})
            return
        self._record("GET", b"")
        if url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), {"error": "as asked"})
        elif url.path == "/empty":
            self._send(204)
        elif url.path == "/text":
            self._send(200, b"plain words", {"content-type": "text/plain"})
        elif url.path == "/redirect":
            self._send(302, b"", {"location": query.get("to", "/")})
        elif url.path == "/flaky":
            if self._fail_first():
                return
            self._send(200, {"ok": True})
        else:
            self._send(
                200,
                {
                    "path": url.path,
                    "query": query,
                    "auth": self.headers.get("authorization"),
                    "data": {"items": [{"name": query.get("name", "")}]},
                    "count": len(query),
                },
            )

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if len(body) < int(self.headers.get("content-length") or 0):
            self.close_connection = True  # the sender died mid-request: not a delivery
            return
        url = urlparse(self.path)
        if url.path == "/control":
            with lock:
                state.update(json.loads(body))
                state["failed"] = 0
            self._send(200, {"ok": True})
            return
        if url.path == "/reset":
            with lock:
                state.update(requests=[], latency=0.0, status=200, fail_first=0, failed=0)
            self._send(200, {"ok": True})
            return
        if state["latency"]:
            time.sleep(state["latency"])
        if self._fail_first():
            return
        self._record("POST", body)
        if url.path.startswith("/echo"):
            self._send(200, {"got": json.loads(body or b"null"), "auth": self.headers.get("authorization")})
            return
        self._send(int(state["status"]), {"received": True})

    def _fail_first(self) -> bool:
        with lock:
            failing = state["failed"] < state["fail_first"]
            if failing:
                state["failed"] += 1
        if failing:
            self._send(503, {"error": "busy"}, {"retry-after": "0"})
        return failing

    def _record(self, method: str, body: bytes) -> None:
        entry = {
            "method": method,
            "path": self.path,
            "at": time.time(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with lock:
            state["requests"].append(entry)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
