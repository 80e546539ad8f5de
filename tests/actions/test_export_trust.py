"""An export sends again only when its payload changed, or a person asked (issue 13, item 10): a Run Again
upstream that gives the same value, a freshness re-run or a re-import that changes nothing sends nothing; the
idempotency key follows the payload's content; after kill -9 during delivery, repeats are at most the deliveries
that were in flight. Counted against the receiver's own log (tests/actions/receiver.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine import Status, Workspace
from tests.actions.conftest import Receiver
from tests.actions.test_export import SECRET, SECRET_ENV, export_spec, outbox, records
from tests.support.provider import REPO

UPSTREAM = """  - {name: research, kind: probe, inputs: [company]}
  - name: push_research
    kind: export
    url: "URL"
    fields: [email, research]
"""


def keys_by_record(receiver: Receiver) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for delivery in receiver.deliveries():
        record = json.loads(delivery["body"])["data"]["record"]
        found.setdefault(record, []).append(delivery["headers"]["idempotency-key"])
    return found


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def test_run_again_upstream_that_gives_the_same_value_sends_nothing(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver, extra=UPSTREAM.replace("URL", f"{receiver.base}/hooks/other")))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(3))
    campaign.run()
    assert receiver.posts() == 6  # push and push_research, 3 records each
    before = campaign.cell(1, "push_research")
    campaign.run(["research"], rows=[1], force=True)  # Run Again upstream: the probe gives the same value
    after = campaign.cell(1, "push_research")
    assert after.status is Status.DONE  # the export cell ran again, as an edit downstream does ...
    assert after.run_id != before.run_id
    assert receiver.posts() == 6  # ... and sent nothing: its payload did not change
    assert json.loads(after.value)["idempotency_key"] == json.loads(before.value)["idempotency_key"]
    assert outbox(ws) == {"delivered": 6}


def test_run_again_on_an_upstream_formula_over_every_row_sends_nothing(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(80))  # a large scope: the formula is recomputed in the fused pass
    campaign.run()
    assert receiver.posts() == 80
    campaign.run(["domain"], force=True)  # every value comes out the same
    assert receiver.posts() == 80
    assert campaign.status_counts()["push"] == {"done": 80}


def test_run_again_on_the_export_cell_sends_again_on_purpose(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(2))
    campaign.run()
    campaign.run(["push"], rows=[2], force=True)  # a person asked: sent, with a key of its own
    keys = keys_by_record(receiver)
    assert len(keys[1]) == 1 and len(keys[2]) == 2 and keys[2][0] != keys[2][1]
    campaign.run(["domain"], force=True)  # then a recompute that changes nothing: nothing more
    assert receiver.posts() == 3


def test_a_re_import_that_changes_nothing_sends_nothing(ws: Workspace, receiver: Receiver, tmp_path: Path) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    source = tmp_path / "people.csv"
    source.write_text("email,company\n" + "".join(f"{r['email']},{r['company']}\n" for r in records(5)))
    campaign.import_file(source, key="email")
    campaign.run()
    assert receiver.posts() == 5
    campaign.import_file(source, key="email")
    campaign.run()
    assert receiver.posts() == 5
    source.write_text(source.read_text().replace("Company 3", "Company Three"))
    campaign.import_file(source, key="email")
    campaign.run()
    assert receiver.posts() == 6 and keys_by_record(receiver)[4][0] != keys_by_record(receiver)[4][1]


def test_the_idempotency_key_follows_the_payload_content(tmp_path: Path, receiver: Receiver) -> None:
    keys = []
    for name in ("one", "two"):  # two workspaces, two histories, the same records: the same keys
        ws = Workspace.init(tmp_path / name)
        ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}"])
        ws.apply(export_spec(receiver))
        ws.campaign("crm").add_rows(records(3))
        ws.campaign("crm").run()
        keys.append([json.loads(ws.campaign("crm").cell(r, "push").value)["idempotency_key"] for r in (1, 2, 3)])
    assert keys[0] == keys[1] and len(set(keys[0])) == 3
    campaign = ws.campaign("crm")
    campaign.set(2, "company", "Renamed Inc")  # a new payload: a new key
    campaign.set(2, "company", "Company 2")  # back to what the receiver had before: sent, and not a repeat
    sent = keys_by_record(receiver)[2]
    assert len(sent) == 4 and sent[1] == sent[0] and len(set(sent[1:])) == 3


def runner(workspace: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNSHEET_WORKSPACE": str(workspace)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "-c", "crm", "--concurrency", "16"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_during_slow_delivery_repeats_at_most_the_deliveries_in_flight(
    ws: Workspace, receiver: Receiver
) -> None:
    count = 600
    ws.apply(export_spec(receiver))
    ws.campaign("crm").add_rows(records(count))
    receiver.control(latency=0.1)  # 16 in flight: about 160 deliveries a second
    first = runner(ws.path)
    while first.poll() is None and receiver.posts() < 200:
        time.sleep(0.02)
    assert first.poll() is None, "the runner finished before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert 200 <= receiver.posts() < count

    receiver.control(latency=0.0)
    resumed = runner(ws.path)
    _, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr.decode()
    per_record = Counter(json.loads(d["body"])["data"]["record"] for d in receiver.deliveries())
    assert sorted(per_record) == list(range(1, count + 1))
    repeats = sum(n - 1 for n in per_record.values())
    assert repeats <= 16, f"{repeats} repeats after kill -9 with 16 deliveries in flight"
    assert all(len(set(keys)) == 1 for keys in keys_by_record(receiver).values())
    assert ws.campaign("crm").status_counts()["push"] == {"done": count}
    assert outbox(ws) == {"delivered": count}
