"""The action builder chat (issue 18): a request becomes a checked step of the right kind, shown as a diff with
its estimate and a preview on sample records; nothing is applied without accept, and accept applies exactly the
diff shown; an invalid reply is repaired once or reported, never applied; a provider failure changes nothing;
Reset Chat clears the history; offline, drafts come from the templates and say so."""

from __future__ import annotations

import json

import pytest
import yaml

from engine import ActionBuilder, Campaign, EditError, PermissionDeniedError, Workspace
from tests.builder.conftest import proposal, script
from tests.conftest import snapshot
from tests.support.provider import ProviderProcess

SCORE = {
    "prompt": "Score how well {{ company }} ({{ title }}) fits our ICP from 1 to 10, with one reason.",
    "system": "You are a RevOps analyst.",
    "output_schema": {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
    },
    "tier": "fast",
    "required": ["company"],
}
SENIORITY = {"function": "campaigns.outbound_steps:seniority", "inputs": ["title"]}
DOMAIN = {"expression": "lower(trim(split_part(email, '@', 2)))"}
CRM = {
    "url": "https://crm.example.com/companies?domain={{ domain }}",
    "headers": {"Authorization": "Bearer {{ secrets.CRM_TOKEN }}"},
    "secrets": ["CRM_TOKEN"],
    "path": "data.name",
}


def actions_table(ws: Workspace) -> list[str]:
    return snapshot(ws)["actions"]


@pytest.mark.parametrize(
    ("kind", "options", "request_text"),
    [
        ("ai", SCORE, "score each lead 1-10 against our ICP and give one reason"),
        ("formula", DOMAIN, "normalise the company domain"),
        ("http", CRM, "look up the company in our CRM by domain"),
        ("python", SENIORITY, "classify each lead's seniority from the title"),
    ],
)
def test_a_request_becomes_a_valid_step_of_its_kind_and_nothing_is_applied(
    ws: Workspace,
    people: Campaign,
    builder: ActionBuilder,
    fresh_provider: ProviderProcess,
    kind: str,
    options: dict[str, object],
    request_text: str,
) -> None:
    script(fresh_provider, proposal(kind, options, f"Does: {request_text}."))
    before = actions_table(ws)
    message = builder.turn("step", request_text, campaign="people")
    shown = message["proposal"]
    assert shown["status"] == "proposed", shown.get("error")
    assert shown["kind"] == kind and shown["new"] is True and shown["model_calls"] == 1
    assert yaml.safe_load(shown["after"]) == {"description": f"Does: {request_text}.", "kind": kind, **options}
    assert shown["diff"].startswith("--- /dev/null") and f"+kind: {kind}" in shown["diff"]
    assert any("campaign 'people'" in r for r in shown["read"]) and "reference" in shown["read"][0]
    assert shown["estimate"]["records"] == 3
    assert actions_table(ws) == before  # proposed, not applied
    assert "Nothing is applied until you accept" in message["content"]
    sent = fresh_provider.ledger()["requests"]
    assert sent == 1
    if kind == "formula":  # free: previewed at once on the sample records
        assert [r["value"] for r in shown["preview"]["rows"]] == ["analytical.io", "cobol.dev", "bletchley.uk"]
    if kind == "python":  # free: run on the sample records at once, with the project's own function
        assert [r["value"] for r in shown["preview"]["rows"]] == ["executive", "executive", "unknown"]
    if kind == "http":  # reaches the network: priced first, run only when confirmed
        assert shown["preview"]["status"] == "priced" and shown["preview"]["rows"] == []


def test_the_builder_is_shown_the_reference_columns_samples_and_context(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    ws.set_context("icp", "Mid-market B2B SaaS")
    script(fresh_provider, proposal("formula", DOMAIN, "The domain."))
    builder.turn("step", "normalise the domain", campaign="people", attachments={"crm.md": "GET /companies"})
    with ws.db.transaction(commit=False) as con:  # what the model was sent is the chat's user message's context
        [(content,)] = con.execute("SELECT content FROM action_chats WHERE role = 'assistant'").fetchall()
    assert "global context documents: icp" in content and "attached documentation: crm.md" in content
    from engine.builder.reading import read_workspace
    from engine.store.catalog import load_campaign

    with ws.db.transaction(commit=False) as con:
        reading = read_workspace(con, load_campaign(con, "people"), {"crm.md": "GET /companies"})
    text = reading.as_text()
    assert "## formula" in text and "expression: str, required" in text  # generated from the options models
    assert "- email (input, VARCHAR): ada@analytical.io | grace@cobol.dev | alan@bletchley.uk" in text
    assert "icp" in text and "GET /companies" in text


def test_an_invalid_reply_is_repaired_once_with_the_error(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    bad = proposal("formula", {"expression": "upper(revenue)"}, "Shouts the revenue.")
    script(fresh_provider, bad, proposal("formula", DOMAIN, "The company's domain, lower case."))
    shown = builder.turn("step", "normalise the company domain", campaign="people")["proposal"]
    assert shown["status"] == "proposed" and shown["model_calls"] == 2
    assert "revenue" in shown["repaired_from"]
    assert shown["options"] == DOMAIN


def test_an_invalid_reply_that_stays_invalid_is_reported_never_applied(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    bad = proposal("ai", {"prompt": "Score {{ revenue }}", "tier": "huge"}, "Scores.")
    script(fresh_provider, bad, bad)
    before = actions_table(ws)
    message = builder.turn("step", "score them", campaign="people")
    assert message["proposal"]["status"] == "invalid" and message["proposal"]["model_calls"] == 2
    assert "invalid and is not applied" in message["content"]
    with pytest.raises(EditError, match="cannot be applied"):
        builder.accept(message["message_id"])
    assert actions_table(ws) == before


def test_accept_applies_exactly_the_diff_shown_and_a_new_action_starts_paused(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    script(fresh_provider, proposal("ai", SCORE, "Scores each lead against our ICP, with one reason."))
    message = builder.turn("icp_fit", "score each lead 1-10 against our ICP and give one reason", campaign="people")
    shown = builder.accept(message["message_id"])
    assert shown["active"] is False  # consent first: a new action waits to be resumed
    applied = yaml.dump({"description": shown["description"], "kind": shown["kind"], **shown["options"]})
    assert yaml.safe_load(applied) == yaml.safe_load(message["proposal"]["after"])
    with pytest.raises(EditError, match="accepted already"):
        builder.accept(message["message_id"])


def test_the_description_changes_with_the_step(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    script(
        fresh_provider,
        proposal("formula", DOMAIN, "The company's domain, lower case."),
        proposal(
            "formula",
            {"expression": "regexp_replace(lower(split_part(email, '@', 2)), '^www\\.', '')"},
            "The company's domain, lower case, without a leading www.",
            "strip www.",
        ),
    )
    first = builder.turn("domain", "normalise the company domain", campaign="people")
    builder.accept(first["message_id"])
    second = builder.turn("domain", "also drop a leading www.", campaign="people")["proposal"]
    assert "-description: The company's domain, lower case." in second["diff"]
    assert "+description: The company's domain, lower case, without a leading www." in second["diff"]
    assert second["new"] is False
    builder.accept(builder.history("domain")[-1]["message_id"])
    shown = ws.actions().show("domain")
    assert shown["description"] == "The company's domain, lower case, without a leading www."
    assert "regexp_replace" in shown["options"]["expression"]


def test_a_proposal_is_not_applied_once_the_action_changed_since(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    ws.actions().add("domain", "formula", DOMAIN, description="The domain.")
    script(fresh_provider, proposal("formula", {"expression": "upper(email)"}, "Shouts the email."))
    message = builder.turn("domain", "shout the email", campaign="people")
    ws.actions().update("domain", description="Someone else's edit.")
    before = actions_table(ws)
    with pytest.raises(EditError, match="changed since"):
        builder.accept(message["message_id"])
    assert actions_table(ws) == before


def test_a_paid_preview_is_priced_then_runs_only_once_confirmed(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    paid = {
        "prompt": "Score {{ company }} against our ICP",
        "model": "openai/fake-model",
        "api_base": fresh_provider.api_base,
        "api_key_env": "RUNSHEET_TEST_PROVIDER_KEY",
    }
    script(fresh_provider, proposal("ai", paid, "Scores each lead."))
    start = ws.credits()
    message = builder.turn("icp_fit", "score each lead", campaign="people")
    shown = message["proposal"]["preview"]
    assert shown["status"] == "priced" and shown["credits"] == 9.0 and shown["calls"] == 3
    assert ws.credits() == start - 3.0  # the builder's own call (standard tier); the preview spent nothing
    assert fresh_provider.ledger()["requests"] == 1
    ran = builder.confirm_preview(message["message_id"])["preview"]
    assert ran["status"] == "ran" and [r["status"] for r in ran["rows"]] == ["done"] * 3
    assert [r["value"] for r in ran["rows"]][0] == "answer: Score Analytical against our ICP"
    assert ws.credits() == start - 12.0
    reasons = sorted(r["reason"] for r in ws.credit_ledger() if r["reason"].startswith("builder"))
    assert reasons == ["builder", "builder_preview"]


def test_a_provider_failure_leaves_the_action_as_it_was(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    ws.actions().add("domain", "formula", DOMAIN, description="The domain.")
    before = actions_table(ws)
    start = ws.credits()
    script(fresh_provider, {"status": 401})
    message = builder.turn("domain", "shout the email", campaign="people")
    assert message["proposal"]["status"] == "failed" and "provider_error" in message["proposal"]["error"]
    assert "The action is unchanged" in message["content"]
    assert actions_table(ws) == before and ws.credits() == start
    logged = ws.query("SELECT action, outcome, cost FROM activity WHERE action = 'builder'").rows()
    assert logged == [("builder", "error", 0.0)]


def test_a_transient_failure_is_retried_like_any_call(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    script(fresh_provider, {"status": 500}, proposal("formula", DOMAIN, "The domain."))
    shown = builder.turn("domain", "normalise the domain", campaign="people")["proposal"]
    assert shown["status"] == "proposed" and fresh_provider.ledger()["requests"] == 2


def test_reset_chat_clears_the_history_and_keeps_the_action(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    script(fresh_provider, proposal("formula", DOMAIN, "The domain."))
    builder.accept(builder.turn("domain", "normalise the domain", campaign="people")["message_id"])
    assert [m["role"] for m in builder.history("domain")] == ["user", "assistant", "event"]
    assert builder.reset("domain") == 3
    assert builder.history("domain") == [] and ws.actions().show("domain")["kind"] == "formula"


def test_offline_drafts_from_a_template_and_says_so(ws: Workspace, people: Campaign) -> None:
    builder = ws.builder()
    message = builder.turn("fit", "score each lead 1-10 against our ICP and give one reason", campaign="people")
    assert message["content"].startswith(
        "offline: drafted from the template icp_score; set a model to have it written for you"
    )
    shown = message["proposal"]
    assert shown["status"] == "proposed" and shown["model_calls"] == 0 and shown["category"] == "analysis"
    assert shown["preview"]["status"] == "ran" and shown["preview"]["credits"] == 0  # free on the offline model
    assert all(1 <= r["value"]["score"] <= 10 for r in shown["preview"]["rows"])
    assert builder.accept(message["message_id"])["category"] == "analysis"
    unmatched = builder.turn("x", "translate the bio to French")["content"]
    assert unmatched.startswith("offline: no built-in template matches your words")


def test_questions_are_answered_from_the_spec_and_the_provenance(ws: Workspace, people: Campaign) -> None:
    library = ws.actions()
    library.add("opener", "ai", {"prompt": "Hi {{ full_name }}", "run_if": "title <> ''"}, description="An opener.")
    library.resume("opener")
    assert library.run("opener", "people", 3)["status"] == "skipped"
    answer = ws.builder().chat("opener", "why did row 3 get skipped?")
    assert answer["proposal"] is None and answer["content"].startswith("offline:")
    assert "An opener." in answer["content"] and "run_if: title <> ''" in answer["content"]
    assert "Record 3:" in answer["content"] and "skipped" in answer["content"].split("Record 3:")[1]


def test_a_formula_failing_on_one_sample_record_is_that_record_s_error(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    expression = "CAST(CASE WHEN title = '' THEN 'no title' ELSE length(title)::VARCHAR END AS INTEGER)"
    script(fresh_provider, proposal("formula", {"expression": expression}, "The title's length."))
    before = snapshot(ws)["action_chats"]
    proposed = builder.turn("size", "the title's length", campaign="people")["proposal"]
    assert proposed["status"] == "proposed", proposed.get("error")
    shown = proposed["preview"]
    assert [(r["status"], r["value"]) for r in shown["rows"]] == [("done", 3), ("done", 14), ("error", None)]
    assert "no title" in shown["rows"][2]["error"]
    assert len(snapshot(ws)["action_chats"]) == len(before) + 2  # the preview left nothing behind but the chat


def test_only_admins_build_and_deleting_an_action_removes_its_chat(ws: Workspace, people: Campaign) -> None:
    ws.set_role("ann", "admin")
    Workspace(ws.path, actor="ann").set_role("max", "member")
    admin = Workspace(ws.path, actor="ann").builder()
    admin.accept(admin.turn("fit", "score each lead against our ICP", campaign="people")["message_id"])
    member = Workspace(ws.path, actor="max").builder()
    before = snapshot(ws)
    with pytest.raises(PermissionDeniedError):
        member.turn("fit", "make it shorter", campaign="people")
    with pytest.raises(PermissionDeniedError):
        member.reset("fit")
    assert len(member.history("fit")) == 3  # members see the actions they may see, and their chats
    assert snapshot(ws)["action_chats"] == before["action_chats"]
    Workspace(ws.path, actor="ann").actions().delete("fit", confirm=True)
    assert admin.history("fit") == []


def test_a_turn_the_credits_cannot_pay_for_asks_nothing_and_spends_nothing(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    ws.add_credits(-(ws.credits() - 1.0), reason="test: leave 1")
    script(fresh_provider, proposal("formula", DOMAIN, "The domain."))
    message = builder.turn("domain", "normalise the domain", campaign="people")
    assert message["proposal"]["status"] == "failed" and "insufficient_credits" in message["proposal"]["error"]
    assert fresh_provider.ledger()["requests"] == 0 and ws.credits() == 1.0
    assert ws.actions().listed() == []


def test_a_model_answers_a_question_from_the_facts_it_is_given(
    ws: Workspace, people: Campaign, builder: ActionBuilder, fresh_provider: ProviderProcess
) -> None:
    ws.actions().add("domain", "formula", DOMAIN, description="The company's domain.")
    script(fresh_provider, json.dumps({"answer": "It takes the part of the email after the @."}))
    message = builder.chat("domain", "what does this do?")
    assert message["content"] == "It takes the part of the email after the @." and message["proposal"] is None
    assert fresh_provider.ledger()["requests"] == 1
    logged = ws.query("SELECT action, outcome FROM activity WHERE action = 'builder'").rows()
    assert logged == [("builder", "done")]


def test_a_renamed_action_keeps_its_chat_and_a_draft_chat_is_never_taken_over(ws: Workspace, people: Campaign) -> None:
    builder = ws.builder()
    builder.accept(builder.turn("fit", "score each lead against our ICP", campaign="people")["message_id"])
    builder.turn("draft", "research summary of the prospect")  # a chat about an action not yet accepted
    ws.actions().rename("fit", "icp")
    assert [m["role"] for m in builder.history("icp")] == ["user", "assistant", "event"]
    assert builder.history("fit") == []
    with pytest.raises(EditError, match="chat about a new action 'draft'"):
        ws.actions().rename("icp", "draft")
    assert len(builder.history("draft")) == 2 and ws.actions().show("icp")["kind"] == "ai"
