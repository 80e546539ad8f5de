"""Copilot (issue 18): a result continued in a chat, turn by turn through the fake provider; the last reply
pinned as the cell's value behaves as a hand edit (the formula downstream recomputes, the export waits until the
pin is confirmed); a reply saved to the record is a Save to Record marked AI generated; a provider failure
changes no cell and no record and bills nothing twice; viewers read chats and never send; bad input names the
fix; offline, the offline model answers and says so."""

from __future__ import annotations

import json

import pytest

from engine import Campaign, EditError, NotFoundError, PermissionDeniedError, Status, Workspace
from engine.auth import set_user
from tests.actions.conftest import Receiver
from tests.conftest import snapshot
from tests.copilot.conftest import script
from tests.support.provider import ProviderProcess

REPLIES = ["Ada, quick note on Analytical.", "Ada: congrats on the Series B.", "Congrats on the Series B, Ada!"]


def pushed(receiver: Receiver) -> list[tuple[int, str]]:
    return [
        (json.loads(d["body"])["data"]["record"], json.loads(d["body"])["data"]["opener"])
        for d in receiver.deliveries()
    ]


def record_and_cells(ws: Workspace) -> dict[str, list[str]]:
    """Every campaign table (records and cells) and the credit ledger: what a failed turn must leave as it was."""
    return {k: v for k, v in snapshot(ws).items() if k.startswith("c") and k[1].isdigit() or k == "credit_ledger"}


def test_three_turns_then_the_last_reply_pinned_behaves_as_a_hand_edit(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess, receiver: Receiver
) -> None:
    assert leads.cell(1, "push").status is Status.DONE and len(pushed(receiver)) == 2
    start, sent = ws.credits(), fresh_provider.ledger()["requests"]
    copilot = ws.copilot()  # the step's own model: the fake provider
    chat = copilot.start(campaign="leads", row=1, column="opener")
    seed = chat["seed"]
    assert seed["record"]["full_name"] == "Ada Lovelace" and seed["step"]["kind"] == "ai"
    assert seed["result"] == leads.cell(1, "opener").value
    assert "Write an opener to Ada Lovelace at Analytical" in seed["prompt"]
    assert copilot.start(campaign="leads", row=1, column="opener")["chat_id"] == chat["chat_id"]  # kept per source

    script(fresh_provider, *REPLIES)
    replies = [copilot.say(chat["chat_id"], said) for said in ("shorter", "mention their Series B", "warmer")]
    assert [r["content"] for r in replies] == REPLIES and {r["role"] for r in replies} == {"assistant"}
    assert fresh_provider.ledger()["requests"] == sent + 3
    assert ws.credits() == start - 3  # tier fast: one credit a turn, once each
    history = copilot.show(chat["chat_id"])["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    turns = ws.query("SELECT outcome, cost FROM activity WHERE action = 'copilot' ORDER BY logged_at").rows()
    assert turns == [("done", 1.0)] * 3

    used = copilot.save(chat["chat_id"], to="cell")
    assert used["used_as"] == "cell:opener" and used["message_id"] == replies[-1]["message_id"]
    opener = leads.cell(1, "opener")
    assert (opener.value, opener.status) == (REPLIES[-1], Status.PINNED)
    assert leads.cell(1, "opener_length").value == len(REPLIES[-1])  # the formula downstream recomputed
    waiting = leads.cell(1, "push")
    assert (waiting.status, waiting.waiting_on) == (Status.WAITING, "opener")
    leads.run()
    assert len(pushed(receiver)) == 2  # an unconfirmed edit is not sent
    leads.run(["opener"], rows=[1])
    assert leads.cell(1, "opener").value == REPLIES[-1]  # recompute never overwrites a pin
    leads.confirm(1, "opener")
    assert pushed(receiver)[-1] == (1, REPLIES[-1]) and len(pushed(receiver)) == 3
    edits = ws.query("SELECT actor, new_value FROM activity WHERE action = 'edit' AND column_name = 'opener'").rows()
    assert edits == [(ws.actor, REPLIES[-1])]  # logged as the hand edit it is
    assert ws.credits() == start - 3


def test_a_reply_saved_to_the_record_is_a_save_to_record_marked_ai_generated(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    copilot = ws.copilot()
    chat = copilot.start(campaign="leads", row=2, column="opener")
    script(fresh_provider, "Grace, one line on Cobol.")
    copilot.say(chat["chat_id"], "shorter")
    before = leads.cell(2, "opener")
    used = copilot.save(chat["chat_id"], to="record")
    assert used["used_as"] == "record:notes" and used["used_by"] == ws.actor and used["used_at"]
    assert leads.cell(2, "notes").value == "opener: Grace, one line on Cobol."
    assert leads.cell(2, "opener") == before  # the cell is untouched
    copilot.save(chat["chat_id"], to="record", field="short_opener")
    assert leads.cell(2, "short_opener").value == "Grace, one line on Cobol."
    timeline = ws.activity(20, campaign="leads", row_id=2)
    marked = [
        (a["action"], a["outcome"], a["column_name"], a["actor"]) for a in timeline if a["action"] == "copilot_reply"
    ]
    assert sorted(marked) == [
        ("copilot_reply", "saved", "notes", ws.actor),
        ("copilot_reply", "saved", "short_opener", ws.actor),
    ]


def test_an_action_result_is_continued_and_saved_to_its_record(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    library = ws.actions()
    library.add("intro", "ai", {"prompt": "Introduce {{ full_name }}"}, description="A one-line intro.")
    library.resume("intro")
    result = library.run("intro", "leads", 1)
    copilot = ws.copilot(
        "openai/fake-copilot", api_base=fresh_provider.api_base, api_key_env="RUNSHEET_TEST_PROVIDER_KEY"
    )
    chat = copilot.start(result=result["result_id"])
    assert chat["seed"]["step"]["description"] == "A one-line intro." and chat["seed"]["result"] == result["value"]
    script(fresh_provider, "Ada, who wrote the first program.")
    copilot.say(chat["chat_id"], "say who she is")
    with pytest.raises(EditError, match="no campaign cell") as refused:
        copilot.save(chat["chat_id"], to="cell")
    assert "--column" in refused.value.hint
    copilot.save(chat["chat_id"], to="record")
    assert leads.cell(1, "notes").value == "intro: Ada, who wrote the first program."
    saved = ws.query("SELECT action_id FROM activity WHERE action = 'save_to_record'").rows()
    assert saved == [(result["action_id"],)]  # the timeline's AI generated entry names the action
    copilot.save(chat["chat_id"], to="cell", column="opener")  # a step of the record's campaign, named
    assert (leads.cell(1, "opener").value, leads.cell(1, "opener").status) == (
        "Ada, who wrote the first program.",
        Status.PINNED,
    )
    library.delete("intro", confirm=True)  # its results go, and their chats with them
    with pytest.raises(NotFoundError):
        copilot.show(chat["chat_id"])


def test_a_provider_failure_leaves_cell_and_record_and_bills_nothing_twice(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    copilot = ws.copilot()
    chat = copilot.start(campaign="leads", row=1, column="opener")
    before, sent = record_and_cells(ws), fresh_provider.ledger()["requests"]
    script(fresh_provider, {"status": 401})
    failed = copilot.say(chat["chat_id"], "shorter")
    assert (
        failed["role"] == "error"
        and "provider_error" in failed["content"]
        and "nothing was changed" in failed["content"]
    )
    assert record_and_cells(ws) == before
    with pytest.raises(EditError, match="no reply to save"):
        copilot.save(chat["chat_id"], to="cell")
    assert record_and_cells(ws) == before

    start = ws.credits()
    script(fresh_provider, {"status": 500}, "Short.")  # a transient failure is retried inside the one call
    reply = copilot.say(chat["chat_id"], "shorter")
    assert reply["content"] == "Short." and reply["credits"] == 1.0
    assert ws.credits() == start - 1
    assert len([r for r in ws.credit_ledger() if r["reason"] == "copilot"]) == 1
    assert fresh_provider.ledger()["requests"] == sent + 3  # 401, then 500 and the answer
    # the failed turn is not shown to the model again: the retry's history has no unanswered message
    assert [m["role"] for m in copilot.show(chat["chat_id"])["messages"]] == ["user", "error", "user", "assistant"]


def test_viewers_read_chats_and_may_not_send_save_or_reset(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    set_user(ws.db, ws.actor, ws.actor, "admin")
    set_user(ws.db, ws.actor, "vic", "viewer")
    set_user(ws.db, ws.actor, "max", "member")
    chat = ws.copilot(actor="max").start(campaign="leads", row=1, column="opener")
    script(fresh_provider, "Short.")
    ws.copilot(actor="max").say(chat["chat_id"], "shorter")
    viewer = ws.copilot(actor="vic")
    assert [m["content"] for m in viewer.show(chat["chat_id"])["messages"]] == ["shorter", "Short."]
    assert viewer.find(campaign="leads", row=1, column="opener")["chat_id"] == chat["chat_id"]
    before, sent = snapshot(ws), fresh_provider.ledger()["requests"]
    for attempt in (
        lambda: viewer.say(chat["chat_id"], "longer"),
        lambda: viewer.start(campaign="leads", row=2, column="opener"),
        lambda: viewer.save(chat["chat_id"], to="cell"),
        lambda: viewer.save(chat["chat_id"], to="record"),
        lambda: viewer.reset(chat["chat_id"]),
    ):
        with pytest.raises(PermissionDeniedError):
            attempt()
    after = snapshot(ws)
    assert {k: v for k, v in after.items() if k != "activity"} == {k: v for k, v in before.items() if k != "activity"}
    assert fresh_provider.ledger()["requests"] == sent


def test_bad_input_names_the_fix(ws: Workspace, leads: Campaign) -> None:
    copilot = ws.copilot()
    with pytest.raises(NotFoundError, match="no Copilot chat 99") as unknown:
        copilot.say(99, "shorter")
    assert "runsheet copilot start" in unknown.value.hint
    chat = copilot.start(campaign="leads", row=1, column="opener")
    with pytest.raises(EditError, match="say how the result should change") as empty:
        copilot.say(chat["chat_id"], "  ")
    assert "copilot say" in empty.value.hint
    with pytest.raises(EditError, match="no result to continue") as nothing:
        copilot.start(campaign="leads", row=1, column="summary")  # a manual step never run
    assert "runsheet run -c leads --column summary --rows 1" in nothing.value.hint
    with pytest.raises(EditError, match="input column"):
        copilot.start(campaign="leads", row=1, column="company")
    with pytest.raises(NotFoundError, match="no row 9"):
        copilot.start(campaign="leads", row=9, column="opener")
    with pytest.raises(EditError, match="say which result"):
        copilot.start(campaign="leads", column="opener")
    assert copilot.show(chat["chat_id"])["messages"] == []


def test_reset_forgets_the_messages_and_keeps_record_and_cell(
    ws: Workspace, leads: Campaign, fresh_provider: ProviderProcess
) -> None:
    copilot = ws.copilot()
    chat = copilot.start(campaign="leads", row=1, column="opener")
    script(fresh_provider, "Short.")
    copilot.say(chat["chat_id"], "shorter")
    copilot.save(chat["chat_id"], to="cell")
    assert copilot.reset(chat["chat_id"]) == 2
    again = copilot.show(chat["chat_id"])
    assert again["messages"] == [] and again["seed"]["result"] == "Short."  # seeded anew: the pinned value
    assert leads.cell(1, "opener").value == "Short."


def test_offline_the_offline_model_answers_deterministically_and_says_so(ws: Workspace) -> None:
    ws.apply(
        "campaign: solo\ncolumns:\n  - {name: company, kind: input}\n"
        "  - {name: blurb, kind: ai, prompt: 'Describe {{ company }}'}\n"
    )
    ws.resume("solo", "blurb", run=False)
    campaign = ws.campaign("solo")
    campaign.add_rows([{"company": "Acme"}])
    campaign.run()
    start = ws.credits()
    copilot = ws.copilot()
    chat = copilot.start(campaign="solo", row=1, column="blurb")
    first = copilot.say(chat["chat_id"], "shorter please")
    assert first["content"].startswith("[offline model] shorter please") and first["model"] == "offline"
    copilot.reset(chat["chat_id"])
    assert copilot.say(chat["chat_id"], "shorter please")["content"] == first["content"]
    assert ws.credits() == start
