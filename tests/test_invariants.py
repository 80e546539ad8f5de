"""DESIGN.md's invariants, checked together by one stateful property test.

A hypothesis `RuleBasedStateMachine` drives one campaign through random sequences of what users do: add records,
upsert (with keys that repeat), edit, pin, confirm, Save to Record, a library action run on one record (and its
result saved to the record), Copilot on a cell (a reply pinned as its value, or saved to the record), run with
and without credit caps (in windows of one or two rows, or one window; a record edited while a run goes),
Run Again (of the AI step and of the export), a run during a provider outage and a
retry of the failed cells (`run --errors`), pause and resume, apply spec changes (adding, changing, renaming,
removing columns), export then re-import, and a `runsheet run` killed with SIGKILL then resumed. Its model is what the
user asked for (the records' inputs, the pins); after every step the workspace is checked against it, against the
fake provider's ledger (real HTTP, the real client path) and against the webhook receiver's log:

- inputs are exactly what was typed, imported or keyed: no row touched that was not keyed (invariant 2);
- every computed value equals a fresh computation from the current inputs (rule 10): a refusal never wiped one
  (invariant 1), and Save to Record fields and imported columns survive every `apply` (invariant 3);
- each distinct provider request is billed once, plus once per Run Again that asked for it (invariant 5), and
  the credits spent are the calls billed; nothing is billed before the paid step is activated (invariant 7);
- an export payload is sent again only when a person asked (invariant 6), and its idempotency key follows it;
- records posted to the API enrich themselves in a background run (engine/intake.py), waited for by the rule:
  each new record's research is done (billed once, its value a fresh computation), or, over an intake budget,
  queued saying so;
- history (runs, activity, credit rows) never shrinks (invariant 4).

Examples: RUNSHEET_STATEFUL_EXAMPLES (default 200), RUNSHEET_STATEFUL_STEPS steps each (default 12). Without
RUNSHEET_STATEFUL_SEED the examples are derandomized, so CI sees the same ones every time; with it, that seed's.
A failure prints the steps that reproduce it and a `@reproduce_failure` blob.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from engine import Campaign, RunOptions, RunProgress, RunSelection, RunsheetError, Settings, Status, Workspace
from engine.api.app import create_app
from engine.auth import create_token, set_user
from engine.schedules import add_schedule, run_due
from tests.actions.conftest import Receiver, start_receiver
from tests.conftest import copy_workspace
from tests.support.provider import REPO, ProviderProcess, start_provider

KEY_ENV = "RUNSHEET_TEST_PROVIDER_KEY"
CAMPAIGN = "sm"
BALANCE = 1000.0
COMPANIES = ["Acme", "ACME", "Beta", "Gamma"]
# titles a spreadsheet would run as formulas: an export then re-import must keep them as typed
TITLES = ["CEO", "@ceo", "+1 555", "-5", "=1+1", "VP Sales"]
PROMPTS = {"research": "Research", "study": "Study"}


def spec_text(provider: ProviderProcess, receiver: Receiver, variant: str) -> str:
    """The campaign's spec in one of its shapes: `base`, `study` (the prompt changed), `shout` (a formula
    column added), `loud` (that column renamed with `renamed_from`)."""
    verb = PROMPTS["study"] if variant == "study" else PROMPTS["research"]
    extra = ""
    if variant == "shout":
        extra = '  - {name: shout, kind: formula, expression: "upper(title)"}\n'
    if variant == "loud":
        extra = '  - {name: loud, kind: formula, expression: "upper(title)", renamed_from: shout}\n'
    return f"""
campaign: {CAMPAIGN}
columns:
  - {{name: handle, kind: input}}
  - {{name: company, kind: input}}
  - {{name: title, kind: input}}
  - {{name: domain, kind: formula, expression: "lower(company)"}}
  - name: research
    kind: ai
    model: openai/fake-model
    api_base: {provider.api_base}
    api_key_env: {KEY_ENV}
    tier: fast
    timeout: 20
    prompt: "{verb} {{{{ domain }}}}"
  - {{name: line, kind: formula, expression: "research || ' / ' || title"}}
  - {{name: note, kind: formula, expression: "upper(handle)", run: manual, run_if: "title <> '@ceo'"}}
  - name: push
    kind: export
    url: "{receiver.base}/hooks/crm"
    fields: [handle, line]
    run_if: "title <> 'CEO'"
{extra}"""


def prompt_id(text: str) -> str:
    """The fake provider's ledger id of a one-message prompt (tests/support/fake_llm.py)."""
    messages = [{"role": "user", "content": text}]
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class Servers:
    def __init__(self, provider: ProviderProcess, receiver: Receiver, template: Path, token: str) -> None:
        self.provider, self.receiver, self.template, self.token = provider, receiver, template, token


class TrustMachine(RuleBasedStateMachine):
    """One campaign driven by random user actions; the model is what the user asked for."""

    servers: Servers
    root: Path

    def __init__(self) -> None:
        super().__init__()
        self.path = self.root / uuid.uuid4().hex
        copy_workspace(self.servers.template, self.path)
        self.servers.provider.reset()
        self.servers.receiver.reset()
        self.ws = Workspace(self.path, actor="ops")
        self.campaign = self.ws.campaign(CAMPAIGN, actor="ops")
        self.inputs: dict[int, dict[str, str | None]] = {}
        self.pinned: dict[int, str] = {}
        self.fields = ["handle", "company", "title"]
        self.variant = "base"
        self.active = False  # the paid step starts paused (invariant 7)
        self.activated = False  # ...and nothing is billed until it has been resumed once
        self.forced: Counter[str] = Counter()  # prompt id -> Run Agains that asked for it
        self.pushed_again: Counter[int] = Counter()  # row -> Run Agains of its export
        self.kills = 0
        self.history = (0, 0, 0)
        self.handles = 0
        self.scheduled = False
        self.clock = datetime.now()
        self.client: TestClient | None = None
        self.action = "absent"  # the library action: absent, then paused (consent first), then active
        self.action_prompts: set[str] = set()  # prompt ids the library action sent
        self.copilot_prompts: set[str] = set()  # prompt ids Copilot's turns sent

    def teardown(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
        self.ws.release()
        shutil.rmtree(self.path, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------------------------------------

    def api(self) -> TestClient:
        if self.client is None:
            self.client = TestClient(create_app(self.path)).__enter__()
        return self.client

    def new_handle(self) -> str:
        self.handles += 1
        return f"h{self.handles}"

    def verb(self) -> str:
        return PROMPTS["study"] if self.variant == "study" else PROMPTS["research"]

    def prompt(self, row: int) -> str:
        return f"{self.verb()} {(self.inputs[row]['company'] or '').lower()}"

    def stored(self) -> dict[int, dict[str, Any]]:
        rows = self.campaign.values().to_dicts()
        return {int(r.pop("row_id")): r for r in rows}

    def cells(self, column: str) -> dict[int, Any]:
        if not self.inputs:
            return {}
        page = self.campaign.page(rows=sorted(self.inputs), columns=[column])
        return {row_id: cells[column] for row_id, cells in zip(page.row_ids, page.rows, strict=True)}

    def values_with_data(self) -> dict[int, Any]:
        return {r: c.value for r, c in self.cells("research").items() if c.value is not None}

    def billed(self) -> list[str]:
        return [entry["prompt"] for entry in self.servers.provider.ledger()["billed"]]

    def run_options(self, cap: int | None) -> RunOptions:
        return RunOptions(max_credits=None if cap is None else float(cap), concurrency=2)

    def check_refusal_kept(self, before: dict[int, Any], billed_before: int) -> None:
        """Cells that held a value before a run still hold one: a refused cell keeps its value (invariant 1)."""
        after = self.cells("research")
        for row, value in before.items():
            assert after[row].value is not None, f"row {row}: research lost its value {value!r} ({after[row]})"
        if not self.active:
            assert len(self.billed()) == billed_before, "a paused paid step was billed"

    # ---- records in ---------------------------------------------------------------------------------------

    @rule(
        companies=st.lists(st.sampled_from(COMPANIES), min_size=1, max_size=3),
        title=st.sampled_from(TITLES),
        repeat=st.booleans(),
    )
    def add_records(self, companies: list[str], title: str, repeat: bool) -> None:
        handles = [self.new_handle() for _ in companies]
        if repeat and self.inputs:  # a second record with a handle the campaign already holds (legal to add)
            handles[0] = self.inputs[min(self.inputs)]["handle"] or handles[0]
        records = [{"handle": h, "company": c, "title": title} for h, c in zip(handles, companies, strict=True)]
        ids, _ = self.campaign.add_rows(records)
        for row_id, record in zip(ids, records, strict=True):
            self.inputs[row_id] = {name: record.get(name) for name in self.fields}

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        """`import --key handle`: refused whole when a handle repeats in the campaign; otherwise only keyed rows
        change, and a new handle is a new row."""
        handles = sorted({v["handle"] for v in self.inputs.values() if v["handle"]})
        chosen = data.draw(st.lists(st.sampled_from(handles), min_size=1, max_size=2, unique=True))
        records = [
            {"handle": h, "company": data.draw(st.sampled_from(COMPANIES)), "title": data.draw(st.sampled_from(TITLES))}
            for h in chosen
        ]
        if data.draw(st.booleans()):
            records.append({"handle": self.new_handle(), "company": "Gamma", "title": "CEO"})
        path = self.path / f"upsert-{uuid.uuid4().hex}.csv"
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["handle", "company", "title"])
            writer.writeheader()
            writer.writerows(records)
        holders = Counter(v["handle"] for v in self.inputs.values())
        repeated = [r["handle"] for r in records if holders[r["handle"]] > 1]
        if repeated:
            with pytest.raises(RunsheetError) as refused:
                self.campaign.import_file(path, key="handle", types={"title": "VARCHAR"})
            assert repeated[0] in str(refused.value)
            return
        report = self.campaign.import_file(path, key="handle", types={"title": "VARCHAR"})
        by_handle = {v["handle"]: row for row, v in self.inputs.items()}
        for record in records:
            if record["handle"] in by_handle:
                self.inputs[by_handle[record["handle"]]].update(company=record["company"], title=record["title"])
        for row_id in report.inserted:
            record = next(r for r in records if r["handle"] not in by_handle)
            self.inputs[row_id] = {name: record.get(name) for name in self.fields}

    @rule(data=st.data(), keyed=st.booleans(), budget=st.sampled_from([None, 0, 1]))
    def api_intake(self, data: st.DataObject, keyed: bool, budget: int | None) -> None:
        """Records POSTed to `runsheet serve`'s API (in process, through its ASGI app); with a key, an upsert
        that is refused whole when the key repeats in the campaign. Their active paid steps then run in the
        background (engine/intake.py), within the intake budget (`budget`: None keeps the default, 0 turns it
        off, 1 credit a day): the rule waits for the worker, then the new records' research is done, or queued
        saying the budget was reached (or off); the invariants check it was billed once and its value."""
        if budget is not None:
            self.ws.set_setting("intake_budget", budget)
        handles = sorted({v["handle"] for v in self.inputs.values() if v["handle"]})
        known = data.draw(st.lists(st.sampled_from(handles), max_size=2, unique=True)) if keyed and handles else []
        records = [
            {"handle": h, "company": data.draw(st.sampled_from(COMPANIES)), "title": data.draw(st.sampled_from(TITLES))}
            for h in [*known, self.new_handle()]
        ]
        answer = self.api().post(
            f"/campaigns/{CAMPAIGN}/records",
            json={"records": records, "key": "handle" if keyed else None},
            headers={"Authorization": f"Bearer {self.servers.token}"},
        )
        holders = Counter(v["handle"] for v in self.inputs.values())
        if keyed and any(holders[r["handle"]] > 1 for r in records):
            assert answer.status_code == 400, answer.text
            return
        assert answer.status_code == 200, answer.text
        by_handle = {v["handle"]: row for row, v in self.inputs.items()} if keyed else {}
        fresh = [r for r in records if r["handle"] not in by_handle]
        for record in records:
            if record["handle"] in by_handle:
                self.inputs[by_handle[record["handle"]]].update(company=record["company"], title=record["title"])
        new_ids = sorted(set(self.stored()) - set(self.inputs))
        assert len(new_ids) == len(fresh) == answer.json()["inserted"]
        for row_id, record in zip(new_ids, fresh, strict=True):
            self.inputs[row_id] = {name: record.get(name) for name in self.fields}
        billed = len(self.billed())
        assert self.api().app.state.runsheet.intake.wait(timeout=120), "the intake worker did not finish"  # type: ignore[attr-defined]
        if not self.active:  # research paused: nothing paid may run by itself
            assert len(self.billed()) == billed, "a paused paid step was billed by the intake"
            return
        allowed = self.ws.settings().intake_budget  # 100 by default: more than an example ever spends
        enrichment = answer.json()["enrichment"]
        assert enrichment == "off" if allowed == 0 else enrichment in ("background", "budget_reached"), enrichment
        research = self.cells("research")
        for row in new_ids:
            cell = research[row]
            if allowed == 0:  # off: the records only queue
                assert cell.status == Status.QUEUED and cell.error_message is None, f"row {row}: {cell}"
            elif allowed == 1 and cell.status == Status.QUEUED:  # over a budget of 1 credit: held, saying so
                assert (cell.error_message or "").startswith("intake budget reached: 1 credits of 1 today"), cell
            else:  # enriched in the background: the invariants check its value and that it was billed once
                assert cell.status == Status.DONE, f"row {row}: the intake left research {cell}"

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data(), column=st.sampled_from(["company", "title"]))
    def edit(self, data: st.DataObject, column: str) -> None:
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        value = data.draw(st.sampled_from(COMPANIES if column == "company" else TITLES))
        self.campaign.set(row, column, value)
        self.inputs[row][column] = value

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data())
    def pin(self, data: st.DataObject) -> None:
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        value = f"by hand {data.draw(st.integers(0, 3))}"
        sent = len(self.servers.receiver.deliveries())
        self.campaign.set(row, "research", value)
        self.pinned[row] = value
        for delivery in self.servers.receiver.deliveries()[sent:]:
            data = json.loads(delivery["body"])["data"]
            assert not (data["record"] == row and value in json.dumps(data)), "an unconfirmed edit was exported"

    @precondition(lambda self: bool(self.pinned))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        row = data.draw(st.sampled_from(sorted(self.pinned)))
        self.campaign.confirm(row, "research")
        assert self.cells("research")[row].status == Status.CONFIRMED

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data(), field=st.sampled_from(["notes", "angle"]))
    def save_to_record(self, data: st.DataObject, field: str) -> None:
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        cell = self.cells("research")[row]
        if cell.value is None or cell.status not in (Status.DONE, Status.PINNED, Status.CONFIRMED):
            with pytest.raises(RunsheetError):
                self.campaign.save_to_record(row, "research", field)
            return
        self.campaign.save_to_record(row, "research", field)
        if field not in self.fields:
            self.fields.append(field)
            for values in self.inputs.values():
                values.setdefault(field, None)
        line = f"research: {cell.value}"
        if field == "notes":
            old = self.inputs[row].get("notes")
            self.inputs[row]["notes"] = line if not old else f"{old}\n{line}"
        else:
            self.inputs[row][field] = str(cell.value)

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data(), again=st.booleans(), save=st.booleans())
    def library_action(self, data: st.DataObject, again: bool, save: bool) -> None:
        """A library action run on one record (the record page, `runsheet action run`): it waits for consent
        (invariant 7), touches no cell (its result is its own), bills a request once unless Regenerate asked
        (invariant 5), and its Save to Record is an input edit the model follows."""
        library = self.ws.actions(actor="ops")
        if self.action == "absent":
            options = {
                "prompt": "Brief {{ domain }}",
                "model": "openai/fake-model",
                "api_base": self.servers.provider.api_base,
                "api_key_env": KEY_ENV,
                "tier": "fast",
                "timeout": 20,
            }
            library.add("brief", "ai", options, description="A one-line brief of the company")
            self.action = "paused"
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        before, billed = self.stored(), len(self.billed())
        if self.action == "paused":
            with pytest.raises(RunsheetError, match="paused"):
                library.run("brief", CAMPAIGN, row)
            assert len(self.billed()) == billed, "a paused action was billed"
            library.resume("brief")
            self.action = "active"
        domain = self.cells("domain")[row]
        text = f"Brief {domain.value if domain.status in (Status.DONE, Status.PINNED, Status.CONFIRMED) else ''}"
        result = library.run("brief", CAMPAIGN, row, force=again)
        self.action_prompts.add(prompt_id(text))
        self.forced[prompt_id(text)] += again
        assert result["status"] == "done" and result["value"] == f"answer: {text}".strip(), result
        assert self.stored() == before, "an action run on a record changed the campaign's cells"
        if save:
            library.save_result(result["result_id"])
            if "notes" not in self.fields:
                self.fields.append("notes")
                for values in self.inputs.values():
                    values.setdefault("notes", None)
            line = f"brief: {result['value']}"
            old = self.inputs[row].get("notes")
            if not (old or "").endswith(line):  # saving the same result twice adds it once
                self.inputs[row]["notes"] = line if not old else f"{old}\n{line}"

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data(), to=st.sampled_from(["cell", "record"]), turns=st.integers(1, 2), fail=st.booleans())
    def copilot(self, data: st.DataObject, to: str, turns: int, fail: bool) -> None:
        """Send to Copilot on a research cell (refused while it holds no result: then it is first edited by
        hand), a turn or two (through the step's model: the fake provider), the last one failing when `fail`;
        then the latest reply is pinned as the cell's value (a hand edit the model follows, never exported
        unconfirmed) or saved to the record's notes. A turn bills its request once and changes no cell; a failed
        one bills nothing; with no reply, nothing is saved."""
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        cell = self.cells("research")[row]
        copilot = self.ws.copilot(actor="ops")
        if cell.value is None or cell.status not in (Status.DONE, Status.PINNED, Status.CONFIRMED):
            with pytest.raises(RunsheetError, match="no result to continue"):
                copilot.start(campaign=CAMPAIGN, row=row, column="research")
            hand = f"by hand {data.draw(st.integers(0, 3))}"  # then a person writes one, and sends that
            self.campaign.set(row, "research", hand)
            self.pinned[row] = hand
        chat_id = int(copilot.start(campaign=CAMPAIGN, row=row, column="research")["chat_id"])
        before = self.stored()
        for turn in range(turns):
            billed, said = len(self.billed()), f"shorter {data.draw(st.integers(0, 2))}"
            failing = fail and turn == turns - 1
            if failing:
                self.servers.provider.control(replies=[{"status": 401}])
            reply = copilot.say(chat_id, said)
            new = self.billed()[billed:]
            assert self.stored() == before, "a Copilot turn changed the campaign"
            if failing:
                assert reply["role"] == "error" and not new, "a failed Copilot turn was billed"
                continue
            assert reply["content"] == f"answer: {said}" and len(new) == 1, "a Copilot turn was not billed once"
            self.forced[new[0]] += 1  # asked anew each turn, as a person asked
            self.copilot_prompts.add(new[0])
        replies = [m for m in copilot.show(chat_id)["messages"] if m["role"] == "assistant"]
        if not replies:
            with pytest.raises(RunsheetError, match="no reply to save"):
                copilot.save(chat_id, to="cell" if to == "cell" else "record")
            return
        text = str(replies[-1]["content"])
        if to == "cell":
            sent = len(self.servers.receiver.deliveries())
            copilot.save(chat_id, to="cell")
            self.pinned[row] = text
            for delivery in self.servers.receiver.deliveries()[sent:]:
                pushed = json.loads(delivery["body"])["data"]
                assert not (pushed["record"] == row and text in json.dumps(pushed)), "an unconfirmed pin was exported"
            return
        copilot.save(chat_id, to="record")
        if "notes" not in self.fields:
            self.fields.append("notes")
            for values in self.inputs.values():
                values.setdefault("notes", None)
        line, old = f"research: {text}", self.inputs[row].get("notes")
        if not (old or "").endswith(line):  # saving the same reply twice adds it once
            self.inputs[row]["notes"] = line if not old else f"{old}\n{line}"

    # ---- runs ---------------------------------------------------------------------------------------------

    @contextmanager
    def windows(self, rows: int | None) -> Iterator[None]:
        """Runs started in this block take their rows `rows` at a time (engine/run/windows.py; None: the default,
        one window for a campaign this small)."""
        if rows is None:
            yield
            return
        self.ws.set_setting("claim_window_rows", rows)
        try:
            yield
        finally:
            self.ws.set_setting("claim_window_rows", Settings().claim_window_rows)

    def edit_while_running(self, data: st.DataObject) -> Callable[[RunProgress], None]:
        """A progress callback that, the first time it is called (the run holds claimed cells, and windows may be
        left), edits a record's company from another handle, queueing its paid cells: the run must neither lose
        the edit nor bill a request twice for it."""
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        company = data.draw(st.sampled_from(COMPANIES))
        edited: list[int] = []

        def edit(progress: RunProgress) -> None:
            if edited:
                return
            edited.append(row)
            other = Workspace(self.path, actor="ops").campaign(CAMPAIGN, actor="ops")
            other.set(row, "company", company, run_paid=False)
            self.inputs[row]["company"] = company

        return edit

    @rule(
        data=st.data(),
        cap=st.one_of(st.none(), st.integers(0, 2)),
        window=st.sampled_from([None, 1, 2]),
        edit=st.booleans(),
    )
    def run(self, data: st.DataObject, cap: int | None, window: int | None, edit: bool) -> None:
        """A run, in windows of one or two rows or in one; with `edit`, a record edited while it runs."""
        before, billed = self.values_with_data(), len(self.billed())
        options = self.run_options(cap)
        if edit and self.inputs:
            options.progress = self.edit_while_running(data)
        with self.windows(window):
            self.campaign.run(options=options)
        if cap is not None:
            assert len(self.billed()) - billed <= cap, "a run spent more calls than its credit cap"
        self.check_refusal_kept(before, billed)

    @rule(force=st.booleans())
    def two_runs_at_once(self, force: bool) -> None:
        """Two runners over the same cells at once (two handles, two threads): claims keep them from computing a
        cell twice, and identical requests are sent once between them."""
        before, billed = self.values_with_data(), len(self.billed())
        other = Workspace(self.path, actor="ops").campaign(CAMPAIGN, actor="ops")
        failures: list[BaseException] = []

        def run(campaign: Campaign) -> None:
            try:
                campaign.run(["research"] if force else None, force=force, options=self.run_options(None))
            except BaseException as error:  # noqa: BLE001 - reported to the test thread below
                failures.append(error)

        threads = [threading.Thread(target=run, args=(c,)) for c in (self.campaign, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        if force:
            if self.active:  # each run asked for a new sample: at most one call per request per run
                for prompt in {prompt_id(self.prompt(r)) for r in self.inputs}:
                    self.forced[prompt] += 2
            research = self.cells("research")
            for row in list(self.pinned):
                if research[row].status not in (Status.PINNED, Status.CONFIRMED):
                    del self.pinned[row]
        self.check_refusal_kept(before, billed)

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data(), cap=st.one_of(st.none(), st.integers(0, 2)), window=st.sampled_from([None, 1]))
    def run_again(self, data: st.DataObject, cap: int | None, window: int | None) -> None:
        """Run Again on chosen research cells: a new sample for each distinct prompt, at most once per run (one
        window per row, too)."""
        rows = data.draw(st.lists(st.sampled_from(sorted(self.inputs)), min_size=1, max_size=3, unique=True))
        before, billed = self.values_with_data(), len(self.billed())
        with self.windows(window):
            self.campaign.run(["research"], rows=rows, force=True, options=self.run_options(cap))
        if self.active:
            for prompt in {prompt_id(self.prompt(r)) for r in rows}:
                self.forced[prompt] += 1
        after = self.cells("research")
        for row in rows:
            if row in self.pinned and after[row].status not in (Status.PINNED, Status.CONFIRMED):
                del self.pinned[row]  # Run Again unpins; a refused one keeps its pin
        self.check_refusal_kept(before, billed)

    @precondition(lambda self: self.active)
    @rule(company=st.sampled_from([*COMPANIES, "Outage Co"]), retry=st.sampled_from(["no", "all", "provider_error"]))
    def outage_then_retry(self, company: str, retry: str) -> None:
        """During a provider outage (every call refused: 401) a record comes in and a run computes it: cells whose
        request was not answered before end in provider_error, billed nothing. Once the provider is back, a plain
        run leaves them (rule 9); `run --errors` (every code, or --code provider_error) computes them again."""
        billed = len(self.billed())
        self.servers.provider.control(mode="401")
        try:
            handle = self.new_handle()
            record = {"handle": handle, "company": company, "title": "CEO"}
            ids, _ = self.campaign.add_rows([record])
            self.inputs[ids[0]] = {name: record.get(name) for name in self.fields}
            self.campaign.run(options=self.run_options(None))
        finally:
            self.servers.provider.control(mode=None)
        assert len(self.billed()) == billed, "a failed call was billed"
        failed = {r for r, c in self.cells("research").items() if c.error_code == "provider_error"}
        if retry == "no":
            self.campaign.run(options=self.run_options(None))
            still = {r for r, c in self.cells("research").items() if c.error_code == "provider_error"}
            assert still == failed, "a plain run retried a provider_error (rule 9)"
            return
        code = None if retry == "all" else retry
        self.campaign.run(RunSelection.of(["research"], errors=True, error_code=code), options=self.run_options(None))
        left = {r for r, c in self.cells("research").items() if c.error_code == "provider_error"}
        assert not left, f"rows {sorted(left)} still in provider_error after a retry"

    @rule(code=st.sampled_from([None, "provider_error"]))
    def retry_errors(self, code: str | None) -> None:
        """Retry the failed research cells (`run --errors`): a failure was billed nothing, so asking again keeps
        each request billed once (an answer to the same request elsewhere comes from the cache); once the provider
        is back, no retried cell is left in provider_error."""
        before, billed = self.values_with_data(), len(self.billed())
        failed = {r for r, c in self.cells("research").items() if c.status == Status.ERROR}
        self.campaign.run(RunSelection.of(["research"], errors=True, error_code=code), options=self.run_options(None))
        after = self.cells("research")
        if self.active:
            assert not {r for r in failed if after[r].error_code == "provider_error"}, "a retried cell still failed"
        self.check_refusal_kept(before, billed)

    @precondition(lambda self: bool(self.inputs))
    @rule(data=st.data())
    def run_export_again(self, data: st.DataObject) -> None:
        row = data.draw(st.sampled_from(sorted(self.inputs)))
        self.campaign.run(["push"], rows=[row], force=True, options=self.run_options(None))
        self.pushed_again[row] += 1

    @rule(active=st.booleans())
    def pause_or_resume(self, active: bool) -> None:
        if active:
            self.ws.resume(CAMPAIGN, "research", run=False)
            self.activated = True
        else:
            self.ws.pause(CAMPAIGN, "research")
        self.active = active

    @precondition(lambda self: bool(self.inputs))
    @rule()
    def freshness_tick(self) -> None:
        """A schedule that re-runs cells older than a second, two hours later: a new sample of each paid answer
        (asked for by the schedule), but exports whose payload did not change send nothing."""
        if not self.scheduled:
            add_schedule(self.ws, CAMPAIGN, every="1h", older_than="1s")
            self.scheduled = True
        self.clock += timedelta(hours=2)  # every cell is older than the limit then, the ones this tick computes too
        run_due(self.ws, clock=lambda: self.clock)
        if self.active:  # one new sample per distinct request, however many cells asked
            done = {row for row, cell in self.cells("research").items() if cell.status == Status.DONE}
            for prompt in {prompt_id(self.prompt(row)) for row in done}:
                self.forced[prompt] += 1

    @precondition(lambda self: len(self.inputs) >= 2)
    @rule()
    def killed_run_then_resume(self) -> None:
        """`runsheet run` killed with SIGKILL while calls are in flight, then run again in this process: each
        answer paid before the kill comes back from the cache."""
        self.ws.release()
        self.servers.provider.control(latency=0.5)
        env = {**os.environ, "RUNSHEET_WORKSPACE": str(self.path), "RUNSHEET_USER": "ops"}
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", "-c", CAMPAIGN, "--force", "--concurrency", "2"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.servers.provider.control(latency=0.0)
        self.kills += 1
        if self.active:  # the killed run asked for every research cell again (a person asked: --force)
            for prompt in {prompt_id(self.prompt(r)) for r in self.inputs}:
                self.forced[prompt] += 1
        self.pinned.clear()  # --force over whole columns does not unpin (only chosen cells are unpinned)...
        self.pinned.update(
            {r: c.value for r, c in self.cells("research").items() if c.status in (Status.PINNED, Status.CONFIRMED)}
        )  # ...so what is pinned now is what stays pinned
        for row in self.inputs:
            self.pushed_again[row] += 1
        self.campaign.run(options=self.run_options(None))

    # ---- spec and files -----------------------------------------------------------------------------------

    @rule(variant=st.sampled_from(["base", "study", "shout", "loud"]))
    def apply(self, variant: str) -> None:
        if variant == "loud" and self.variant != "shout":
            variant = "shout"
        billed = len(self.billed())
        self.ws.apply(spec_text(self.servers.provider, self.servers.receiver, variant), actor="ops")
        self.variant = variant
        names = self.campaign.spec.names
        for field in self.fields:
            assert field in names, f"apply dropped {field}, which holds data"
        if not self.active:
            assert len(self.billed()) == billed, "apply spent on a paused paid step"

    @precondition(lambda self: bool(self.inputs))
    @rule()
    def export_then_reimport(self) -> None:
        """The README's round trip: export to CSV (formula-looking text escaped), import it back by row_id."""
        path = self.path / f"export-{uuid.uuid4().hex}.csv"
        self.campaign.export(path, columns=self.fields)
        billed, sent = len(self.billed()), len(self.servers.receiver.deliveries())
        report = self.campaign.import_file(path, key="row_id", types={name: "VARCHAR" for name in self.fields})
        assert len(report.inserted) == 0
        assert len(self.billed()) == billed and len(self.servers.receiver.deliveries()) == sent

    # ---- invariants ---------------------------------------------------------------------------------------

    @invariant()
    def inputs_are_what_was_asked(self) -> None:
        stored = self.stored()
        assert sorted(stored) == sorted(self.inputs)
        for row, expected in self.inputs.items():
            got = {name: stored[row].get(name) for name in expected}
            assert got == expected, f"row {row}: inputs {got} != {expected}"

    @invariant()
    def computed_values_are_a_fresh_computation(self) -> None:
        stored = self.stored()
        research = self.cells("research")
        for row, values in self.inputs.items():
            domain = (values["company"] or "").lower()
            cell = research[row]
            if row in self.pinned:
                assert cell.value == self.pinned[row] and cell.status in (Status.PINNED, Status.CONFIRMED), cell
            elif cell.status == Status.DONE:
                assert cell.value == f"answer: {self.verb()} {domain}", f"row {row}: {cell}"
            assert cell.status not in (Status.ERROR,) or cell.error_code not in ("upstream_error",), cell
            assert stored[row]["domain"] == domain
            line = self.cells("line")[row]
            if line.status == Status.DONE and cell.value is not None:
                assert line.value == f"{cell.value} / {values['title']}", f"row {row}: {line} from {cell}"

    @invariant()
    def each_request_is_billed_once(self) -> None:
        billed = Counter(self.billed())
        if not self.activated:
            early = [p for p in billed if p not in self.action_prompts | self.copilot_prompts]
            assert not early, "a paid call went out before the step was activated"
        for prompt, times in billed.items():
            assert times <= 1 + self.forced[prompt] + 2 * self.kills, f"prompt {prompt[:8]} billed {times} times"
        assert self.ws.credits() == BALANCE - sum(billed.values()), "credits spent differ from the calls billed"

    @invariant()
    def exports_are_not_resent_unchanged(self) -> None:
        """An unchanged payload goes out again only when a person asked (Run Again on the export, which gives it a
        new key); a repeat under the same key is a redelivery, allowed only for what was in flight at a kill. An
        idempotency key never covers two payloads."""
        by_record: dict[int, list[tuple[str, str]]] = {}
        payload_of: dict[str, str] = {}
        for delivery in self.servers.receiver.deliveries():
            data = json.loads(delivery["body"])["data"]
            payload = json.dumps(data, sort_keys=True)
            key = delivery["headers"]["idempotency-key"]
            assert payload_of.setdefault(key, payload) == payload, "one idempotency key covered two payloads"
            by_record.setdefault(int(data["record"]), []).append((payload, key))
        redelivered = 0
        for row, sent in by_record.items():
            asked = 0
            for (before, before_key), (payload, key) in zip(sent, sent[1:], strict=False):
                if payload == before:
                    redelivered += key == before_key
                    asked += key != before_key
            assert asked <= self.pushed_again[row], f"row {row}: an unchanged payload was sent {asked} more times"
        assert redelivered <= 2 * self.kills, f"{redelivered} deliveries repeated under their key"

    @invariant()
    def run_if_is_decided_early(self) -> None:
        """An export whose run_if is false is skipped, never waiting or queued, and sends nothing (its payload's
        line ends with the title); a manual step whose run_if is false is skipped at once, unless it holds a value
        (kept, stale); where run_if holds, nothing is skipped."""
        push, note = self.cells("push"), self.cells("note")
        for row, values in self.inputs.items():
            if values["title"] == "CEO":
                assert push[row].status is Status.SKIPPED, f"row {row}: {push[row]}"
            if values["title"] == "@ceo":
                kept = note[row].status is Status.STALE and note[row].value is not None
                assert note[row].status is Status.SKIPPED or kept, f"row {row}: {note[row]}"
            else:
                assert note[row].status is not Status.SKIPPED, f"row {row}: {note[row]}"
        for delivery in self.servers.receiver.deliveries():
            assert not json.loads(delivery["body"])["data"]["line"].endswith(" / CEO"), "a skipped export was sent"

    @invariant()
    def history_never_shrinks(self) -> None:
        with self.ws.db.transaction(commit=False) as con:
            counts = tuple(
                int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                for table in ("runs", "activity", "credit_ledger")
            )
        assert all(now >= then for now, then in zip(counts, self.history, strict=True)), (counts, self.history)
        self.history = counts


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    provider, receiver = start_provider(lifetime=3600), start_receiver(lifetime=3600)
    template = tmp_path_factory.mktemp("template") / "ws"
    try:
        ws = Workspace.init(template)
        ws.set_setting("allowed_hosts", [f"127.0.0.1:{receiver.port}", f"127.0.0.1:{provider.port}"])
        result = ws.apply(spec_text(provider, receiver, "base"))
        assert result.paused == ["research"], "a new paid step must start paused"
        set_user(ws.db, "ops", "ops", "admin")  # a token acts as a user; ops is the workspace's one admin
        token = create_token(ws.db, "ops", "ops")
        ws.release()
        yield Servers(provider, receiver, template, token)
    finally:
        provider.stop()
        receiver.stop()


def test_invariants_hold_over_random_user_sessions(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-key")
    TrustMachine.servers, TrustMachine.root = servers, tmp_path
    chosen = os.environ.get("RUNSHEET_STATEFUL_SEED")
    config = settings(
        max_examples=int(os.environ.get("RUNSHEET_STATEFUL_EXAMPLES", "200")),
        stateful_step_count=int(os.environ.get("RUNSHEET_STATEFUL_STEPS", "12")),
        deadline=None,
        derandomize=chosen is None,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        # each step is real work (a DuckDB file, HTTP servers): shrinking a failure takes many minutes, so it is
        # asked for (RUNSHEET_STATEFUL_SHRINK=1); the failing steps are printed either way
        phases=[p for p in Phase if p != Phase.shrink or os.environ.get("RUNSHEET_STATEFUL_SHRINK")],
    )
    machine = TrustMachine if chosen is None else seed(int(chosen))(TrustMachine)
    run_state_machine_as_test(machine, settings=config)
