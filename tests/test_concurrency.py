"""Two processes on one workspace at once: a writer loop and a reader loop both succeed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import BASIC_ROWS, BASIC_SPEC

REPO = Path(__file__).resolve().parent.parent

WRITER = """
import json, sys, time
from engine import Workspace
campaign = Workspace(sys.argv[1]).campaign("t")
edits, deadline = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    campaign.set(1 + edits % 3, "first", f"name{edits}")
    edits += 1
print(json.dumps({"edits": edits}))
"""

READER = """
import json, sys, time
from engine import Workspace
campaign = Workspace(sys.argv[1]).campaign("t")
reads, deadline = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    page = campaign.page()
    assert len(page.rows) == 3
    for row in page.rows:  # a reader never sees a half-applied edit
        assert row["greet"].value == "Hi " + row["first"].value + " at " + row["domain"].value, row
    reads += 1
print(json.dumps({"reads": reads}))
"""


def test_a_writer_and_a_reader_process_share_a_workspace(ws) -> None:  # type: ignore[no-untyped-def]
    ws.apply(BASIC_SPEC)
    ws.campaign("t").add_rows(BASIC_ROWS)
    seconds = "3"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(ws.path), seconds], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for code in (WRITER, READER)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    assert outputs[0]["edits"] > 5 and outputs[1]["reads"] > 5, outputs
    final = ws.campaign("t").page()
    assert {row["first"].value for row in final.rows} <= {f"name{i}" for i in range(outputs[0]["edits"])}
