"""Active or paused: a paused step (or every paid step of a paused campaign) does not run. Asked to run, its cells
that hold an outcome keep it, the others show `paused` with how to resume (never an error); schedules skip a
paused campaign and records sent to it are stored but not run, until it is resumed. Pausing is not part of the
spec: it is an operating switch, kept in `paused`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from engine.store.catalog import CampaignTables

WHOLE_CAMPAIGN = ""  # the column_name of a campaign-wide pause


@dataclass(frozen=True)
class PauseState:
    """What is paused in one campaign."""

    campaign: bool
    columns: frozenset[str]

    def stops(self, column: str, free: bool) -> bool:
        """Whether `column` may not run now (free steps are not actions: a paused campaign still computes them)."""
        return column in self.columns or (self.campaign and not free)


def pause_state(con: duckdb.DuckDBPyConnection, campaign_id: int) -> PauseState:
    found = con.execute(paused_names_sql(campaign_id)).fetchall()
    return pause_state_of(r[0] for r in found)


def paused_names_sql(campaign_id: int) -> str:
    """SQL for the names paused in a campaign (`column_name`: a step, or WHOLE_CAMPAIGN), for `pause_state_of`."""
    return f"SELECT column_name FROM paused WHERE campaign_id = {int(campaign_id)}"


def pause_state_of(names: Iterable[str]) -> PauseState:
    """What is paused, from the names `paused_names_sql` selects."""
    found = set(names)
    return PauseState(WHOLE_CAMPAIGN in found, frozenset(found - {WHOLE_CAMPAIGN}))


def set_paused(con: duckdb.DuckDBPyConnection, campaign_id: int, column: str | None, paused: bool, actor: str) -> bool:
    """Pause or resume a campaign (`column` None) or one step; False if it already was in that state."""
    name = WHOLE_CAMPAIGN if column is None else column
    if paused:
        done = con.execute(
            "INSERT OR IGNORE INTO paused VALUES (?, ?, now(), ?) RETURNING 1", [campaign_id, name, actor]
        ).fetchall()
    else:
        done = con.execute(
            "DELETE FROM paused WHERE campaign_id = ? AND column_name = ? RETURNING 1", [campaign_id, name]
        ).fetchall()
    return bool(done)


def requeue_disabled(con: duckdb.DuckDBPyConnection, tables: CampaignTables, column: str | None) -> int:
    """On resume: cells shown `paused` (or, from older versions, action_disabled) go back to queued (auto), empty
    (manual) or stale (they hold an old value), so the next run computes them. Returns how many."""
    graph = tables.spec.graph
    changed = 0
    for name in graph.steps() if column is None else [column]:
        back = "queued" if graph.nodes[name].auto else "empty"
        changed += len(
            con.execute(
                f"""UPDATE {tables.tables[name]} SET status = CASE WHEN value IS NULL THEN '{back}' ELSE 'stale' END,
                    error_code = NULL, error_message = NULL, error_hint = NULL
                WHERE status = 'paused' OR (status = 'error' AND error_code = 'action_disabled') RETURNING 1"""
            ).fetchall()
        )
    return changed
