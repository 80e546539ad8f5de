"""Fixtures for the UI tests: a workspace whose grid shows every cell state, and AppTest on `ui/app.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine import Workspace
from tests.conftest import copy_workspace
from tests.support.consent import apply_active
from ui import runs

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "ui" / "app.py")

# Every state of DESIGN.md's table appears on the first page of this campaign (see `states_template`).
STATES_SPEC = """
campaign: t
description: UI test campaign
columns:
  - {name: email, kind: input}
  - {name: first, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: greet, kind: formula, expression: "'Hi ' || first || ' at ' || domain"}
  - {name: research, kind: probe, inputs: [domain], not_found_on: initech.org}
  - {name: opener, kind: probe, inputs: [greet, research], run: manual, credits: 3}
  - {name: checker, kind: probe, inputs: [first], fail_on: Bob, run: manual}
  - {name: big_only, kind: probe, inputs: [email], run_if: "employees > 100", run: manual}
  - {name: opener_length, kind: formula, expression: "length(opener)"}
"""
ROWS = [
    {"email": "ann@acme.com", "first": "Ann", "employees": 40},
    {"email": "bob@globex.io", "first": "Bob", "employees": 900},
    {"email": "cy@initech.org", "first": "Cy", "employees": 12},
]


@pytest.fixture(scope="session")
def states_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: row 1 opener stale (its first name changed), row 2 opener empty (Click to Run), checker error
    and opener_length pinned, row 3 research not found and opener_length waiting on opener; big_only skipped
    on rows 1 and 3."""
    path = tmp_path_factory.mktemp("template") / "ws"
    ws = Workspace.init(path)
    apply_active(ws, STATES_SPEC)
    campaign = ws.campaign("t")
    campaign.add_rows(ROWS)
    campaign.run()
    campaign.run(["opener"], rows=[1])
    campaign.run(["checker"])
    campaign.run(["big_only"])
    campaign.set(1, "first", "Annie")
    campaign.set(2, "opener_length", 99)
    return path


@pytest.fixture
def states_ws(states_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A fresh copy of the all-states workspace, served to the app through RUNSHEET_WORKSPACE."""
    path = tmp_path / "ws"
    copy_workspace(states_template, path)
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(path))
    monkeypatch.setenv("RUNSHEET_USER", "tester")
    return Workspace(path)


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


@pytest.fixture(autouse=True)
def _stop_launched_runs() -> Iterator[None]:
    """Runs the UI launched are separate processes: none may outlive its test."""
    yield
    for item in runs.launches_all():
        if item.running:
            item.process.terminate()
        item.process.wait(timeout=30)
    runs.forget_all()


def log_in(app: AppTest, user: str, password: str) -> AppTest:
    """Log in through the form the app shows once the workspace has users (ui/login.py)."""
    app.run()
    app.text_input(key="login_user").input(user)
    app.text_input(key="login_password").input(password)
    app.button(key="login_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    return app


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium for a module of browser tests (each test module skips itself when it is missing)."""
    from tests.ui import e2e

    with e2e.chromium() as found:
        yield found
