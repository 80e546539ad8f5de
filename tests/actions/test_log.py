"""`runsheet log`: runs with trigger, actor, scope, outcomes and credits; following a live run to its end; and a
deleted step keeping its logs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from typer.testing import CliRunner

from engine import Workspace
from engine.cli import app
from tests.support.consent import apply_active

SPEC = """
campaign: l
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company], credits: 2, delay: DELAY}
  - {name: summary, kind: formula, expression: "upper(research)"}
"""


def make(tmp_path: Path, delay: float = 0.0) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    apply_active(ws, SPEC.replace("DELAY", str(delay)))
    ws.campaign("l").add_rows([{"company": f"c{i}"} for i in range(4)])
    return ws


def log_lines(ws: Workspace, *args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["log", "-w", str(ws.path), "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def test_the_log_lists_runs_with_trigger_actor_scope_outcomes_and_credits(tmp_path: Path) -> None:
    ws = make(tmp_path)
    ws.campaign("l", actor="max", trigger="cli").run(["research"], rows=[1, 2, 3])
    ws.campaign("l", actor="sched", trigger="schedule").run()
    runs = log_lines(ws, "-c", "l")
    cli_run = next(r for r in runs if r["trigger"] == "cli")
    assert (cli_run["actor"], cli_run["status"], cli_run["done"], cli_run["total"]) == ("max", "done", 3, 3)
    assert cli_run["scope"] == "run: research / some rows"
    assert cli_run["outcomes"]["done"] >= 3 and cli_run["credits"] == 6
    assert cli_run["seconds"] >= 0
    scheduled = log_lines(ws, "--trigger", "schedule")
    assert [(r["actor"], r["credits"]) for r in scheduled] == [("sched", 2)]
    table = CliRunner().invoke(app, ["log", "-w", str(ws.path)])
    assert table.exit_code == 0 and "schedule" in table.output and "sched" in table.output


def test_follow_prints_progress_until_the_run_ends(tmp_path: Path) -> None:
    ws = make(tmp_path, delay=0.2)
    ws.set_setting("concurrency", 1)
    started = threading.Event()
    worker = threading.Thread(target=lambda: ws.campaign("l").run(["research"], options=_options(started)), daemon=True)
    worker.start()
    started.wait(30)
    lines = log_lines(ws, "--follow", "--until-idle", "--interval", "0.1")
    worker.join(60)
    research = [line for line in lines if line["scope"].startswith("run: research")]
    assert research[-1]["status"] == "done" and research[-1]["done"] == research[-1]["total"] == 4
    assert len({line["done"] for line in research}) >= 2  # progress was seen moving, not only the end


def _options(started: threading.Event):  # type: ignore[no-untyped-def]
    from engine import RunOptions

    return RunOptions(progress=lambda _: started.set())


def test_deleting_a_step_keeps_its_logs(tmp_path: Path) -> None:
    """History is never deleted as a side effect (issue 13, item 5): only `runsheet history purge` deletes it."""
    ws = make(tmp_path)
    ws.campaign("l").run()
    before = [a for a in ws.activity(1000) if a["column_name"] == "summary"]
    assert before and {a["column_name"] for a in ws.activity(100)} >= {"research", "summary"}
    ws.apply(
        SPEC.replace("DELAY", "0.0").replace('  - {name: summary, kind: formula, expression: "upper(research)"}\n', "")
    )
    assert [a for a in ws.activity(1000) if a["column_name"] == "summary"] == before
