"""The action builder's own overhead per turn and its model calls per accepted step, on a scripted conversation
of 10 requests against the fake provider at 0 latency (tests/support/fake_llm.py, its own process).

Overhead per turn: the turn's wall time minus the time spent inside the provider's calls (`complete`), so what is
left is the builder's own work: reading the campaign and the reference, the pool, parsing, the validator, the
diff, the preview on 3 sample records and the chat's rows. It is reported against a floor measured in the same
run, alternating: one ad hoc run of a library action on one record (offline model), the engine's nearest
everyday operation. The first turn of a process also pays imports (jsonschema, sqlglot...): `overhead_ms_max`.

Run: nice .venv/bin/python -m bench builder   (BENCH_ROUNDS, default 2)
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "builder.json"
KEY_ENV = "RUNSHEET_BENCH_PROVIDER_KEY"
SPEC = """
campaign: people
columns:
  - {name: full_name, kind: input}
  - {name: email, kind: input}
  - {name: company, kind: input}
  - {name: title, kind: input}
"""
ROWS = [
    {"full_name": "Ada Lovelace", "email": "ada@analytical.io", "company": "Analytical", "title": "CTO"},
    {"full_name": "Grace Hopper", "email": "grace@cobol.dev", "company": "Cobol", "title": "VP Engineering"},
    {"full_name": "Alan Turing", "email": "alan@bletchley.uk", "company": "Bletchley", "title": ""},
]


def _proposal(kind: str, options: dict[str, Any], description: str) -> dict[str, Any]:
    """A scripted reply as the builder asks for it: a call of its tool whose arguments are the proposal."""
    return {"tool_call": {"kind": kind, "options": options, "description": description, "plan": ["p"], "changes": "c"}}


DOMAIN = {"expression": "lower(split_part(email, '@', 2))"}
ICP = {"prompt": "Score {{ company }} ({{ title }}) 1-10 against our ICP, one reason.", "tier": "standard"}
# (action, request, scripted replies): 10 requests, one a question, one repaired, one that stays invalid.
CONVERSATION: list[tuple[str, str, list[str]]] = [
    ("domain", "normalise the company domain", [_proposal("formula", DOMAIN, "The domain.")]),
    (
        "domain",
        "drop a leading www.",
        [
            _proposal(
                "formula", {"expression": "regexp_replace(lower(split_part(email, '@', 2)), '^www\\.', '')"}, "No www."
            )
        ],
    ),
    (
        "icp",
        "score each lead 1-10 against our ICP",
        [_proposal("ai", {"prompt": "Score {{ revenue }}"}, "Scores."), _proposal("ai", ICP, "Scores the fit.")],
    ),
    ("icp", "say it plainly in the description", [_proposal("ai", ICP, "Scores each lead's ICP fit, 1 to 10.")]),
    (
        "crm",
        "look up the company in our CRM by domain",
        [_proposal("http", {"url": "https://crm.example.com/c?email={{ email }}", "path": "data.name"}, "CRM lookup.")],
    ),
    ("icp", "what does this do?", [{"tool_call": {"answer": "It scores each lead."}}]),
    ("shout", "shout the email", [_proposal("formula", {"expression": "upper(mail)"}, "Shouts.")] * 2),
    ("opener", "write a one-line opener", [_proposal("ai", {"prompt": "Opener for {{ full_name }}"}, "Opener.")]),
    (
        "opener",
        "mention their company",
        [_proposal("ai", {"prompt": "Opener for {{ full_name }} at {{ company }}"}, "Opener naming the company.")],
    ),
    (
        "seniority",
        "flag senior titles",
        [_proposal("formula", {"expression": "title ILIKE '%VP%' OR title ILIKE '%C_O%'"}, "Senior title?")],
    ),
]


def conversation(folder: Path, api_base: str, control: Any) -> dict[str, Any]:
    from engine import BuilderModel, Workspace

    ws = Workspace.init(folder)
    ws.apply(SPEC)
    ws.campaign("people").add_rows(ROWS)
    builder = ws.builder(BuilderModel("openai/fake-builder", api_base=api_base, api_key_env=KEY_ENV))
    accepted = calls = 0
    for action, request, replies in CONVERSATION:
        control(replies=replies)
        message = builder.chat(action, request, campaign="people")
        proposal = message["proposal"]
        if proposal is None:
            calls += 1  # a question: one call, nothing to accept
            continue
        calls += proposal["model_calls"]
        if proposal["status"] == "proposed":
            builder.accept(message["message_id"])
            accepted += 1
    overheads = [t["seconds"] - t["provider_seconds"] for t in builder.timings]
    return {
        "turns": len(builder.timings),
        "accepted_steps": accepted,
        "model_calls": calls,
        "model_calls_per_accepted_step": round(calls / accepted, 3),
        "overhead_ms_median": round(statistics.median(overheads) * 1000, 1),
        "overhead_ms_max": round(max(overheads) * 1000, 1),
        "provider_ms_median": round(statistics.median(t["provider_seconds"] for t in builder.timings) * 1000, 1),
    }


def action_run_ms(folder: Path, n: int = 5) -> float:
    """The floor: one ad hoc run of a library action on one record (offline model), median of `n`: the engine's
    nearest everyday operation (reads the record, the call pool, a run's bookkeeping)."""
    from engine import Workspace

    ws = Workspace.init(folder)
    ws.apply(SPEC)
    ws.campaign("people").add_rows(ROWS)
    library = ws.actions()
    library.add("opener", "ai", {"prompt": "Opener for {{ full_name }}"}, description="An opener.")
    library.resume("opener")
    library.run("opener", "people", 1)  # warm
    times = []
    for _ in range(n):
        started = time.perf_counter()
        library.run("opener", "people", 2, force=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    from tests.support.provider import start_provider

    os.environ[KEY_ENV] = "sk-bench"
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    provider = start_provider(lifetime=600)
    results: list[dict[str, Any]] = []
    try:
        for n in range(rounds):
            provider.reset()
            with tempfile.TemporaryDirectory() as folder:
                floor = action_run_ms(Path(folder) / "floor")
                measured = conversation(Path(folder) / "ws", provider.api_base, provider.control)
            measured["action_run_ms"] = floor
            measured["overhead_vs_action_run"] = round(measured["overhead_ms_median"] / floor, 2)
            results.append(measured)
            print(f"round {n + 1}: {json.dumps(measured)}", flush=True)
    finally:
        provider.stop()
    report = {
        "what": "action builder: own overhead per turn (wall time minus time inside the provider's calls), fake "
        "provider at 0 latency; model calls per accepted step over a scripted conversation of 10 requests",
        "command": "nice .venv/bin/python -m bench builder",
        "load": os.getloadavg()[0],
        "rounds": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
