"""Export steps: at-least-once webhook delivery through the outbox (kill -9 mid-delivery, then resume), Standard
Webhooks headers and signatures, Run Again, exports that must not fire, retries, and file targets (sending only
a changed payload: tests/actions/test_export_trust.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from engine import ErrorCode, Status, Workspace
from tests.actions.conftest import Receiver
from tests.support.provider import REPO

SECRET_ENV = "RUNSHEET_TEST_WEBHOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(b"a test signing key of 32 bytes!!").decode()
RECORDS = 1000


def export_spec(receiver: Receiver, *, extra: str = "", path: str = "/hooks/crm") -> str:
    return f"""
campaign: crm
columns:
  - {{name: email, kind: input}}
  - {{name: company, kind: input}}
  - {{name: domain, kind: formula, expression: "split_part(email, '@', 2)"}}
  - name: push
    kind: export
    url: "{receiver.base}{path}"
    fields: [email, company, domain]
    signing_secret_env: {SECRET_ENV}
{extra}"""


def records(n: int) -> list[dict[str, str]]:
    return [{"email": f"person{i:04d}@example{i % 7}.com", "company": f"Company {i}"} for i in range(n)]


def verify(delivery: dict) -> bool:
    """Check a delivery's Standard Webhooks signature the way a receiver would."""
    headers = delivery["headers"]
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{delivery['body']}".encode()
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, headers["webhook-signature"])


def outbox(ws: Workspace) -> dict[str, int]:
    with ws.db.transaction(commit=False) as con:
        return dict(con.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall())


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def runner(workspace: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNSHEET_WORKSPACE": str(workspace)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "-c", "crm", "--concurrency", "8"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_during_delivery_then_resume_delivers_each_record_once_by_key(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    ws.campaign("crm").add_rows(records(RECORDS))  # queued, not delivered yet
    assert receiver.posts() == 0
    receiver.control(latency=0.01)
    first = runner(ws.path)
    while first.poll() is None and receiver.posts() < 250:
        time.sleep(0.02)
    assert first.poll() is None, "the runner finished before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before_resume = receiver.posts()
    assert 250 <= before_resume < RECORDS

    receiver.control(latency=0.0)
    resumed = runner(ws.path)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr.decode()

    deliveries = receiver.deliveries()
    keys_by_record: dict[int, set[str]] = defaultdict(set)
    ids_by_record: dict[int, set[str]] = defaultdict(set)
    for delivery in deliveries:
        record = json.loads(delivery["body"])["data"]["record"]
        keys_by_record[record].add(delivery["headers"]["idempotency-key"])
        ids_by_record[record].add(delivery["headers"]["webhook-id"])
    assert len(deliveries) >= RECORDS
    assert sorted(keys_by_record) == list(range(1, RECORDS + 1))  # every record at least once
    assert all(len(keys) == 1 for keys in keys_by_record.values())  # a repeat carries the same key
    assert all(len(ids) == 1 for ids in ids_by_record.values())
    assert len({d["headers"]["idempotency-key"] for d in deliveries}) == RECORDS  # deduplicated: exactly 1,000
    assert all(verify(d) for d in deliveries)
    assert ws.campaign("crm").status_counts()["push"] == {"done": RECORDS}
    assert outbox(ws) == {"delivered": RECORDS}
    assert [r["status"] for r in ws.runs(10) if r["status"] == "interrupted"] == ["interrupted"]


def test_delivery_headers_payload_and_cell_value(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(2))
    report = campaign.run()
    assert report.counts()["push"] == {"done": 2}
    deliveries = sorted(receiver.deliveries(), key=lambda d: json.loads(d["body"])["data"]["record"])
    body = json.loads(deliveries[0]["body"])
    assert body["type"] == "record.exported"
    assert body["data"] == {
        "campaign": "crm",
        "record": 1,
        "step": "push",
        "email": "person0000@example0.com",
        "company": "Company 0",
        "domain": "example0.com",
    }
    headers = deliveries[0]["headers"]
    assert headers["webhook-id"] == "msg_" + headers["idempotency-key"][:32]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert verify(deliveries[0]) and verify(deliveries[1])
    cell = campaign.cell(1, "push")
    assert cell.status is Status.DONE
    assert json.loads(cell.value) == {
        "delivered": True,
        "id": headers["webhook-id"],
        "idempotency_key": headers["idempotency-key"],
        "status": 200,
    }
    # nothing changed: running again sends nothing
    campaign.run()
    assert receiver.posts() == 2


def test_run_again_sends_on_purpose_with_a_new_key(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(3))
    campaign.run()
    first_key = {
        json.loads(d["body"])["data"]["record"]: d["headers"]["idempotency-key"] for d in receiver.deliveries()
    }
    campaign.run(["push"], rows=[2], force=True)
    again = [d for d in receiver.deliveries() if json.loads(d["body"])["data"]["record"] == 2]
    assert len(again) == 2
    assert again[1]["headers"]["idempotency-key"] != first_key[2]
    assert again[1]["headers"]["webhook-id"] != again[0]["headers"]["webhook-id"]
    assert receiver.posts() == 4
    # an edited input is a new decision: a new key for that record only
    campaign.set(3, "company", "Renamed Inc")
    renamed = [d for d in receiver.deliveries() if json.loads(d["body"])["data"]["record"] == 3]
    assert len(renamed) == 2 and renamed[1]["headers"]["idempotency-key"] != first_key[3]
    assert json.loads(renamed[1]["body"])["data"]["company"] == "Renamed Inc"
    assert outbox(ws) == {"delivered": 5}


def test_re_running_an_upstream_cell_that_gives_the_same_value_sends_nothing(ws: Workspace, receiver: Receiver) -> None:
    extra = """  - {name: research, kind: probe, inputs: [company]}
  - name: push_research
    kind: export
    url: "URL"
    fields: [email, research]
  - name: push_later
    kind: export
    url: "URL"
    fields: [email, research]
    run: manual
""".replace("URL", f"{receiver.base}/hooks/other")
    ws.apply(export_spec(receiver, extra=extra))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(2))
    campaign.run()
    campaign.run(["push_later"])
    research_posts = lambda: [  # noqa: E731
        d for d in receiver.deliveries() if d["path"].endswith("/other") and "push_research" in d["body"]
    ]
    assert len(research_posts()) == 2
    before = campaign.cell(1, "research").value
    campaign.run(["research"], rows=[1], force=True)  # Run Again upstream: the probe gives the same value
    assert campaign.cell(1, "research").value == before
    assert len(research_posts()) == 2  # the export ran again, and its payload had not changed (issue 13, item 10)
    assert campaign.cell(1, "push_research").status is Status.DONE
    assert campaign.cell(1, "push_later").status is Status.STALE  # manual: stale, not sent
    assert campaign.cell(2, "push_later").status is Status.DONE
    # nothing re-ran: nothing is sent
    posts = receiver.posts()
    campaign.run()
    assert receiver.posts() == posts


def test_run_again_on_an_upstream_formula_over_every_row_sends_only_changed_records(
    ws: Workspace, receiver: Receiver
) -> None:
    ws.apply(export_spec(receiver))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(80))  # a large scope: the formula is recomputed in the fused pass (engine/run/fused.py)
    campaign.run()
    assert receiver.posts() == 80
    campaign.run(["domain"], force=True)  # every value comes out the same: nothing is sent again
    assert receiver.posts() == 80
    campaign.set(5, "email", "someone@else.org")  # one payload changed: that record only, with a new key
    keys = defaultdict(set)
    for delivery in receiver.deliveries():
        keys[json.loads(delivery["body"])["data"]["record"]].add(delivery["headers"]["idempotency-key"])
    assert len(keys) == 80 and len(keys[5]) == 2 and all(len(k) == 1 for r, k in keys.items() if r != 5)


def test_an_export_never_fires_on_failed_stale_or_pinned_upstream_cells(ws: Workspace, receiver: Receiver) -> None:
    extra = """  - {name: research, kind: probe, inputs: [company], fail_on: "Company 1"}
  - {name: opener, kind: probe, inputs: [company], run: manual}
  - name: push_research
    kind: export
    url: "URL"
    fields: [email, research]
  - name: push_opener
    kind: export
    url: "URL"
    fields: [email, opener]
""".replace("URL", f"{receiver.base}/hooks/other")
    ws.apply(export_spec(receiver, extra=extra))
    campaign = ws.campaign("crm")
    campaign.add_rows(records(2))
    campaign.run()
    research = [json.loads(d["body"])["data"] for d in receiver.deliveries() if "research" in d["body"]]
    assert [d["record"] for d in research] == [1]  # record 2's research failed: no export for it
    failed = campaign.cell(2, "push_research")
    assert (failed.status, failed.error_code) == (Status.ERROR, ErrorCode.UPSTREAM_ERROR.value)
    assert campaign.cell(1, "push_opener").status is Status.WAITING  # the manual opener never ran

    campaign.run(["opener"], rows=[1])  # Click to Run: its export follows
    assert [json.loads(d["body"])["data"]["opener"] for d in receiver.deliveries() if "opener" in d["body"]] == [
        "probe(Company 0)"
    ]
    sent = receiver.posts()
    campaign.set(1, "company", "Changed")  # the manual opener goes stale: its export must not fire on it
    assert campaign.cell(1, "opener").status is Status.STALE
    campaign.run(["push_opener"], rows=[1], force=True)
    blocked = campaign.cell(1, "push_opener")
    assert (blocked.status, blocked.waiting_on) == (Status.WAITING, "opener")
    campaign.set(1, "opener", "hand-written opener")  # pinned by hand, not confirmed by a run
    assert campaign.cell(1, "push_opener").status is Status.WAITING
    opener_posts = [d for d in receiver.deliveries()[sent:] if "opener" in json.loads(d["body"])["data"]]
    assert opener_posts == []


def test_transient_failures_retry_and_permanent_ones_fail(ws: Workspace, receiver: Receiver) -> None:
    ws.apply(export_spec(receiver))
    ws.set_setting("max_attempts", 4)
    campaign = ws.campaign("crm")
    campaign.add_rows(records(1))
    receiver.control(fail_first=2)
    campaign.run()
    cell = campaign.cell(1, "push")
    assert (cell.status, cell.attempts) == (Status.DONE, 3)
    assert outbox(ws) == {"delivered": 1}

    receiver.control(status=400, fail_first=0)
    campaign.add_rows([{"email": "x@y.com", "company": "Refused"}])
    campaign.run()
    refused = campaign.cell(2, "push")
    assert (refused.status, refused.error_code, refused.attempts) == (Status.ERROR, "provider_error", 1)
    assert outbox(ws) == {"delivered": 1, "failed": 1}


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_file_exports_append_each_record_with_its_key(tmp_path: Path, suffix: str) -> None:
    ws = Workspace.init(tmp_path / "ws")
    target = tmp_path / f"out.{suffix}"
    ws.apply(f"""
campaign: files
columns:
  - {{name: email, kind: input}}
  - {{name: save, kind: export, file: "{target}", fields: [email]}}
""")
    campaign = ws.campaign("files")
    campaign.add_rows([{"email": "a@x.com"}, {"email": 'b,"q"@x.com'}])
    campaign.run()
    text = target.read_text()
    if suffix == "jsonl":
        lines = [json.loads(line) for line in text.splitlines()]
        assert [line["data"]["email"] for line in lines] == ["a@x.com", 'b,"q"@x.com']
        assert len({line["idempotency_key"] for line in lines}) == 2
    else:
        import csv

        rows = list(csv.DictReader(text.splitlines()))
        assert [r["email"] for r in rows] == ["a@x.com", 'b,"q"@x.com']
        assert list(rows[0]) == ["idempotency_key", "webhook_id", "campaign", "record", "step", "email"]
    assert campaign.status_counts()["save"] == {"done": 2}


def test_bad_export_specs_are_refused_with_the_fix(tmp_path: Path) -> None:
    from engine import SpecError

    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(SpecError, match="exactly one target"):
        ws.apply("campaign: b\ncolumns:\n  - {name: e, kind: input}\n  - {name: x, kind: export, fields: [e]}\n")
    with pytest.raises(SpecError, match=r"\.csv or \.jsonl"):
        ws.apply(
            "campaign: b\ncolumns:\n  - {name: e, kind: input}\n"
            "  - {name: x, kind: export, file: out.txt, fields: [e]}\n"
        )
