"""`runsheet run` without a terminal (cron, CI) prints a progress line every few seconds (issue 15): done of
total, rate, credits, errors; with a terminal it draws a progress bar instead."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from engine import Workspace
from tests.cli.test_cli import REPO, cli, process_env, runsheet
from tests.support.consent import apply_active

SPEC = """
campaign: slow
columns:
  - {name: company, kind: input}
  - {name: research, kind: probe, inputs: [company], credits: 2, fail_on: broken, delay: 0.15}
"""
ROWS = 8
LINE = re.compile(
    r"^run (\d+) (running|ended): (\d+)/(\d+) cells done, [\d.]+/s, ([\d.]+) credits, (\d+) cached, "
    r"(\d+) errors?, (\d+\.\d|\d+m\d\d|\d+h\d\d)[sm]$"
)


def slow_workspace(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path / "ws")
    apply_active(ws, SPEC)
    ws.add_credits(100)
    companies = [f"co{i}" for i in range(1, ROWS)] + ["broken"]
    ws.campaign("slow").add_rows([{"company": c} for c in companies], run=False)
    ws.release()
    return tmp_path / "ws"


def test_a_run_in_a_log_prints_progress_lines_with_rising_counts_and_the_final_counts(tmp_path: Path) -> None:
    workspace = slow_workspace(tmp_path)
    done = runsheet(workspace, "run", "--concurrency", "1", "--progress-every", "0.1")
    assert done.returncode == 3, done.stderr  # one cell ended in error
    lines = done.stderr.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), f"not a progress line in {lines}"
    matches = [m for m in parsed if m is not None]
    running = [m for m in matches if m.group(2) == "running"]
    assert len(running) >= 2
    counts = [int(m.group(3)) for m in running]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # the done count rises, line after line
    assert {int(m.group(4)) for m in matches} == {ROWS}
    assert len({m.group(1) for m in matches}) == 1  # one run
    final = matches[-1]
    assert final.group(2) == "ended" and [m.group(2) for m in matches].count("ended") == 1
    assert (int(final.group(3)), int(final.group(4))) == (ROWS, ROWS)
    assert float(final.group(5)) == 2 * (ROWS - 1)  # the failed call is not charged
    assert int(final.group(7)) == 1
    assert "research" in done.stdout and "1 error" in done.stdout  # the report follows on stdout


def test_the_interval_comes_from_the_environment_and_zero_prints_none(tmp_path: Path) -> None:
    workspace = slow_workspace(tmp_path)
    result = cli(workspace, "run", "--concurrency", "4", "--progress-every", "0")
    assert result.exit_code == 3 and result.stderr == ""
    ws = Workspace(workspace)
    assert ws.campaign("slow").status_counts()["research"] == {"done": ROWS - 1, "error": 1}
    ws.release()
    workspace = slow_workspace(tmp_path / "again")
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", "--concurrency", "1", "--json"],
        cwd=REPO,
        env=process_env(workspace) | {"RUNSHEET_PROGRESS_EVERY": "0.1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 3 and len(lines) >= 2, done.stderr
    assert all(LINE.match(line) for line in lines), lines
    assert f" ended: {ROWS}/{ROWS} cells done" in lines[-1]
    assert '"outcomes"' in done.stdout  # --json keeps stdout for the report alone


def test_a_negative_interval_is_refused_before_anything_runs(tmp_path: Path) -> None:
    workspace = slow_workspace(tmp_path)
    result = cli(workspace, "run", "--progress-every", "-1")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --progress-every -1 is negative (give seconds, or 0 for none)"
    ws = Workspace(workspace)
    assert ws.campaign("slow").status_counts()["research"] == {"empty": ROWS}
    ws.release()


def test_on_a_terminal_the_run_draws_the_bar_instead_of_lines(tmp_path: Path) -> None:
    """stderr a terminal (a pseudo-terminal here): rich's bar, with the run's done of total, and no log lines."""
    workspace = slow_workspace(tmp_path)
    leader, follower = pty.openpty()
    drawn: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side closed: the process ended
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--concurrency", "1", "--progress-every", "0.1"],
        cwd=REPO,
        env=process_env(workspace) | {"COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    ) as process:
        os.close(follower)
        stdout, _ = process.communicate(timeout=120)
    reader.join(30)
    os.close(leader)
    screen = b"".join(drawn).decode("utf-8", "replace")
    assert process.returncode == 3, screen
    assert f"{ROWS}/{ROWS}" in screen and "run " in screen  # the bar, filled
    assert "cells done" not in screen  # no log lines
    assert "7 done, 1 error" in stdout


def test_resume_in_a_log_prints_progress_lines_too(tmp_path: Path) -> None:
    """`runsheet resume` runs what was accepted while paused like `run` does: with progress lines in a log."""
    ws = Workspace.init(tmp_path / "ws")
    apply_active(ws, SPEC)
    ws.add_credits(100)
    ws.pause("slow")
    ws.campaign("slow").add_rows([{"company": f"co{i}"} for i in range(1, ROWS + 1)])
    ws.release()
    refused = cli(tmp_path / "ws", "resume", "-c", "slow", "--progress-every", "-1")
    assert refused.exit_code == 1 and "--progress-every -1 is negative" in refused.stderr
    ws = Workspace(tmp_path / "ws")
    assert ws.campaign_state("slow")[1].campaign  # nothing resumed
    ws.release()
    done = runsheet(tmp_path / "ws", "resume", "-c", "slow", "--progress-every", "0.1")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) >= 2 and all(LINE.match(line) for line in lines), lines
    assert f" ended: {ROWS}/{ROWS} cells done" in lines[-1]
    assert "campaign slow resumed" in done.stdout
