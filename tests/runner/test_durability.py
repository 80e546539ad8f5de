"""Crash safety and exclusivity of paid work: kill -9 the runner again and again, two runners at once, budgets,
and secrets that must never reach the disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine import Status, Workspace
from tests.runner.conftest import KEY_ENV, ai_spec
from tests.support.consent import apply_active
from tests.support.provider import REPO, ProviderProcess

CONCURRENCY = 64


def runner_process(workspace: Path, *extra: str, key: str = "sk-test-key") -> subprocess.Popen[bytes]:
    env = {**os.environ, KEY_ENV: key, "RUNSHEET_WORKSPACE": str(workspace)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            "-c",
            "enrich",
            "--concurrency",
            str(CONCURRENCY),
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def companies(n: int) -> list[dict[str, str]]:
    return [{"company": f"company-{i:05d}"} for i in range(n)]


def values_and_statuses(workspace: Workspace) -> tuple[list[object], Counter[str]]:
    frame = workspace.campaign("enrich").values()
    return frame["research"].to_list(), Counter(workspace.campaign("enrich").status_counts()["research"])


def test_kill_9_at_random_moments_then_resume_loses_nothing(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    fresh_provider.control(latency=0.2)  # 64 in flight: at most 320 calls/s, so 10,000 cells outlast 20 kills
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.add_credits(20_000)
    cells = 10_000
    workspace.campaign("enrich").add_rows(companies(cells))
    rng = random.Random(20261121)
    kills = 0
    while kills < 20:
        process = runner_process(workspace.path)
        time.sleep(rng.uniform(0.8, 2.2))
        assert process.poll() is None, "the run finished before it could be killed 20 times"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    final = runner_process(workspace.path)
    _, stderr = final.communicate(timeout=300)
    assert final.returncode == 0, stderr.decode()

    values, statuses = values_and_statuses(workspace)
    assert statuses == Counter({"done": cells})
    assert values == [f"answer: Research company-{i:05d}" for i in range(cells)]
    billed = Counter(entry["prompt"] for entry in fresh_provider.ledger()["billed"])
    assert len(billed) == cells
    billed_twice = sum(n - 1 for n in billed.values())
    assert billed_twice <= kills * CONCURRENCY
    runs = workspace.runs(100)
    assert not [r for r in runs if r["status"] == "running"]
    assert sum(r["status"] == "interrupted" for r in runs) <= kills


def test_two_runners_never_compute_the_same_cell(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=0.02)
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.add_credits(5_000)
    cells = 2_000
    workspace.campaign("enrich").add_rows(companies(cells))
    first, second = runner_process(workspace.path), runner_process(workspace.path)
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
    billed = Counter(entry["prompt"] for entry in fresh_provider.ledger()["billed"])
    assert sum(billed.values()) == cells and len(billed) == cells
    _, statuses = values_and_statuses(workspace)
    assert statuses == Counter({"done": cells})


def test_a_run_stops_calling_at_its_credit_cap(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    fresh_provider.control(latency=0.02)
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    campaign = workspace.campaign("enrich")
    campaign.add_rows(companies(300))
    process = runner_process(workspace.path, "--max-credits", "50")
    process.communicate(timeout=120)
    billed = len(fresh_provider.ledger()["billed"])
    assert 50 <= billed <= 50 + CONCURRENCY
    counts = campaign.status_counts()["research"]
    assert counts["done"] == 50 and counts["error"] == 250
    assert workspace.credits() == 1000 - 50
    cell = next(
        campaign.cell(r, "research") for r in range(1, 301) if campaign.cell(r, "research").status is Status.ERROR
    )
    assert cell.error_code == "insufficient_credits" and "add credits" in (cell.error_hint or "")
    # a later run with room finishes the rest: insufficient credits is a passing reason, retried
    report = campaign.run()
    assert report.counts()["research"]["done"] == 250


def test_the_workspace_balance_is_never_overdrawn(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.add_credits(-990)  # 10 left, at 1 credit per call
    campaign = workspace.campaign("enrich")
    campaign.add_rows(companies(40))
    campaign.run()
    assert workspace.credits() == 0
    assert len(fresh_provider.ledger()["billed"]) == 10


def test_an_api_key_never_reaches_a_file(tmp_path: Path, fresh_provider: ProviderProcess) -> None:
    canary = "sk-canary-7f3a9c1e5b2d"
    ws = Workspace.init(tmp_path / "ws")
    apply_active(ws, ai_spec(fresh_provider.api_base, transport="litellm"))
    ws.campaign("enrich").add_rows(companies(20) + [{"company": "x [[fake:401]]"}])
    process = runner_process(ws.path, key=canary)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr.decode()  # 3: some cells ended in error (the 401 one)
    assert ws.campaign("enrich").status_counts()["research"] == {"done": 20, "error": 1}
    export = subprocess.run(
        [sys.executable, "-m", "engine.cli", "query", "SELECT * FROM cells", "--format", "csv"],
        cwd=REPO,
        env={**os.environ, "RUNSHEET_WORKSPACE": str(ws.path)},
        capture_output=True,
        text=True,
    )
    assert canary not in export.stdout + export.stderr + stderr.decode()
    files = [p for p in ws.path.rglob("*") if p.is_file()]
    assert any(p.parent.name == "cache" for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), f"the key leaked into {path}"


@pytest.mark.parametrize("cells", [200])
def test_stop_cancels_calls_in_flight_and_starts_nothing_new(
    workspace: Workspace, fresh_provider: ProviderProcess, cells: int
) -> None:
    fresh_provider.control(latency=1.0)
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.set_setting("concurrency", 8)
    campaign = workspace.campaign("enrich")
    campaign.add_rows(companies(cells))
    process = runner_process(workspace.path, "--concurrency", "8")
    running: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (running and int(running[0]["done"]) > 0):  # type: ignore[call-overload]
        time.sleep(0.2)
        running = workspace.active_runs("enrich")
    assert len(running) == 1
    asked = time.monotonic()
    assert workspace.stop_run(int(running[0]["run_id"]))
    process.communicate(timeout=30)
    stopped_after = time.monotonic() - asked
    requests_at_stop = fresh_provider.ledger()["requests"]
    time.sleep(1.5)
    assert fresh_provider.ledger()["requests"] == requests_at_stop  # nothing new starts after the stop
    assert stopped_after < 10.0  # a generous bound: the 2 s figure is measured in bench/, not asserted here
    run = workspace.runs(1)[0]
    assert run["status"] == "stopped"
    counts = campaign.status_counts()["research"]
    assert counts.get("running", 0) == 0
    assert counts["done"] < cells and counts["queued"] > 0  # never started: given back, queued
    assert counts.get("error", 0) <= 8  # the calls in flight were cancelled
    report = campaign.run()  # and a later run finishes the job
    assert campaign.status_counts()["research"] == {"done": cells}
    assert report.counts()["research"]["done"] == cells - counts["done"]


def test_per_model_request_limits_space_the_calls(workspace: Workspace, fresh_provider: ProviderProcess) -> None:
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.set_setting("rate_limits", {"openai/fake-model": {"rpm": 120}})  # 2 a second, bursts of 2
    campaign = workspace.campaign("enrich")
    campaign.add_rows(companies(6))
    campaign.run()
    times = sorted(entry["at"] for entry in fresh_provider.ledger()["billed"])
    assert len(times) == 6
    assert times[-1] - times[0] >= 1.5  # 4 calls beyond the burst at 0.5 s each (a lower bound: noise only adds)


def test_a_campaign_cap_limits_what_the_campaign_spends_in_all(
    workspace: Workspace, fresh_provider: ProviderProcess
) -> None:
    apply_active(workspace, ai_spec(fresh_provider.api_base, transport="direct"))
    workspace.set_setting("campaign_caps", {"enrich": 8})
    campaign = workspace.campaign("enrich")
    campaign.add_rows(companies(5))
    campaign.run()
    campaign.add_rows(companies(10)[5:])
    campaign.run()
    assert campaign.status_counts()["research"] == {"done": 8, "error": 2}
    assert workspace.credits() == 1000 - 8
