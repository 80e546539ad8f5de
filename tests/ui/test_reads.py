"""The reads the UI keeps until the workspace changes (ui/reads.py): the change key on a real DuckDB file, and how
many workspace reads a navigation makes, counted on the engine's own methods."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine import Campaign, Workspace
from tests.ui.conftest import APP
from ui import reads

OPENER_1 = "probe(Hi Ann at acme.com|probe(acme.com))"


def settled(ws: Workspace) -> None:
    """Wait until this process has folded the write-ahead log of its last write into the file, as it does once its
    hold on the file ends (database.LINGER_SECONDS after the write). That fold changes the change key too, so a
    count of reads taken across it would count the reads it makes again."""
    wal = ws.db.path.with_name(ws.db.path.name + ".wal")
    deadline = time.monotonic() + 10
    while wal.exists() and wal.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (wal.exists() and wal.stat().st_size), "the write-ahead log was never folded into the file"


def test_the_change_key_moves_with_writes_only(states_ws: Workspace) -> None:
    settled(states_ws)
    campaign = states_ws.campaign("t")
    before = states_ws.change_key()
    campaign.page(0, 50)
    _ = campaign.spec
    states_ws.campaigns(), states_ws.runs(50), states_ws.credits(), campaign.status_counts()
    assert states_ws.change_key() == before
    campaign.set(1, "first", "Ana")
    after = states_ws.change_key()
    assert after != before
    states_ws.add_credits(5)
    assert states_ws.change_key() != after


def test_a_kept_read_is_made_again_only_after_a_write(states_ws: Workspace) -> None:
    settled(states_ws)
    made: list[int] = []

    def read() -> int:
        made.append(1)
        return len(made)

    assert [reads.kept(states_ws, ("probe",), read) for _ in range(3)] == [1, 1, 1]
    states_ws.campaign("t").set(2, "first", "Bo")  # another process's write looks the same: a new key
    assert reads.kept(states_ws, ("probe",), read) == 2
    reads.forget_cached()
    assert reads.kept(states_ws, ("probe",), read) == 3


@pytest.fixture
def workspace_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the workspace reads the app makes, by engine method (each opens a DuckDB connection)."""
    made: Counter[str] = Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            made[name] += 1
            return method(*args, **kwargs)

        return wrapper

    for owner, name in (
        (Workspace, "campaigns"),
        (Workspace, "runs"),
        (Workspace, "credits"),
        (Workspace, "active_runs"),
        (Workspace, "campaign"),
        (Workspace, "__init__"),
        (Campaign, "page"),
        (Campaign, "status_counts"),
    ):
        monkeypatch.setattr(owner, name, counted(f"{owner.__name__}.{name}", getattr(owner, name)))
    spec = Campaign.spec
    assert isinstance(spec, property) and spec.fget is not None
    monkeypatch.setattr(Campaign, "spec", property(counted("Campaign.spec", spec.fget)))
    return made


def test_a_new_session_reads_only_its_page_until_the_workspace_changes(
    states_ws: Workspace, workspace_reads: Counter[str]
) -> None:
    settled(states_ws)
    AppTest.from_file(APP, default_timeout=60).run()  # the server's first session reads what it keeps
    workspace_reads.clear()
    second = AppTest.from_file(APP, default_timeout=60).run()
    assert not second.exception
    assert second.dataframe[0].value.loc[1, "opener"] == f"◐ {OPENER_1}  (stale)"
    assert workspace_reads == {"Campaign.page": 1}
    second.run()  # a rerun of the same session (a widget echoing its state): nothing new to read
    assert workspace_reads == {"Campaign.page": 1}

    states_ws.campaign("t").set(3, "first", "Cyd")  # a write, as from another tab or a CLI
    settled(states_ws)
    workspace_reads.clear()
    third = AppTest.from_file(APP, default_timeout=60).run()
    assert third.dataframe[0].value.loc[3, "greet"] == "Hi Cyd at initech.org"
    once = (
        "Workspace.campaigns",
        "Workspace.runs",
        "Workspace.credits",
        "Campaign.spec",
        "Campaign.status_counts",
        "Campaign.page",
    )
    assert workspace_reads == dict.fromkeys(once, 1)
