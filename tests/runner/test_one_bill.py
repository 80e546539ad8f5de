"""One request, one bill (issue 13, items 8 and 9): identical provider requests in one run, in two runs of one
process, or in two processes at once are sent once and fill every cell that asked; the estimate counts the
repeats as hits; every attempt's tokens are recorded; a fenced JSON answer is accepted at once.

Everything goes over real HTTP: the fake provider (tests/support/fake_llm.py) and the receiver
(tests/actions/receiver.py) count what reached them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import RunOptions, Status, Workspace
from engine.cache import ResultCache
from engine.cells.ai import parse_output
from engine.llm.types import ProviderFailure
from tests.actions.conftest import Receiver, start_receiver
from tests.runner.conftest import KEY_ENV, ai_spec
from tests.support.provider import REPO, ProviderProcess

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def apply(workspace: Workspace, spec: str) -> None:
    """Apply a spec and consent to its new paid steps (they start paused: issue 13, item 11)."""
    result = workspace.apply(spec)
    for column in getattr(result, "paused", []):
        workspace.resume(result.campaign, column, run=False)


def billed(provider: ProviderProcess) -> int:
    return len(provider.ledger()["billed"])


def repeated(companies: int, times: int) -> list[dict[str, str]]:
    """`companies` distinct prompts, each asked by `times` rows, interleaved (row i asks company i % companies)."""
    return [{"company": f"Acme{i % companies}"} for i in range(companies * times)]


def test_ten_identical_prompts_in_one_run_make_one_call(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=0.3)  # every row is in flight before the first answer arrives
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows(repeated(1, 10))
    report = campaign.run(options=RunOptions(concurrency=16))
    assert report.counts()["research"] == {"done": 10}
    assert billed(fresh_provider) == 1 and fresh_provider.ledger()["requests"] == 1
    assert set(campaign.values()["research"].to_list()) == {"answer: Research Acme0"}
    cells = [campaign.cell(r, "research") for r in range(1, 11)]
    assert sorted(c.cost for c in cells) == [0.0] * 9 + [1.0]  # one bill, nine hits that cost nothing
    assert Counter(bool(c.cached) for c in cells) == {True: 9, False: 1}
    run = workspace.runs(1)[0]
    assert (run["credits"], run["cache_hits"], run["credits_saved"]) == (1, 9, 9)
    assert workspace.credits() == 999


def test_many_repeated_prompts_are_sent_once_each(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=0.05)
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows(repeated(25, 20))
    report = campaign.run(options=RunOptions(concurrency=32))
    assert report.counts()["research"] == {"done": 500}
    assert fresh_provider.ledger()["requests"] == 25
    assert workspace.runs(1)[0]["credits"] == 25 and workspace.credits() == 975


def test_run_again_sends_identical_prompts_once(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=0.2)
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows(repeated(2, 6))
    campaign.run()
    assert billed(fresh_provider) == 2
    campaign.run(["research"], force=True)  # a new sample for each distinct request, not for each cell
    assert billed(fresh_provider) == 4
    assert workspace.runs(1)[0]["credits"] == 2
    # one worker: each request's later rows come after its answer landed, and still take it
    campaign.run(["research"], force=True, options=RunOptions(concurrency=1))
    assert billed(fresh_provider) == 6
    assert workspace.runs(1)[0]["credits"] == 2
    assert all(not campaign.cell(r, "research").error_code for r in range(1, 13))


def test_two_runs_in_one_process_at_once_share_one_call(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=1.0)
    spec = ai_spec(fresh_provider.api_base, transport="direct")
    apply(workspace, spec)
    apply(workspace, spec.replace("campaign: enrich", "campaign: other"))
    for name in ("enrich", "other"):
        workspace.campaign(name).add_rows(repeated(3, 4))
    threads = [threading.Thread(target=workspace.campaign(n).run) for n in ("enrich", "other")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert billed(fresh_provider) == 3
    for name in ("enrich", "other"):
        assert workspace.campaign(name).status_counts()["research"] == {"done": 12}
    assert sum(r["credits"] for r in workspace.runs(2)) == 3


def test_two_processes_at_once_send_each_request_once(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=2.0)  # both processes are started and calling long before an answer comes
    spec = ai_spec(fresh_provider.api_base, transport="direct")
    apply(workspace, spec)
    apply(workspace, spec.replace("campaign: enrich", "campaign: other"))
    for name in ("enrich", "other"):
        workspace.campaign(name).add_rows(repeated(4, 5))
    env = {**os.environ, KEY_ENV: "sk-test-key", "RUNSHEET_WORKSPACE": str(workspace.path)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", "-c", name, "--concurrency", "8"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in ("enrich", "other")
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr.decode()
    assert billed(fresh_provider) == 4
    for name in ("enrich", "other"):
        assert workspace.campaign(name).status_counts()["research"] == {"done": 20}
    assert workspace.credits() == 996


def test_the_estimate_counts_repeats_of_one_request_as_hits(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows(repeated(2, 5))
    estimate = {c.column: c for c in campaign.estimate().columns}["research"]
    assert (estimate.calls, estimate.cache_hits, estimate.credits) == (10, 8, 2)
    forced = {c.column: c for c in campaign.estimate(["research"], force=True).columns}["research"]
    assert (forced.calls, forced.cache_hits, forced.credits) == (10, 8, 2)  # Run Again: still one per request
    assert billed(fresh_provider) == 0


@pytest.fixture(scope="module")
def lookup_server() -> Iterator[Receiver]:
    server = start_receiver()
    yield server
    server.stop()


@pytest.mark.parametrize(("cache", "concurrency"), [("true", 16), ("false", 16), ("false", 1)])
def test_identical_http_lookups_in_one_run_are_sent_once(
    tmp_path: Path, lookup_server: Receiver, cache: str, concurrency: int
) -> None:
    lookup_server.reset()
    lookup_server.control(latency=0.0)
    ws = Workspace.init(tmp_path / "ws")
    ws.set_setting("allowed_hosts", [f"127.0.0.1:{lookup_server.port}"])
    apply(
        ws,
        f"""
campaign: lookups
columns:
  - {{name: domain, kind: input}}
  - name: company
    kind: http
    url: "{lookup_server.base}/json/company?name={{{{ domain }}}}"
    path: data.items.0.name
    credits: 1
    cache: {cache}
""",
    )
    campaign = ws.campaign("lookups")
    campaign.add_rows([{"domain": f"d{i % 7}.com"} for i in range(70)])
    report = campaign.run(options=RunOptions(concurrency=concurrency))
    assert report.counts()["company"] == {"done": 70}
    gets = [r for r in lookup_server.requests() if r["method"] == "GET"]
    assert len(gets) == 7 and len({r["path"] for r in gets}) == 7
    assert ws.runs(1)[0]["credits"] == 7
    assert campaign.cell(70, "company").value == "d6.com"  # what a path picks is plain text


def test_failed_attempts_record_their_tokens_on_the_cell_and_the_run(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct", schema=True))
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": "Acme [[fake:invalid]]"}])
    campaign.run()
    cell = campaign.cell(1, "research")
    assert (cell.status, cell.error_code, cell.attempts) == (Status.ERROR, "invalid_output", 3)
    assert billed(fresh_provider) == 3
    assert cell.tokens is not None and cell.tokens > 0 and cell.tokens % 3 == 0  # three answers, each counted
    assert workspace.runs(1)[0]["tokens"] == cell.tokens
    assert workspace.credits() == 1000  # a failed cell costs no credits; what the provider billed is recorded


def test_a_retried_answer_counts_the_tokens_of_every_attempt(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    apply(workspace, ai_spec(fresh_provider.api_base, transport="direct", schema=True))
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": "Acme [[fake:invalidx1]]"}, {"company": "Acme plain"}])
    campaign.run()
    retried, once = campaign.cell(1, "research"), campaign.cell(2, "research")
    assert (retried.status, retried.attempts, once.attempts) == (Status.DONE, 2, 1)
    assert retried.tokens is not None and once.tokens is not None and retried.tokens > once.tokens


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_a_fenced_json_answer_is_accepted_in_one_attempt(
    workspace: Workspace, fresh_provider: ProviderProcess, transport: str
) -> None:
    apply(workspace, ai_spec(fresh_provider.api_base, transport=transport, schema=True))
    campaign = workspace.campaign("enrich")
    campaign.add_rows([{"company": "Acme [[fake:fenced]]"}])
    campaign.run()
    cell = campaign.cell(1, "research")
    assert (cell.status, cell.attempts) == (Status.DONE, 1)
    assert json.loads(cell.value)["answer"] == "Research Acme"
    assert billed(fresh_provider) == 1 and workspace.credits() == 999


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"a": 1}\n```',
        '```JSON\n{"a": 1}\n```',
        '```\n{"a": 1}\n```\n',
        'Here is the JSON:\n\n```json\n{"a": 1}\n```',
        '```json\n{"a": 1}\n```\nIt lists one field.',
        '  {"a": 1}  ',
    ],
)
def test_one_code_fence_around_json_is_accepted(text: str) -> None:
    assert parse_output(text, SCHEMA).value == {"a": 1}


@pytest.mark.parametrize("text", ['```json\n{"a": 1}\n```\n```json\n{"a": 2}\n```', "no json here", '{"a": "x"}'])
def test_other_answers_are_still_invalid_output(text: str) -> None:
    with pytest.raises(ProviderFailure) as failure:
        parse_output(text, SCHEMA)
    assert failure.value.code.value == "invalid_output"


def test_a_lease_is_held_by_one_process_and_ends_with_it(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_LEASE, str(tmp_path / "cache")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert cache.lease("request-a") is False  # another live process is making it
        assert cache.lease("request-b") is True  # other requests are free
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert cache.lease("request-a") is True  # the kernel dropped the dead holder's lock: no stale lease
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert cache.lease("request-a") is True  # this process's own lease, counted
    cache.release("request-a")
    cache.release("request-a")
    cache.release("request-b")


HOLD_A_LEASE = """
import sys, time
from engine.cache import ResultCache
assert ResultCache(sys.argv[1]).lease("request-a")
print("held", flush=True)
time.sleep(60)
"""
