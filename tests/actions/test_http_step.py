"""`http` steps: values and paths, "no data", retries, secrets that never reach the disk, the cache, and the
SSRF battery (every non-public address refused with zero connections reaching a listener)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import ErrorCode, SpecError, Status, Workspace
from engine.net import refusal, set_resolver
from engine.store.schema import step_table_ddl
from tests.actions.conftest import CountingListener, Receiver

TOKEN_ENV = "RUNSHEET_TEST_HTTP_TOKEN"
TOKEN = "tok-very-secret-4711"


def spec(url: str, options: str = "") -> str:
    lines = [
        "campaign: h",
        "columns:",
        "  - {name: q, kind: input}",
        "  - name: lookup",
        "    kind: http",
        f'    url: "{url}"',
        *[f"    {line}" for line in options.strip().splitlines() if line.strip()],
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def test_value_is_the_json_answer_or_a_path_into_it_and_secrets_never_reach_the_disk(
    ws: Workspace, receiver: Receiver
) -> None:
    ws.apply(
        spec(
            f"{receiver.base}/json/companies?name={{{{ q }}}}",
            f"""headers: {{Authorization: "Bearer {{{{ secrets.{TOKEN_ENV} }}}}"}}
secrets: [{TOKEN_ENV}]
path: data.items.0.name""",
        )
    )
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "acme"}, {"q": "globex"}])
    report = campaign.run()
    assert report.counts()["lookup"] == {"done": 2}
    assert [campaign.cell(r, "lookup").value for r in (1, 2)] == ["acme", "globex"]
    sent = [r for r in receiver.requests() if r["path"].startswith("/json/companies")]
    assert [r["headers"]["authorization"] for r in sent] == [f"Bearer {TOKEN}"] * 2
    detail = campaign.cell(1, "lookup").detail
    assert TOKEN not in json.dumps(detail)
    campaign.cell(1, "lookup")
    for path in ws.path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the secret reached {path}"


def test_whole_answer_without_a_path(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(spec(f"{receiver.base}/json/echo?name={{{{ q }}}}"))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "ann"}])
    campaign.run()
    value = json.loads(campaign.cell(1, "lookup").value)
    assert value["query"] == {"name": "ann"} and value["data"] == {"items": [{"name": "ann"}]}


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("/status/404", None),
        ("/status/410", None),
        ("/empty", None),
        ("/json/x?name=", "data.items.0.name"),
        ("/json/x", "data.missing.field"),
    ],
)
def test_no_data_is_not_found_not_an_error(ws: Workspace, receiver: Receiver, route: str, path: str | None) -> None:
    ws.apply(spec(receiver.base + route, "inputs: [q]\n" + (f"path: {path}" if path else "")))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "x"}])
    campaign.run()
    cell = campaign.cell(1, "lookup")
    assert (cell.status, cell.value, cell.error_code) == (Status.NOT_FOUND, None, None)


def test_transient_failures_are_retried_and_client_errors_are_not(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(spec(f"{receiver.base}/flaky?q={{{{ q }}}}", "cache: false"))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "a"}])
    receiver.control(fail_first=2)
    campaign.run()
    cell = campaign.cell(1, "lookup")
    assert (cell.status, cell.attempts, json.loads(cell.value)) == (Status.DONE, 3, {"ok": True})

    ws.apply(spec(f"{receiver.base}/status/403?q={{{{ q }}}}"))
    campaign.run()
    refused = campaign.cell(1, "lookup")
    assert (refused.status, refused.error_code, refused.attempts) == (Status.ERROR, "provider_error", 1)
    assert "HTTP 403" in (refused.error_message or "")


def test_answers_are_cached_and_run_again_asks_again(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(spec(f"{receiver.base}/json/c?name={{{{ q }}}}", "path: query.name"))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "same"}, {"q": "same"}, {"q": "other"}])
    report = campaign.run()
    asked = [r for r in receiver.requests() if r["path"].startswith("/json/c")]
    assert report.cache_hits + len(asked) == 3 and len(asked) in (2, 3)
    campaign.run(["lookup"], rows=[3], force=True)
    assert len([r for r in receiver.requests() if r["path"].startswith("/json/c")]) == len(asked) + 1


def test_bad_http_specs_are_refused_with_the_fix(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(SpecError, match="http:// or https://"):
        ws.apply(spec("ftp://example.com/{{ q }}"))
    with pytest.raises(SpecError, match="method"):
        ws.apply(spec("https://example.com/{{ q }}", "method: FETCH"))
    with pytest.raises(SpecError, match="unknown option 'tiemout'"):
        ws.apply(spec("https://example.com/{{ q }}", "tiemout: 3"))


# ---- SSRF ---------------------------------------------------------------------------------------------------


@pytest.fixture()
def fake_dns() -> Iterator[None]:
    """`internal.example` resolves to a private address; every other name as the system says."""
    from engine.net.guard import system_resolver

    async def resolve(host: str, port: int) -> list[str]:
        if host == "internal.example":
            return ["10.0.0.5"]
        return await system_resolver(host, port)

    set_resolver(resolve)
    yield
    set_resolver(None)


def test_ssrf_battery_is_refused_before_any_connection(
    tmp_path: Path, listener: CountingListener, receiver: Receiver, fake_dns: None
) -> None:
    port = listener.port
    targets = [
        f"http://127.0.0.1:{port}/",
        f"http://[::1]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://2130706433:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://localhost:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://internal.example:{port}/",
        # an allowed host that redirects to a loopback address it may not reach
        f"{receiver.base}/redirect?to=http://127.0.0.1:{port}/stolen",
    ]
    ws = Workspace.init(tmp_path / "ws")
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
    ws.apply(spec("{{ q }}", "inputs: [q]\ncache: false"))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": url} for url in targets])
    campaign.run()
    cells = [campaign.cell(row, "lookup") for row in range(1, len(targets) + 1)]
    for url, cell in zip(targets, cells, strict=True):
        assert (cell.status, cell.error_code) == (Status.ERROR, ErrorCode.HOST_NOT_ALLOWED.value), (url, cell)
        assert "refused to connect" in (cell.error_message or ""), (url, cell.error_message)
        assert "allowed_hosts" in (cell.error_message or "")
        assert "allowed_hosts" in (cell.error_hint or "") and "admin" not in (cell.error_hint or "")
        assert cell.attempts == 1  # never retried
    assert listener.accepted == 0
    assert "10.0.0.5" in (cells[8].error_message or "")
    assert [r["path"] for r in receiver.requests()] == [f"/redirect?to=http://127.0.0.1:{port}/stolen"]


def test_an_allowed_host_is_reached(tmp_path: Path, listener: CountingListener) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{listener.port}"])
    ws.apply(spec(f"http://127.0.0.1:{listener.port}/?q={{{{ q }}}}", "timeout: 5\ncache: false"))
    ws.set_setting("max_attempts", 1)
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "a"}])
    campaign.run()
    assert listener.accepted == 1  # connected (the bare listener hangs up: a provider error, not a refusal)
    assert campaign.cell(1, "lookup").error_code == ErrorCode.PROVIDER_ERROR.value


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::1", True),
        ("::ffff:10.0.0.1", True),
        ("224.0.0.1", True),
        ("0.0.0.0", True),
    ],
)
def test_address_classification(address: str, refused: bool) -> None:
    assert (refusal(address) is not None) == refused


def test_a_name_that_resolves_to_nothing_is_a_lookup_failure_not_a_refusal(tmp_path: Path) -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        return []

    set_resolver(nowhere)
    try:
        ws = Workspace.init(tmp_path / "ws")
        ws.apply(spec("http://nowhere.example/?q={{ q }}", "cache: false"))
        ws.set_setting("max_attempts", 1)
        campaign = ws.campaign("h")
        campaign.add_rows([{"q": "a"}])
        campaign.run()
    finally:
        set_resolver(None)
    cell = campaign.cell(1, "lookup")
    assert (cell.error_code, cell.error_message) == (
        ErrorCode.PROVIDER_ERROR.value,
        "host 'nowhere.example' resolved to no address",
    )


PICKS = """
campaign: h
columns:
  - {{name: q, kind: input}}
  - name: fit
    kind: http
    url: "{base}/json/fit?c={{{{ q }}}}"
    path: query.c
  - {{name: count, kind: http, url: "{base}/json/n?c={{{{ q }}}}", path: count}}
  - {{name: item, kind: http, url: "{base}/json/i?name={{{{ q }}}}", path: data.items.0}}
  - {{name: shout, kind: formula, expression: "upper(fit)"}}
"""


def test_what_a_path_picks_is_plain_text_not_json(ws: Workspace, receiver: Receiver, tmp_path: Path) -> None:
    ws.apply(PICKS.format(base=receiver.base))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "good /fit"}])
    campaign.run()
    cells = {c: campaign.cell(1, c).value for c in ("fit", "count", "item", "shout")}
    assert cells == {"fit": "good /fit", "count": "1", "item": '{"name": "good /fit"}', "shout": "GOOD /FIT"}
    found = ws.query("SELECT fit, count::INTEGER AS n, item::JSON->>'name' AS name FROM h WHERE fit = 'good /fit'")
    assert found.rows() == [("good /fit", 1, "good /fit")]
    campaign.export(tmp_path / "out.csv", columns=["fit"])
    assert (tmp_path / "out.csv").read_text().splitlines()[1].endswith(",good /fit")  # row_id, fit


def as_older_version_stored_it(ws: Workspace, column: str) -> None:
    """Put `column` back as an older Runsheet stored it: a JSON column, values and memo answers JSON-encoded."""
    with ws.db.transaction() as con:
        table = con.execute("SELECT table_name FROM columns WHERE name = ?", [column]).fetchall()[0][0]
        con.execute(f"UPDATE memo SET value = to_json(value)::VARCHAR WHERE key IN (SELECT key FROM {table})")
        # a new table rather than ALTER ... TYPE JSON, which DuckDB cannot replay from the WAL
        con.execute(step_table_ddl(f"{table}_old", "JSON"))
        con.execute(f"INSERT INTO {table}_old SELECT * REPLACE (to_json(value)::VARCHAR AS value) FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute("UPDATE columns SET value_type = 'JSON', table_name = ? WHERE name = ?", [f"{table}_old", column])


def test_a_workspace_that_stored_picked_strings_as_json_keeps_them_as_plain_text(
    ws: Workspace, receiver: Receiver
) -> None:
    ws.apply(PICKS.format(base=receiver.base))
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "acme"}, {"q": "globex"}])
    campaign.run()
    as_older_version_stored_it(ws, "fit")
    assert ws.query("SELECT fit::VARCHAR AS fit FROM h ORDER BY row_id").rows() == [('"acme"',), ('"globex"',)]
    calls = len(receiver.requests())
    reopened = Workspace(ws.path)  # opening it unwraps the values in place: nothing is computed again
    campaign = reopened.campaign("h")
    assert [campaign.cell(r, "fit").value for r in (1, 2)] == ["acme", "globex"]
    assert [campaign.cell(r, "fit").status for r in (1, 2)] == [Status.DONE] * 2
    assert reopened.query("SELECT q FROM h WHERE fit = 'globex'").rows() == [("globex",)]
    assert reopened.apply(PICKS.format(base=receiver.base)).changes.changed == []  # the same spec: no change
    campaign.add_rows([{"q": "acme"}])  # the cache answers row 3's fit as a new answer reads
    campaign.run()
    assert campaign.cell(3, "fit").value == "acme" and len(receiver.requests()) == calls  # all from the cache


def test_adding_a_path_to_a_json_step_retypes_it_in_place_and_computes_it_again(
    ws: Workspace, receiver: Receiver
) -> None:
    whole = PICKS.format(base=receiver.base).replace("    path: query.c\n", "")
    ws.apply(whole)
    campaign = ws.campaign("h")
    campaign.add_rows([{"q": "acme"}])
    campaign.run()
    assert json.loads(campaign.cell(1, "fit").value)["query"] == {"c": "acme"}
    result = ws.apply(PICKS.format(base=receiver.base))
    assert [(t.column, t.old, t.new) for t in result.changes.retyped] == [("fit", "JSON", "VARCHAR")]
    campaign.run()  # (the apply may have run it already: a free step within the confirm threshold)
    assert campaign.cell(1, "fit").value == "acme"
