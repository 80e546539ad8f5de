"""Each person's grid layout of a campaign: the column order, the hidden and the frozen columns, whether the input
columns are collapsed. A preference of the person, not a setting of the workspace: everyone keeps their own
(keyed by the acting user), nobody changes anyone else's, and a viewer may keep one too. Kept in
`column_layouts`; columns the spec no longer has are dropped when read, new ones take their default place in the
face that draws the grid."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from engine.errors import EditError


@dataclass(frozen=True)
class ColumnLayout:
    """How one person arranges a campaign's grid. Empty `order` means the default order."""

    order: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    inputs_collapsed: bool = False

    def within(self, names: list[str]) -> ColumnLayout:
        """The layout with only the columns in `names` (a spec change may have removed some)."""
        known = set(names)
        return ColumnLayout(
            tuple(n for n in self.order if n in known),
            tuple(n for n in self.hidden if n in known),
            tuple(n for n in self.frozen if n in known),
            self.inputs_collapsed,
        )


def load_layout(con: duckdb.DuckDBPyConnection, user: str, campaign_id: int, names: list[str]) -> ColumnLayout:
    found = con.execute(
        "SELECT layout FROM column_layouts WHERE user_name = ? AND campaign_id = ?", [user, campaign_id]
    ).fetchall()
    if not found:
        return ColumnLayout()
    stored = json.loads(found[0][0])
    layout = ColumnLayout(
        tuple(stored.get("order") or ()),
        tuple(stored.get("hidden") or ()),
        tuple(stored.get("frozen") or ()),
        bool(stored.get("inputs_collapsed")),
    )
    return layout.within(names)


def store_layout(
    con: duckdb.DuckDBPyConnection, user: str, campaign_id: int, names: list[str], layout: ColumnLayout
) -> None:
    """Keep `layout` as `user`'s; raises EditError naming a column the campaign does not have."""
    known = set(names)
    for part in (layout.order, layout.hidden, layout.frozen):
        unknown = [n for n in part if n not in known]
        if unknown:
            raise EditError(f"the campaign has no column '{unknown[0]}'", hint=f"use one of: {', '.join(names)}")
    stored = {
        "order": list(dict.fromkeys(layout.order)),
        "hidden": list(dict.fromkeys(layout.hidden)),
        "frozen": list(dict.fromkeys(layout.frozen)),
        "inputs_collapsed": layout.inputs_collapsed,
    }
    con.execute(
        "INSERT OR REPLACE INTO column_layouts VALUES (?, ?, ?, now())", [user, campaign_id, json.dumps(stored)]
    )
