"""Each person's grid layout (issue 15, the grid: a column chooser kept per user): kept in the workspace under
the acting user, nobody else's changed, a column the campaign lacks refused with nothing kept, columns a later
spec removes dropped when read."""

from __future__ import annotations

import pytest

from engine import ColumnLayout, EditError, NotFoundError, Workspace
from tests.conftest import BASIC_SPEC


def test_each_user_keeps_their_own_layout(ws: Workspace) -> None:
    ws.apply(BASIC_SPEC)
    ann, bob = Workspace(ws.path, actor="ann"), Workspace(ws.path, actor="bob")
    assert ann.column_layout("t") == ColumnLayout()
    mine = ColumnLayout(order=("opener", "email"), hidden=("greet",), frozen=("email",), inputs_collapsed=True)
    ann.save_column_layout("t", mine)
    assert Workspace(ws.path, actor="ann").column_layout("t") == mine  # kept in the file, not the process
    assert bob.column_layout("t") == ColumnLayout()
    bob.save_column_layout("t", ColumnLayout(hidden=("email",)))
    assert ann.column_layout("t") == mine


def test_a_column_the_campaign_lacks_is_refused_and_nothing_kept(ws: Workspace) -> None:
    ws.apply(BASIC_SPEC)
    ws.save_column_layout("t", ColumnLayout(hidden=("greet",)))
    with pytest.raises(EditError) as refused:
        ws.save_column_layout("t", ColumnLayout(hidden=("greet", "nope")))
    assert "no column 'nope'" in refused.value.message and "email" in (refused.value.hint or "")
    assert ws.column_layout("t") == ColumnLayout(hidden=("greet",))
    with pytest.raises(NotFoundError):
        ws.save_column_layout("missing", ColumnLayout())


def test_columns_a_later_spec_removes_drop_out_of_the_layout(ws: Workspace) -> None:
    ws.apply(BASIC_SPEC)
    ws.save_column_layout("t", ColumnLayout(order=("opener_length", "greet"), frozen=("opener_length",)))
    ws.apply(BASIC_SPEC.replace('  - {name: opener_length, kind: formula, expression: "length(opener)"}\n', ""))
    assert ws.column_layout("t") == ColumnLayout(order=("greet",))
