"""The grid's first screen through Streamlit's AppTest (issue 15, "The grid"): step columns first, the column
chooser (collapse inputs, hide, move, freeze; kept per user), a grid as tall as its page, the Run menu acting on
the selected cell, panel buttons that fit the cell (no Run Again on a formula; "blocked by fit" opens fit), a
clicked cell running at once, and nulls drawn blank unlike the text "None". Rendering is checked in Chromium
(tests/ui/test_grid_view_browser.py)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from engine import ColumnLayout, Workspace
from tests.support.consent import apply_active
from tests.ui.test_grid_app import grid, open_cell, open_menu, texts
from ui import runs

INPUTS = ["email", "first", "employees"]
STEPS = ["domain", "greet", "research", "opener", "checker", "big_only", "opener_length"]
BLOCKED_SPEC = """
campaign: b
columns:
  - {name: first, kind: input}
  - {name: fit, kind: probe, inputs: [first], fail_on: Bob}
  - {name: pitch, kind: probe, inputs: [fit]}
"""
SLOW_SPEC = """
campaign: slow
columns:
  - {name: n, kind: input}
  - {name: crawl, kind: probe, inputs: [n], delay: 60, run: manual}
"""


def widget(items, label: str):  # type: ignore[no-untyped-def]
    """The widget with this label (the chooser's keys carry a checksum of the kept layout)."""
    return next(w for w in items if w.label == label)


def column_settings(at: AppTest) -> dict[str, dict]:  # type: ignore[type-arg]
    return dict(json.loads(at.dataframe[0].proto.columns))


# ---- the first screen shows the work ------------------------------------------------------------------------


def test_step_columns_come_first_then_the_inputs(app: AppTest, states_ws: Workspace) -> None:
    frame = grid(app.run())
    assert list(frame.columns) == STEPS + INPUTS


def test_the_column_chooser_collapses_hides_moves_and_freezes_kept_per_user(app: AppTest, states_ws: Workspace) -> None:
    open_menu(app.run(), "menu_columns")
    widget(app.toggle, "Collapse inputs").set_value(True).run()
    assert list(grid(app).columns) == STEPS
    widget(app.multiselect, "Frozen at the left").set_value(["first"]).run()
    assert list(grid(app).columns) == [*STEPS, "first"]  # a frozen input stays, to tell rows apart
    assert column_settings(app)["first"].get("pinned") is True
    assert column_settings(app)["domain"].get("pinned") is None
    widget(app.multiselect, "Hidden").set_value(["greet", "checker"]).run()
    app.selectbox(key="layout-move").set_value("opener").run()
    app.button(key="layout-earlier").click().run()
    shown = [s for s in STEPS if s not in ("greet", "checker")]
    assert list(grid(app).columns) == ["domain", "opener", "research", "big_only", "opener_length", "first"]
    assert sorted(shown) == sorted(list(grid(app).columns)[:-1])
    kept = Workspace(states_ws.path, actor="tester").column_layout("t")
    assert (kept.hidden, kept.frozen, kept.inputs_collapsed) == (("greet", "checker"), ("first",), True)
    assert Workspace(states_ws.path, actor="someone-else").column_layout("t") == ColumnLayout()
    fresh = AppTest.from_file(app._script_path, default_timeout=60)  # a new session of the same user
    assert list(grid(fresh.run()).columns) == ["domain", "opener", "research", "big_only", "opener_length", "first"]
    open_menu(app, "menu_columns")
    app.button(key="layout-reset").click().run()
    assert list(grid(app).columns) == STEPS + INPUTS


def test_edit_mode_shows_every_input_first_even_when_collapsed(app: AppTest, states_ws: Workspace) -> None:
    Workspace(states_ws.path, actor="tester").save_column_layout("t", ColumnLayout(inputs_collapsed=True))
    assert list(grid(app.run()).columns) == STEPS
    app.toggle(key="edit_mode").set_value(True).run()
    assert list(grid(app).columns) == INPUTS + STEPS  # what is being edited comes first


def test_the_grid_is_as_tall_as_its_page_not_16_rows() -> None:
    from ui import grid as grid_page

    assert grid_page.table_height(50) == 38 + 35 * 50  # every row of the page; the window caps it (app.GRID_CSS)
    assert grid_page.table_height(0) == 38 + 35


# ---- the Run menu and the panel fit the selected cell -------------------------------------------------------


def test_the_run_menu_acts_on_the_selected_cells_column_and_row(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    assert app.selectbox(key="menu_column").value == "domain"
    open_cell(app, 2, "checker")
    assert app.selectbox(key="menu_column").value == "checker"
    open_menu(app, "menu_run")
    assert app.radio(key="run_rows").value == "ticked"
    assert "Rows 2" in texts(app)
    app.button(key="run_estimate").click().run()
    request, _ = app.session_state["estimate"]
    assert (request.columns, request.rows) == (("checker",), (2,))
    open_cell(app, 3, "email")  # an input: the menus keep their step column
    assert app.selectbox(key="menu_column").value == "checker"


def test_no_run_again_on_a_formula_cell(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 1, "domain")
    assert "panel-run" not in [b.key for b in app.button]
    assert "A formula: it recomputes by itself" in texts(app)
    open_cell(app, 2, "opener_length")  # a formula edited by hand: Run Again unpins it, so it is offered
    assert app.button(key="panel-run").label == "⟳ Run Again"
    open_cell(app, 1, "big_only")  # skipped: run_if is false for the row
    assert "panel-run" not in [b.key for b in app.button]


def test_no_click_to_run_on_a_paused_step(app: AppTest, states_ws: Workspace) -> None:
    states_ws.pause("t", "opener")
    states_ws.campaign("t").run(["opener"], rows=[3])
    open_cell(app.run(), 3, "opener")
    assert "panel-run" not in [b.key for b in app.button]
    assert "Paused: resume the step" in texts(app)
    open_cell(app, 2, "checker")  # another step, not paused: its buttons stay
    assert app.button(key="panel-run").label == "⟳ Run Again"


def test_a_blocked_cell_says_blocked_by_fit_and_opens_fit(app: AppTest, states_ws: Workspace) -> None:
    apply_active(states_ws, BLOCKED_SPEC)
    campaign = states_ws.campaign("b")
    campaign.add_rows([{"first": "Ann"}, {"first": "Bob"}])
    campaign.run()
    assert campaign.cell(2, "pitch").blocked_by == "fit"
    app.session_state["campaign"] = "b"
    frame = grid(app.run())
    assert frame.loc[2, "pitch"] == "⊘ blocked by fit"
    assert frame.loc[1, "pitch"] == "probe(probe(Ann))"
    open_cell(app, 2, "pitch")
    assert "panel-run" not in [b.key for b in app.button]
    assert "Blocked by **fit**" in texts(app)
    app.button(key="panel-open-blocker").click().run()
    assert app.session_state["selected"] == (2, "fit")
    assert "fit** · row 2" in texts(app)
    assert app.button(key="panel-run").label == "⟳ Run Again"  # the error itself can be retried


def test_a_clicked_cell_shows_running_at_once(app: AppTest, states_ws: Workspace) -> None:
    states_ws.apply(SLOW_SPEC)
    states_ws.campaign("slow").add_rows([{"n": "1"}, {"n": "2"}])
    app.session_state["campaign"] = "slow"
    open_cell(app.run(), 2, "crawl")
    assert grid(app).loc[2, "crawl"] == "▶ Click to Run"
    app.button(key="panel-run").click().run()
    assert [item.request.rows for item in runs.launches_all()] == [(2,)]
    frame = grid(app)  # the rerun right after the click, before the process has marked anything
    assert frame.loc[2, "crawl"] == "⟳ running"
    assert frame.loc[1, "crawl"] == "▶ Click to Run"


# ---- values -------------------------------------------------------------------------------------------------


def test_a_null_is_blank_and_the_text_none_is_text(app: AppTest, states_ws: Workspace) -> None:
    rows = [{"email": "x@y.com", "first": None, "employees": None}, {"email": "z@y.com", "first": "None"}]
    states_ws.campaign("t").add_rows(rows)
    frame = grid(app.run())
    assert frame.loc[4, "first"] == "" and frame.loc[5, "first"] == "None"
    assert frame.loc[4, "employees"] == "" and frame.loc[2, "employees"] == "900"  # numbers as text, aligned right
    assert column_settings(app)["employees"].get("alignment") == "right"
    app.toggle(key="edit_mode").set_value(True).run()  # the editor keeps numbers numbers, to type into
    assert grid(app).loc[2, "employees"] == 900
