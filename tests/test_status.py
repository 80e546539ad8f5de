"""`read_status` (engine/status.py) reads what the engine's way counts, in the graph's order, and writes nothing; the
spec's own order stands in for the graph's only where that is proved."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import CampaignStatus, Workspace, parse_spec, read_status
from engine.status import spec_order_steps
from tests.conftest import BASIC_ROWS, BASIC_SPEC

# `score` is listed before `tier`, which it reads: the spec order is not the graph's.
OUT_OF_ORDER_SPEC = """
campaign: t
columns:
  - {name: email, kind: input}
  - {name: first, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: score, kind: formula, expression: "length(tier) + 1"}
  - {name: tier, kind: formula, expression: "upper(split_part(email, '@', 2))"}
  - {name: look, kind: probe, inputs: [score]}
"""


def make(folder: Path, spec: str = BASIC_SPEC) -> Workspace:
    ws = Workspace.init(folder)
    ws.apply(spec)
    ws.campaign("t").add_rows(BASIC_ROWS)
    return ws


def engine_status(ws: Workspace) -> CampaignStatus:
    return CampaignStatus.of(ws.campaign("t"))


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_status_read_alone_is_the_engines(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    campaign = ws.campaign("t")
    campaign.set(2, "first", "Bo")
    campaign.run(["opener"], rows=[1])
    ws.pause("t", "research")
    expected = engine_status(ws)
    ws.release()
    found = read_status(tmp_path / "ws", "t")
    assert found == expected
    assert list(found.counts) == ["domain", "greet", "research", "opener", "opener_length"]
    assert found.rows == 3
    assert found.counts["opener"] == {"done": 1, "empty": 2}
    assert found.paused == {"research": True}
    assert read_status(tmp_path / "ws") == expected  # the only campaign


def test_a_paused_campaign_pauses_its_paid_steps_only(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.pause("t")
    expected = engine_status(ws)
    ws.release()
    found = read_status(tmp_path / "ws", "t")
    assert found == expected
    assert found.paused == {"research": False, "opener": False}


def test_steps_come_in_the_graphs_order_when_the_spec_lists_them_otherwise(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws", OUT_OF_ORDER_SPEC)
    expected = engine_status(ws)
    ws.release()
    found = read_status(tmp_path / "ws", "t")
    assert found == expected
    assert list(found.counts) == ["tier", "score", "look"]


def test_reading_the_status_writes_nothing(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.campaign("t").set(1, "first", "Annie")
    ws.release()
    before = files(tmp_path / "ws")
    assert any(name.endswith(".wal") for name in before)  # the read replays the log without folding it
    assert read_status(tmp_path / "ws", "t") is not None
    assert files(tmp_path / "ws") == before


def test_what_only_the_engine_can_answer_goes_its_way(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.apply(BASIC_SPEC.replace("campaign: t", "campaign: u"))
    ws.release()
    assert read_status(tmp_path / "nowhere") is None
    assert read_status(tmp_path / "ws", "nope") is None
    assert read_status(tmp_path / "ws") is None  # two campaigns, none named
    # A run marked running (its runner gone): the engine gives its cells back before counting them.
    dead = 2**22 + 1
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
    with ws.db.transaction() as con:
        con.execute(
            "INSERT INTO runs (run_id, campaign_id, status, started_at, heartbeat, pid, host) "
            "SELECT 999, campaign_id, 'running', now(), now(), ?, ? FROM campaigns WHERE name = 't'",
            [dead, socket.gethostname()],
        )
    ws.release()
    assert read_status(tmp_path / "ws", "t") is None
    expected = engine_status(ws)
    ws.release()
    assert read_status(tmp_path / "ws", "t") == expected  # the run was marked interrupted


def test_a_workspace_of_an_older_version_is_read_the_engines_way(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.release()
    con = duckdb.connect(str(tmp_path / "ws" / "runsheet.duckdb"))
    con.execute("DROP TABLE paused")  # added by a later version: opening the workspace the engine's way adds it
    con.close()
    assert read_status(tmp_path / "ws", "t") is None
    expected = engine_status(Workspace(tmp_path / "ws"))
    assert expected.counts["domain"] == {"done": 3}
    Workspace(tmp_path / "ws").release()
    assert read_status(tmp_path / "ws", "t") == expected


NAMES = ["a", "ab", "b", "tier", "score", "s1", "x_2", "c"]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, object]:
    """A valid spec over some of NAMES in any listed order: each step's formula reads columns of lower rank (so
    the graph has no cycle), wherever they are listed."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=len(NAMES), unique=True))
    rank = {name: i for i, name in enumerate(names)}  # the graph's order is some order; the list is shuffled
    listed = draw(st.permutations(names))
    columns: list[dict[str, object]] = []
    for name in listed:
        lower = [n for n in names if rank[n] < rank[name]]
        if not lower or draw(st.booleans()):
            columns.append({"name": name, "kind": "input"})
            continue
        reads = draw(st.lists(st.sampled_from(lower), min_size=1, max_size=3, unique=True))
        columns.append({"name": name, "kind": "formula", "expression": " || ".join(f"{r}::VARCHAR" for r in reads)})
    return {"campaign": "t", "columns": columns}


@settings(max_examples=150, deadline=None)
@given(specs())
def test_the_spec_order_is_taken_only_where_it_is_the_graphs(source: dict[str, object]) -> None:
    steps = spec_order_steps(source)
    graph = parse_spec(source, check_code=False).graph
    assert steps is None or steps == graph.steps()
    if steps is None:  # then some column's entry does mention a column listed after it
        entries = source["columns"]
        assert isinstance(entries, list)
        assert any(
            later["name"] in str(entry.get("expression", ""))
            for i, entry in enumerate(entries)
            for later in entries[i + 1 :]
        )


def test_the_spec_order_is_taken_when_every_reference_points_back() -> None:
    source = parse_spec(BASIC_SPEC).source
    assert spec_order_steps(source) == ["domain", "greet", "research", "opener", "opener_length"]
    assert spec_order_steps(parse_spec(OUT_OF_ORDER_SPEC).source) is None
