"""Secrets stay secret: a random canary value, used as an http step's URL key, header and body, an export's
header and an AI step's api key, against a server that answers with timeouts, 500s that echo the request,
401s, 404s, a refused connection and successes (one that echoes the key back). Afterwards no byte of the canary
is in any file under the workspace folder (DuckDB file and its WAL, the result cache, everything), nor in
`runsheet query`, `runsheet export`, `runsheet log` or `runsheet show` output, nor in any log line."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine import ErrorCode, Status, Workspace
from engine.cli import app
from engine.redaction import read_secret, redact, redact_text

KEY = "RS_TEST_CANARY_KEY"


class Echo(BaseHTTPRequestHandler):
    """Answers by path; failures echo the whole request (line, headers, body) back, as careless APIs do."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        keys = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "x-api-key")}
        echo = f"{keys} {body[:60]} {self.command} {self.path}"
        Echo.seen.append(echo)
        path = self.path.split("?", 1)[0]
        if path == "/ok":
            self._answer(200, {"name": "acme"})
        elif path == "/echo":
            self._answer(200, {"you_asked": self.path, "auth": self.headers.get("authorization")})
        elif path == "/missing":
            self._answer(404, {"error": "no such company", "request": echo})
        elif path == "/deny":
            self._answer(401, {"error": f"bad credentials: {self.headers.get('authorization')}"})
        elif path == "/slow":
            time.sleep(2.0)
            self._answer(200, {"late": True})
        elif path == "/v1/chat/completions":
            said = f"Incorrect API key provided: {self.headers.get('authorization')}"
            self._answer(401, {"error": {"message": said}})
        else:  # /boom, /hook
            self._answer(500, {"error": "internal", "request": echo})

    do_GET = do_POST = _handle  # noqa: N815


@pytest.fixture()
def echo_server() -> Iterator[int]:
    Echo.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spec(port: int, refused: int) -> str:
    base, secret = f"http://127.0.0.1:{port}", "{{ secrets." + KEY + " }}"

    def lookup(name: str, url: str, extra: str = "") -> str:
        return f"""  - name: {name}
    kind: http
    url: "{url}"
    secrets: [{KEY}]
    timeout: 0.5
{extra}"""

    return (
        "\n".join(
            [
                "campaign: s",
                "columns:",
                "  - {name: q, kind: input}",
                lookup("url_ok", f"{base}/ok?key={secret}&q={{{{ q }}}}"),
                lookup("url_echo", f"{base}/echo?key={secret}&q={{{{ q }}}}"),
                lookup("url_500", f"{base}/boom?key={secret}&q={{{{ q }}}}"),
                lookup("url_404", f"{base}/missing?key={secret}&q={{{{ q }}}}"),
                lookup("url_timeout", f"{base}/slow?key={secret}&q={{{{ q }}}}"),
                lookup("url_refused", f"http://127.0.0.1:{refused}/x?key={secret}&q={{{{ q }}}}"),
                lookup(
                    "header_401", f"{base}/deny?q={{{{ q }}}}", f'    headers: {{Authorization: "Bearer {secret}"}}\n'
                ),
                lookup(
                    "body_500", f"{base}/boom", f'    method: POST\n    body: {{key: "{secret}", q: "{{{{ q }}}}"}}\n'
                ),
                f"""  - name: ai_key
    kind: ai
    model: openai/gpt-test
    api_base: {base}/v1
    api_key_env: {KEY}
    transport: direct
    prompt: "Hello {{{{ q }}}}"
    timeout: 5""",
                f"""  - name: hook
    kind: export
    url: {base}/hook
    fields: [q]
    headers: {{X-Api-Key: "{secret}"}}
    secrets: [{KEY}]
    timeout: 5""",
            ]
        )
        + "\n"
    )


STEPS = [
    "url_ok",
    "url_echo",
    "url_500",
    "url_404",
    "url_timeout",
    "url_refused",
    "header_401",
    "body_500",
    "ai_key",
    "hook",
]


def test_a_secret_reaches_no_file_output_or_log_line(
    tmp_path: Path, echo_server: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary" + secrets.token_hex(16)
    monkeypatch.setenv(KEY, canary)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # importing litellm earlier in a session quiets httpx
    refused = closed_port()
    ws = Workspace.init(tmp_path / "ws")
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{echo_server}", f"127.0.0.1:{refused}"])
    ws.set_setting("max_attempts", 2)
    ws.add_credits(1000)
    ws.apply(spec(echo_server, refused))
    for step in STEPS:
        ws.resume("s", step, run=False)  # new paid steps wait for consent
    campaign = ws.campaign("s")
    campaign.add_rows([{"q": "acme"}, {"q": "globex"}])
    campaign.run(STEPS)

    # The calls were made, with the secret, and ended as each route makes them end.
    assert sum(canary in request for request in Echo.seen) >= 2 * len(STEPS) - 2
    cells = {step: campaign.cell(1, step) for step in STEPS}
    assert cells["url_ok"].status == Status.DONE
    assert cells["url_404"].status == Status.NOT_FOUND
    echoed = json.loads(cells["url_echo"].value)
    assert echoed["you_asked"].startswith(f"/echo?key=[secret {KEY}]")
    expected = {step: ErrorCode.PROVIDER_ERROR for step in STEPS if step not in ("url_ok", "url_echo", "url_404")}
    expected["url_timeout"] = ErrorCode.TIMEOUT
    for step, code in expected.items():
        assert (cells[step].status, cells[step].error_code) == (Status.ERROR, code.value), (step, cells[step])
    for step in ("url_500", "header_401", "body_500", "ai_key", "hook"):  # the echo was there, and redacted
        assert f"[secret {KEY}]" in (cells[step].error_message or ""), (step, cells[step].error_message)

    outputs = _cli_outputs(ws.path, tmp_path)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records)
    assert f"[secret {KEY}]" in logged  # httpx logs each request's URL: redacted, not dropped
    needle = canary.encode()
    leaks = [str(p) for p in ws.path.rglob("*") if p.is_file() and needle in p.read_bytes()]
    leaks += [name for name, text in outputs.items() if canary in text]
    leaks += ["log"] if canary in logged else []
    assert leaks == []


def _cli_outputs(workspace: Path, tmp_path: Path) -> dict[str, str]:
    env = {"RUNSHEET_WORKSPACE": str(workspace), "USER": "tester"}
    out: dict[str, str] = {}
    for name, args in {
        "query csv": ["query", "SELECT * FROM cells", "--format", "csv"],
        "query json": ["query", "SELECT * FROM cells", "--format", "json"],
        "query activity": ["query", "SELECT * FROM activity", "--format", "csv"],
        "query runs": ["query", "SELECT * FROM runs", "--format", "csv"],
        "log": ["log", "--json"],
        "show": ["show", "-c", "s"],
        "export": ["export", "-c", "s", "-o", str(tmp_path / "export.csv"), "--with-state"],
        "query file": ["query", "SELECT * FROM cells", "-o", str(tmp_path / "cells.csv"), "--format", "csv"],
    }.items():
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, (name, result.output)
        out[name] = result.output
    out["export file"] = (tmp_path / "export.csv").read_text()
    out["query file"] += (tmp_path / "cells.csv").read_text()
    assert f"[secret {KEY}]" in out["export file"] and f"[secret {KEY}]" in out["query csv"]
    return out


def test_every_spelling_of_a_secret_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    value = "s3cr3t/with+odd chars&" + secrets.token_hex(4)
    monkeypatch.setenv("RS_TEST_ODD", value)
    assert read_secret("RS_TEST_ODD") == value
    from urllib.parse import quote, quote_plus

    for spelled in (value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]):
        assert redact_text(f"GET /x?key={spelled} failed") == "GET /x?key=[secret RS_TEST_ODD] failed"
    nested = redact({"url": f"/x?k={value}", "list": [value, 3, None], value: True})
    assert nested == {
        "url": "/x?k=[secret RS_TEST_ODD]",
        "list": ["[secret RS_TEST_ODD]", 3, None],
        "[secret RS_TEST_ODD]": True,
    }
    monkeypatch.setenv("RS_TEST_SHORT", "abc")
    read_secret("RS_TEST_SHORT")
    assert redact_text("abc abc") == "abc abc"  # too short to be a secret, too common to strip


def test_log_lines_and_their_tracebacks_are_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    value = "canary" + secrets.token_hex(16)
    monkeypatch.setenv("RS_TEST_LOGGED", value)
    read_secret("RS_TEST_LOGGED")
    caplog.set_level(logging.INFO)
    log = logging.getLogger("engine.test_secrets")
    log.info("calling %s", f"https://api.example.com/x?key={value}")
    try:
        raise ValueError(f"refused https://api.example.com/x?key={value}")
    except ValueError:
        log.exception("unexpected failure")
    formatted = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "calling https://api.example.com/x?key=[secret RS_TEST_LOGGED]" in formatted
    assert "ValueError: refused https://api.example.com/x?key=[secret RS_TEST_LOGGED]" in formatted
    assert value not in formatted and value not in caplog.text
