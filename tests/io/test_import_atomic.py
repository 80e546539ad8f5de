"""An import is one transaction: a process killed with SIGKILL in the middle of one leaves the campaign
exactly as it was, and importing the file again gives exactly the file's rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from engine import Workspace
from tests.conftest import snapshot
from tests.io.conftest import PEOPLE_SPEC

REPO = Path(__file__).resolve().parents[2]
ROWS = 120_000
SEED = 10
# Runs the import in its own process and parks it at a stage, inside the transaction, until it is killed.
IMPORTER = """
import sys, time
from pathlib import Path
from engine import Workspace

workspace, file, marker, stop_at = sys.argv[1:5]

def progress(stage):
    if stage == stop_at:
        Path(marker).write_text(stage)
        time.sleep(600)

Workspace(workspace).campaign("people").import_file(file, key="crm_id", progress=progress)
"""


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("atomic") / "people.csv"
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (SELECT 'c' || i AS crm_id, 'p' || i || '@firm' || (i % 7) || '.com' AS email,
                'First' || i AS first, i * 3 AS employees FROM range(1, {ROWS + 1}) t(i))
                TO '{path}' (HEADER)"""
        )
    return path


@pytest.mark.parametrize("stop_at", ["writing", "committing"])
def test_killed_import_leaves_the_campaign_as_it_was(
    ws: Workspace, tmp_path: Path, big_csv: Path, stop_at: str
) -> None:
    ws.apply(PEOPLE_SPEC)
    people = ws.campaign("people")
    seed = tmp_path / "seed.csv"  # the file's first rows, already in the campaign
    with big_csv.open(encoding="utf-8") as handle:
        seed.write_text("".join(next(handle) for _ in range(SEED + 1)), encoding="utf-8")
    people.import_file(seed)
    before = snapshot(ws)

    marker = tmp_path / "stopped"
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(ws.path), str(big_csv), str(marker), stop_at],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the importer never reached its stage"
            time.sleep(0.05)
        assert marker.read_text() == stop_at
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert snapshot(ws) == before
    assert people.row_count() == SEED

    report = people.import_file(big_csv, key="crm_id")
    assert (len(report.inserted), report.unchanged, report.updated) == (ROWS - SEED, SEED, 0)
    counted = ws.query("SELECT count(*) AS n, count(DISTINCT crm_id) AS ids, max(row_id) AS top FROM people")
    assert counted.rows() == [(ROWS, ROWS, ROWS)]
    assert people.status_counts()["domain"] == {"done": ROWS}
