"""What `runsheet status` shows: a campaign's record count and each step's cells by state, read with DuckDB alone.

`runsheet status` is a whole process with half a second to live (issue 16), and the engine's own way to a
campaign costs three times that in imports before it counts a cell (the spec's parser with sqlglot and its pydantic
models, polars, every step kind). So the status is read here from the catalog and the tables themselves, on a
read-only connection (`Database.snapshot`: it waits while another process writes, and writes nothing), in four
small queries and one that counts every step's cells.

Steps are listed in the column graph's order. Building the graph needs every step's references (SQL and templates,
parsed); it is spared when the spec's own order is provably the graph's: every reference of a column is a name
written in its entry, so when no column's entry mentions a column listed after it, every edge of the graph goes
forward in spec order and the graph's order (topological, ties broken by spec order) is the spec order. Otherwise,
or while the whole campaign is paused (which steps that stops depends on each kind's cost), the stored spec is
parsed as the engine parses it, still read-only. While one of the campaign's runs is marked running, the engine's
own path is taken (`CampaignStatus.of`): it first gives back the cells of a run whose runner died
(engine/run/lifecycle.py), so that they are counted as what they are now.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from engine.store.counts import count_states
from engine.store.database import DB_FILE, Database
from engine.store.pause import pause_state
from engine.types import INPUT_KIND

if TYPE_CHECKING:
    from engine.campaign import Campaign

_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign's status: its records, and every step's cells by state."""

    campaign: str
    rows: int
    counts: dict[str, dict[str, int]]  # each step, in the graph's order: its cells by status name
    paused: dict[str, bool]  # the steps that do not run now: True when paused on its own, False with its campaign

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignStatus:
        """The status the engine's way (it gives a dead run's cells back first)."""
        from engine.store.catalog import load_campaign

        counts = campaign.status_counts()
        graph = campaign.spec.graph
        with campaign.db.transaction() as con:
            state = pause_state(con, load_campaign(con, campaign.name).campaign_id)
        paused = {c: c in state.columns for c in graph.steps() if state.stops(c, graph.nodes[c].free)}
        return cls(campaign.name, campaign.row_count(), counts, paused)


def read_status(workspace: str | Path, campaign: str | None = None) -> CampaignStatus | None:
    """The status of `campaign` (None: the workspace's only one) read with DuckDB alone, writing nothing; None when
    only the engine's path can answer (`CampaignStatus.of`): no workspace or no such campaign to name (its errors
    are the engine's to raise), a workspace made by an older version (a table missing: the engine upgrades it), or
    a run of the campaign marked running."""
    path = Path(workspace) / DB_FILE
    if not path.exists():
        return None
    try:
        return _read(path, campaign)
    except duckdb.CatalogException:
        return None


def _read(path: Path, campaign: str | None) -> CampaignStatus | None:
    with Database(path).snapshot() as con:
        found = con.execute("SELECT name, campaign_id, rows_table, spec FROM campaigns ORDER BY name").fetchall()
        picked = [row for row in found if row[0] == campaign] if campaign is not None else found
        if len(picked) != 1:
            return None
        name, campaign_id, rows_table, stored = picked[0]
        running = "SELECT 1 FROM runs WHERE campaign_id = ? AND status = 'running' LIMIT 1"
        if con.execute(running, [campaign_id]).fetchall():
            return None
        catalog = "SELECT name, table_name FROM columns WHERE campaign_id = ?"
        tables = dict(con.execute(catalog, [campaign_id]).fetchall())
        state = pause_state(con, campaign_id)
        source = json.loads(stored)
        steps = None if state.campaign else spec_order_steps(source)
        free: dict[str, bool] = {}  # asked only while the whole campaign is paused, and then the graph is built
        if steps is None:
            from engine.spec import parse_spec

            graph = parse_spec(source, check_code=False).graph  # reads never import user code
            steps = graph.steps()
            free = {c: graph.nodes[c].free for c in steps}
        rows, counts = count_states(con, rows_table, {c: tables[c] for c in steps})
    paused = {c: c in state.columns for c in steps if state.stops(c, free.get(c, True))}
    return CampaignStatus(name, rows, counts, paused)


def spec_order_steps(source: dict[str, Any]) -> list[str] | None:
    """A stored spec's step columns in the column graph's order when that is provably the spec's own order (no
    column's entry mentions a column listed after it, see above); None when it is not shown so."""
    entries = source["columns"]
    names = [str(entry["name"]) for entry in entries]
    for position, entry in enumerate(entries):
        if entry.get("kind") == INPUT_KIND:
            continue  # an input reads nothing
        mentioned = {token.lower() for text in _texts(entry) for token in _NAME_TOKEN.findall(text)}
        if mentioned & {name.lower() for name in names[position + 1 :]}:
            return None
    return [name for name, entry in zip(names, entries, strict=True) if entry.get("kind") != INPUT_KIND]


def _texts(value: object) -> list[str]:
    """Every string in a spec entry, keys included (a name could be written anywhere)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [str(key), *_texts(item)]]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []
