"""The Grid page through Streamlit's AppTest: every cell state, the cell panel, edits, the column menu, runs
launched outside the script (progress, Stop, failure), an empty and a busy workspace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engine import Status, Workspace
from ui import runs

OPENER_1 = "probe(Hi Ann at acme.com|probe(acme.com))"


def grid(at: AppTest) -> pd.DataFrame:
    """The grid's display values (the first dataframe on the page), indexed by row id."""
    assert not at.exception, at.exception
    value = at.dataframe[0].value
    return value.data if hasattr(value, "data") else value


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def wait_for_launches(timeout: float = 90) -> None:
    """Block until every run the UI launched has finished (a wait, not a timed assertion)."""
    for item in runs.launches_all():
        item.process.wait(timeout=timeout)


def panel_box(at: AppTest):  # type: ignore[no-untyped-def]
    """The panel's value editor (its key carries the campaign, row, column and a checksum of the value)."""
    return next(t for t in at.text_area if str(t.key).startswith("edit-t-"))


def open_menu(at: AppTest, key: str) -> AppTest:
    """Open a toolbar menu (its content is only drawn while open)."""
    at.session_state[key] = True
    return at.run()


def open_cell(at: AppTest, row: int, column: str) -> AppTest:
    at.session_state["selected"] = (row, column)
    return at.run()


# ---- what the grid shows ------------------------------------------------------------------------------------


def test_grid_shows_every_cell_state(app: AppTest, states_ws: Workspace) -> None:
    frame = grid(app.run())
    assert list(frame.index) == [1, 2, 3]
    assert frame.loc[1, "first"] == "Annie"
    assert frame.loc[1, "greet"] == "Hi Annie at acme.com"  # the edit's downstream formula recomputed
    assert frame.loc[1, "opener"] == f"◐ {OPENER_1}  (stale)"  # manual step: stale keeps its old value
    assert frame.loc[2, "opener"] == "▶ Click to Run"
    assert frame.loc[3, "opener"] == "▶ Click to Run"
    assert frame.loc[2, "checker"] == "⚠ provider_error: check the provider's status and credentials, then run again"
    assert frame.loc[3, "checker"] == "probe(Cy)"
    assert frame.loc[3, "research"] == "∅ no data"
    assert frame.loc[1, "big_only"] == "— skipped"
    assert frame.loc[2, "big_only"] == "probe(bob@globex.io|900)"
    assert frame.loc[2, "opener_length"] == "✎ 99"  # pinned: edited by hand
    assert frame.loc[3, "opener_length"] == "◷ waiting on opener"
    assert "Rows 1–3 of 3" in texts(app)


def test_header_counts_and_column_labels(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    assert "run_estimate" not in [b.key for b in app.button]  # a closed menu draws nothing
    open_menu(app, "menu_graph")
    dot = app.get("graphviz_chart")[0].proto.spec
    assert '"domain" -> "greet";' in dot and '"greet" -> "opener";' in dot
    assert app.subheader[0].value == "t"
    caption = texts(app)
    assert "1 error" in caption and "1 pinned" in caption and "1 waiting" in caption
    assert [o for o in app.selectbox(key="menu_column").options][:3] == ["domain", "greet", "research"]


def test_paging_a_larger_campaign(app: AppTest, states_ws: Workspace) -> None:
    states_ws.campaign("t").add_rows([{"email": f"p{i}@x{i}.com", "first": f"P{i}", "employees": i} for i in range(60)])
    frame = grid(app.run())
    assert len(frame) == 50 and frame.index[0] == 1
    app.session_state["page-t"] = 2
    frame = grid(app.run())
    assert list(frame.index) == list(range(51, 64))
    assert frame.loc[63, "domain"] == "x59.com"
    assert "Rows 51–63 of 63" in texts(app)


# ---- the cell panel -----------------------------------------------------------------------------------------


def test_panel_for_an_error_cell_shows_reason_and_fix(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 2, "checker")
    assert "provider_error" in app.error[0].value and "told to fail on 'Bob'" in app.error[0].value
    assert "How to fix: check the provider's status" in texts(app)
    assert app.button(key="panel-run").label == "⟳ Run Again"


def test_panel_for_waiting_and_empty_cells(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 3, "opener_length")
    assert "Waiting on **opener**" in app.info[0].value
    assert app.button(key="panel-run-upstream").label == "Run opener first"
    open_cell(app, 2, "opener")
    assert app.button(key="panel-run").label == "▶ Click to Run"


def test_panel_value_copy_and_provenance(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 1, "opener")
    assert "Stale" in app.warning[0].value
    codes = [c.value for c in app.code]
    assert codes[0] == OPENER_1 and codes[1] == OPENER_1  # Copy and Copy as Markdown
    inputs = [t.value for t in app.table]
    assert inputs[0].loc[0, "greet"] == "Hi Annie at acme.com"  # provenance: the inputs as they are now
    facts = inputs[1]
    assert facts.loc[0, "by"] == "api (api)"
    assert app.button(key="panel-run").label == "⟳ Run Again"


def test_click_to_run_runs_outside_the_script_and_shows_the_value(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 2, "opener")
    app.button(key="panel-run").click().run()
    launched = runs.launches_all()
    assert len(launched) == 1 and launched[0].request == runs.RunRequest("t", ("opener",), (2,))
    wait_for_launches()
    assert launched[0].process.returncode == 0, launched[0].log_path.read_text()
    frame = grid(app.run())
    assert frame.loc[2, "opener"] == "probe(Hi Bob at globex.io|probe(globex.io))"
    assert frame.loc[3, "opener"] == "▶ Click to Run"  # only the chosen cell ran
    assert app.button(key="panel-run").label == "⟳ Run Again"
    run = runs.recent_runs(states_ws, 5)[0]
    assert run["status"] == "done" and run["actor"] == "tester"


def test_run_again_on_a_pinned_cell_unpins_it(app: AppTest, states_ws: Workspace) -> None:
    states_ws.campaign("t").run(["opener"], rows=[2])
    open_cell(app.run(), 2, "opener_length")
    assert app.button(key="panel-run").label == "⟳ Run Again"
    app.button(key="panel-run").click().run()
    assert runs.launches_all()[0].request.force
    wait_for_launches()
    frame = grid(app.run())
    assert frame.loc[2, "opener_length"] == str(len("probe(Hi Bob at globex.io|probe(globex.io))"))


def test_editing_an_input_recomputes_downstream_and_stales_manual_steps(app: AppTest, states_ws: Workspace) -> None:
    states_ws.campaign("t").run(["opener"], rows=[3])
    open_cell(app.run(), 3, "email")
    box = panel_box(app)
    assert box.value == "cy@initech.org"
    box.input("cy@umbrella.com").run()
    app.button(key=box.key + "-save").click().run()
    frame = grid(app)
    assert frame.loc[3, "domain"] == "umbrella.com"
    assert frame.loc[3, "greet"] == "Hi Cy at umbrella.com"
    assert frame.loc[3, "opener"].endswith("(stale)")
    cell = states_ws.campaign("t").cell(3, "opener")
    assert cell.status is Status.STALE
    # research is an auto-run paid step: the edit queued it and the UI launched a run for the row
    assert [item.request for item in runs.launches_all()] == [runs.RunRequest("t", (), (3,))]
    wait_for_launches()
    assert grid(app.run()).loc[3, "research"] == "probe(umbrella.com)"


def test_editing_a_step_cell_pins_it(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 3, "checker")
    box = panel_box(app)
    box.input("hand written").run()
    app.button(key=box.key + "-save").click().run()
    assert grid(app).loc[3, "checker"] == "✎ hand written"
    assert states_ws.campaign("t").cell(3, "checker").status is Status.PINNED


def test_confirm_on_a_pinned_cell_marks_it_confirmed(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 2, "opener_length")
    assert "exports downstream wait until the value is confirmed" in texts(app)
    app.button(key="panel-confirm").click().run()
    assert not app.exception and not app.error
    cell = states_ws.campaign("t").cell(2, "opener_length")
    assert (cell.status, cell.value) == (Status.CONFIRMED, 99)
    assert "Edited by hand and confirmed" in texts(app)
    assert "panel-confirm" not in [b.key for b in app.button]
    open_cell(app, 1, "opener")  # a cell nobody edited has nothing to confirm
    assert "panel-confirm" not in [b.key for b in app.button]


def test_save_to_record_writes_into_notes_or_a_chosen_field(app: AppTest, states_ws: Workspace) -> None:
    from ui.panel import NEW_FIELD

    campaign = states_ws.campaign("t")
    open_cell(app.run(), 2, "greet")
    assert app.selectbox(key="save-field-t").options == ["notes", "email", "first", "employees", NEW_FIELD]
    app.button(key="panel-save-to-record").click().run()
    assert not app.exception and not app.error
    assert campaign.cell(2, "notes").value == "greet: Hi Bob at globex.io"  # the notes field, created for it
    app.selectbox(key="save-field-t").select(NEW_FIELD).run()
    app.text_input(key="save-new-field-t").input("greeting").run()
    app.button(key="panel-save-to-record").click().run()
    assert campaign.cell(2, "greeting").value == "Hi Bob at globex.io"
    app.selectbox(key="save-field-t").select("first").run()  # an input a step reads: that step recomputes
    app.button(key="panel-save-to-record").click().run()
    assert grid(app).loc[2, "greet"] == "Hi Hi Bob at globex.io at globex.io"
    open_cell(app, 1, "opener")  # stale: not a current value, so nothing to save
    assert "panel-save-to-record" not in [b.key for b in app.button]


def test_send_to_copilot_from_the_panel_then_use_a_reply_as_the_cell_value(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 2, "greet")
    key = "cell-t-2-greet"
    app.button(key=f"copilot-open-{key}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    app.text_input(key=f"copilot-input-{key}").input("shorter")
    app.button(key=f"copilot-send-{key}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    chat = states_ws.copilot().find(campaign="t", row=2, column="greet")
    assert chat is not None
    reply = chat["messages"][-1]
    assert reply["content"].startswith("[offline model] shorter") and "offline model: set a model" in texts(app)
    app.button(key=f"copilot-pin-{key}-{reply['message_id']}").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    cell = states_ws.campaign("t").cell(2, "greet")
    assert (cell.value, cell.status) == (reply["content"], Status.PINNED)
    assert "exports downstream wait until the value is confirmed" in texts(app)  # the panel's Confirm, as for an edit


def test_edit_mode_makes_only_inputs_editable(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    app.toggle(key="edit_mode").set_value(True).run()
    editor = app.dataframe[0].proto
    assert editor.editing_mode == 1  # the data editor replaces the read-only grid (typing is tested in Chromium)
    disabled = {name: config.get("disabled") for name, config in json.loads(editor.columns).items()}
    assert [n for n in ("email", "first", "employees") if disabled[n]] == []  # inputs are editable
    assert all(disabled[n] for n in ("domain", "research", "opener", "opener_length"))  # steps are not


def test_both_grids_colour_the_cell_states(app: AppTest, states_ws: Workspace) -> None:
    colours = {"stale": "#fff4d6", "error": "#fdecea", "pinned": "#f1eaff"}
    grid(app.run())
    assert all(c in app.dataframe[0].proto.arrow_data.styler.styles for c in colours.values())
    app.toggle(key="edit_mode").set_value(True).run()
    editor = app.dataframe[0].proto
    assert editor.editing_mode == 1
    assert all(c in editor.arrow_data.styler.styles for c in colours.values())  # edit mode keeps them


def test_a_page_without_coloured_cells_sends_no_styles(app: AppTest, states_ws: Workspace) -> None:
    states_ws.apply(SLOW_SPEC)
    states_ws.campaign("slow").add_rows([{"n": "1"}])
    states_ws.campaign("slow").run(["crawl"])
    app.session_state["campaign"] = "slow"
    app.run()
    assert grid(app).loc[1, "crawl"] == "probe(1)"
    assert not app.dataframe[0].proto.arrow_data.HasField("styler")  # a Styler would double what is sent


@pytest.mark.parametrize(
    ("edited_rows", "match"),
    [
        ({}, True),
        ({"0": {"email": "ann@acme.com"}}, True),  # the edit landed: the editor may keep holding it
        ({0: {"employees": 40.0}}, True),  # a number typed into a number column
        ({"1": {"first": None}}, False),  # cleared, but the workspace still has Bob
        ({"2": {"first": "Cyrus"}}, False),  # not saved (refused, or changed since by someone else)
        ({"9": {"first": "Zed"}}, False),  # no such row on this page
    ],
)
def test_the_editor_keeps_its_edits_only_while_they_match(edited_rows: dict, match: bool) -> None:  # type: ignore[type-arg]
    from ui.grid import edits_match

    frame = pd.DataFrame(
        {
            "email": ["ann@acme.com", "bob@globex.io", "cy@initech.org"],
            "first": ["Ann", "Bob", "Cy"],
            "employees": [40, 900, 12],
        },
        index=pd.Index([1, 2, 3], name="row"),
    )
    assert edits_match({"edited_rows": edited_rows}, frame) is match


def test_bad_input_value_is_a_friendly_error(app: AppTest, states_ws: Workspace) -> None:
    open_cell(app.run(), 1, "employees")
    box = panel_box(app)
    box.input("forty").run()
    app.button(key=box.key + "-save").click().run()
    assert not app.exception
    assert "'forty' is not a valid BIGINT for column 'employees'" in app.error[0].value
    assert "give a BIGINT value" in app.error[0].value


# ---- the column menu ----------------------------------------------------------------------------------------


def test_column_run_shows_estimate_then_asks_to_confirm_above_threshold(app: AppTest, states_ws: Workspace) -> None:
    states_ws.set_setting("confirm_threshold", 5)
    app.run()
    app.selectbox(key="menu_column").select("opener").run()
    open_menu(app, "menu_run")
    app.button(key="run_estimate").click().run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["calls"] == "3" and metrics["credits"] == "9"  # 3 rows not up to date x 3 credits
    assert "above the workspace's threshold of 5" in app.warning[0].value
    assert app.button(key="run_go").disabled
    app.checkbox(key="run_confirm").check().run()
    assert not app.button(key="run_go").disabled
    app.button(key="run_go").click().run()
    assert runs.launches_all()[0].request == runs.RunRequest("t", ("opener",), None)
    wait_for_launches()
    frame = grid(app.run())
    assert all(not text.startswith(("▶", "◐")) for text in frame["opener"])


def test_column_run_below_threshold_needs_no_confirmation(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    app.selectbox(key="menu_column").select("checker").run()
    open_menu(app, "menu_run")
    app.radio(key="run_cells").set_value("stale").run()
    app.button(key="run_estimate").click().run()
    assert {m.label: m.value for m in app.metric}["calls"] == "1"  # only row 1's checker is stale
    assert not app.button(key="run_go").disabled
    assert not any("threshold" in w.value for w in app.warning)


def test_the_run_menu_retries_failed_cells(app: AppTest, states_ws: Workspace) -> None:
    # issue 15: a provider_error cell is retried only when asked; the Run menu asks with "Retry failed cells"
    app.run()
    app.selectbox(key="menu_column").select("checker").run()
    open_menu(app, "menu_run")
    app.radio(key="run_cells").set_value("errors").run()
    app.button(key="run_estimate").click().run()
    assert {m.label: m.value for m in app.metric}["calls"] == "1"  # row 2's checker, in provider_error
    assert any(c.value == "Retries: 1 cell(s) (provider_error 1)" for c in app.caption)
    app.button(key="run_go").click().run()
    assert runs.launches_all()[0].request == runs.RunRequest("t", ("checker",), None, errors=True)
    wait_for_launches()
    assert states_ws.campaign("t").cell(2, "checker").run_id != states_ws.campaign("t").cell(3, "checker").run_id


def test_switch_a_column_to_manual_and_pause_it(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    app.selectbox(key="menu_column").select("research").run()
    open_menu(app, "menu_mode")
    app.radio(key="mode-research").set_value("manual").run()
    app.button(key="mode_apply").click().run()
    assert states_ws.campaign("t").spec.column("research").run == "manual"
    assert json.loads(app.dataframe[0].proto.columns)["research"]["label"] == "◇ research · manual"
    kept = states_ws.campaign("t").status_counts()["research"]
    app.button(key="mode_pause").click().run()
    assert states_ws.pause_state("t").columns == frozenset({"research"})  # an operating switch, not a spec edit
    assert "enabled" not in states_ws.campaign("t").spec.source["columns"][5]
    assert states_ws.campaign("t").status_counts()["research"] == kept  # pausing changes no cell
    app.button(key="mode_start").click().run()
    assert states_ws.pause_state("t").columns == frozenset()


def test_add_a_formula_column(app: AppTest, states_ws: Workspace) -> None:
    open_menu(app.run(), "menu_add")
    app.text_input(key="add_name").input("shout").run()
    app.text_area(key="add_options_formula").input('expression: "upper(first)"').run()
    app.button(key="add_go").click().run()
    frame = grid(app)
    assert list(frame["shout"]) == ["ANNIE", "BOB", "CY"]


def test_a_new_paid_column_starts_paused_and_the_mode_menu_starts_it(app: AppTest, states_ws: Workspace) -> None:
    """Issue 13, item 11: nothing paid starts without consent, in the UI too."""
    open_menu(app.run(), "menu_add")
    app.text_input(key="add_name").input("deep").run()
    app.selectbox(key="add_kind").select("probe").run()
    app.text_area(key="add_options_probe").input("inputs: [domain]\ncredits: 2\n").run()
    app.button(key="add_go").click().run()
    assert states_ws.pause_state("t").columns == frozenset({"deep"})
    assert any("deep is a new paid step: paused until you start it" in str(t.value) for t in app.toast)
    app.selectbox(key="menu_column").select("deep").run()
    open_menu(app, "menu_mode")
    app.button(key="mode_start").click().run()
    assert states_ws.pause_state("t").columns == frozenset()


def test_a_bad_spec_edit_is_refused_with_its_fix(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    app.selectbox(key="menu_column").select("domain").run()
    open_menu(app, "menu_edit")
    app.text_area(key="edit-domain-expression").input("split_part(nosuch, '@', 2)").run()
    assert not app.exception
    assert any("nosuch" in e.value for e in app.error)  # the live preview validates before anything applies
    assert states_ws.campaign("t").spec.column("domain").deps == ("email",)


# ---- runs outside the script --------------------------------------------------------------------------------


SLOW_SPEC = """
campaign: slow
columns:
  - {name: n, kind: input}
  - {name: crawl, kind: probe, inputs: [n], delay: 0.4, run: manual}
"""


def test_a_running_run_shows_progress_and_stops(app: AppTest, states_ws: Workspace) -> None:
    states_ws.apply(SLOW_SPEC)
    states_ws.set_setting("concurrency", 2)
    slow = states_ws.campaign("slow")
    slow.add_rows([{"n": str(i)} for i in range(200)])
    app.session_state["campaign"] = "slow"
    app.run()
    item = runs.launch(states_ws.path, runs.RunRequest("slow", ("crawl",)), actor="tester", ws=states_ws)
    run = _wait_for_run(states_ws, "slow")
    app.run()
    bars = [p.proto.text for p in app.get("progress")]
    assert any(f"Run {run['run_id']} · crawl · by tester" in text for text in bars), bars
    with pytest.raises(runs.RunConflict, match="still going"):  # a second tab cannot start a duplicate
        runs.launch(states_ws.path, runs.RunRequest("slow", ("crawl",)), actor="other", ws=states_ws)
    app.button(key=f"stop-{run['run_id']}").click().run()
    item.process.wait(timeout=60)
    final = next(r for r in states_ws.runs(10) if r["run_id"] == run["run_id"])
    assert final["status"] == "stopped"
    counts = slow.status_counts()["crawl"]
    assert counts.get("done", 0) < 200


def _wait_for_run(ws: Workspace, campaign: str, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = ws.active_runs(campaign)
        if active:
            return active[0]
        time.sleep(0.1)
    raise AssertionError("the launched run never started")


def test_a_failed_run_is_reported_in_plain_words(app: AppTest, states_ws: Workspace) -> None:
    app.run()
    item = runs.launch(states_ws.path, runs.RunRequest("t", ("nosuch",)), actor="tester", ws=states_ws)
    item.process.wait(timeout=60)
    app.run()
    messages = [e.value for e in app.error]
    assert any("The run of nosuch on all rows failed: error:" in m for m in messages), messages
    assert not app.exception
    app.button(key=f"dismiss-{item.ident}").click().run()
    assert not any("failed" in e.value for e in app.error)


# ---- whole-workspace states ---------------------------------------------------------------------------------


def test_missing_workspace_offers_to_create_it(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(tmp_path / "fresh"))
    app.run()
    assert "There is no workspace" in app.info[0].value
    app.button(key="create-workspace").click().run()
    assert (tmp_path / "fresh" / "runsheet.duckdb").exists()
    assert app.title[0].value == "No campaign yet"


def test_empty_workspace_applies_a_pasted_spec(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path / "empty")
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(tmp_path / "empty"))
    app.run()
    assert app.title[0].value == "No campaign yet"
    app.text_area(key="spec_text").input(SLOW_SPEC).run()
    app.button(key="apply_text").click().run()
    app.run()
    assert app.session_state["campaign"] == "slow"
    assert "This campaign has no records yet" in app.info[0].value


HOLD_LOCK = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"


def test_busy_workspace_says_so_instead_of_failing(
    app: AppTest, states_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNSHEET_UI_BUSY_TIMEOUT", "0.3")
    states_ws.release()  # this process keeps the file open for a moment after its last transaction
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(states_ws.path / "runsheet.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        app.run()
        assert not app.exception
        assert [w.value for w in app.warning if "workspace is busy" in w.value.lower()]
        assert not app.button  # nothing offered that would need the workspace
    finally:
        holder.kill()
        holder.wait()
    app.run()
    assert grid(app).loc[2, "opener"] == "▶ Click to Run"
