"""The other pages through AppTest: SQL, Activity, Context, Import / Export and Settings, on a real workspace."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from engine import Workspace
from tests.ui.conftest import APP, log_in


def on_page(app: AppTest, page: str) -> AppTest:
    app.run()
    app.switch_page(f"views/{page}.py")
    app.run()
    assert not app.exception, app.exception
    return app


def test_sql_page_runs_a_query_and_exports_it(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "sql")
    app.text_area(key="sql_text").input(
        "SELECT row_id, \"column\", status FROM cells WHERE campaign = 't' AND status IN ('error', 'pinned') "
        'ORDER BY row_id, "column"'
    ).run()
    app.button(key="sql_run").click().run()
    result = app.dataframe[0].value
    assert result.to_dict("records") == [
        {"row_id": 2, "column": "checker", "status": "error"},
        {"row_id": 2, "column": "opener_length", "status": "pinned"},
    ]
    app.button(key="sql_export").click().run()
    assert not app.exception
    assert app.get("download_button")  # the CSV is ready to download


def test_sql_page_refuses_writes_in_plain_words(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "sql")
    app.text_area(key="sql_text").input("DELETE FROM runs").run()
    app.button(key="sql_run").click().run()
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("query: ")
    assert states_ws.runs(100)  # nothing was deleted


def test_activity_page_lists_runs_and_cell_log(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "activity")
    assert "Nothing is running." in [c.value for c in app.caption]
    runs_table = app.dataframe[0].value
    assert {"run_id", "status", "actor", "trigger"} <= set(runs_table.columns)
    assert set(runs_table["status"]) == {"done"}
    log = app.dataframe[1].value
    assert "error" in set(log["outcome"])
    app.multiselect(key="activity_outcomes").select("error").run()
    filtered = app.dataframe[1].value
    assert set(filtered["outcome"]) == {"error"} and list(filtered["column_name"]) == ["checker"]


def test_activity_page_shows_the_campaigns_spec_changes(app: AppTest, states_ws: Workspace) -> None:
    import yaml

    spec = {**yaml.safe_load(states_ws.spec_yaml("t")), "description": "tuned"}
    states_ws.apply(yaml.safe_dump(spec), actor="ada", origin="file", force=True)
    on_page(app, "activity")
    assert not app.exception
    expander = next(e for e in app.expander if e.label.startswith("Spec changes of t ("))
    assert "ada · via file" in expander.markdown[0].value
    assert "+description: tuned" in expander.code[0].value


def test_context_page_saves_a_document(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "context")
    app.radio(key="context_doc").set_value("icp").run()
    app.text_area(key="context-text-icp").input("Heads of sales at B2B SaaS companies, 50-500 people.").run()
    app.button(key="context_save").click().run()
    assert not app.exception
    assert states_ws.context()["icp"].text == "Heads of sales at B2B SaaS companies, 50-500 people."
    app.run()
    assert app.text_area(key="context-text-icp").value.startswith("Heads of sales")


def test_import_page_loads_and_upserts_a_csv(app: AppTest, states_ws: Workspace, tmp_path: Path) -> None:
    on_page(app, "data")
    csv = "email,first,employees\ndee@hooli.com,Dee,300\nbob@globex.io,Robert,900\n"
    uploader = app.get("file_uploader")
    assert uploader, "the import form has a file picker"
    # AppTest cannot drive a file picker; the same import goes through the engine API the page calls.
    path = tmp_path / "more.csv"
    path.write_text(csv)
    report = states_ws.campaign("t").import_file(path, key="email")
    from ui.data_page import import_summary

    assert import_summary("t", report) == "Imported into t: 1 new, 1 updated"
    app.run()
    assert not app.exception
    assert app.selectbox(key="import_key").options[1:] == ["email", "first", "employees"]


def test_export_page_downloads_values(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "data")
    app.radio(key="export_format").set_value("parquet").run()
    app.button(key="export_prepare").click().run()
    assert not app.exception
    blob = app.session_state["export_blob"]
    frame = pl.read_parquet(io.BytesIO(blob[3]))
    assert frame.height == 3
    assert frame.filter(pl.col("row_id") == 2)["greet"].to_list() == ["Hi Bob at globex.io"]


def test_settings_page_changes_threshold_and_credits(app: AppTest, states_ws: Workspace) -> None:
    before = states_ws.credits()
    on_page(app, "settings")
    app.number_input(key="confirm_threshold").set_value(25.0).run()
    app.button(key="confirm_threshold_save").click().run()
    assert states_ws.settings().confirm_threshold == 25.0
    app.number_input(key="add_credits").set_value(500).run()
    app.button(key="add_credits_go").click().run()
    assert not app.exception
    assert states_ws.credits() == pytest.approx(before + 500)


def test_every_page_handles_an_empty_workspace(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path / "empty")
    monkeypatch.setenv("RUNSHEET_WORKSPACE", str(tmp_path / "empty"))
    for page in ("grid", "sql", "activity", "context", "data", "settings"):
        on_page(app, page)
        assert not app.error, (page, [e.value for e in app.error])


# ---- roles: the UI acts as its user -------------------------------------------------------------------------


def test_a_viewer_cannot_edit_or_run_and_is_told_why(app: AppTest, states_ws: Workspace) -> None:
    from ui import runs

    admin = Workspace(states_ws.path, actor="ada")
    admin.set_role("ada", "admin")
    admin.set_role("tester", "viewer", "tester-password")
    log_in(app, "tester", "tester-password")
    app.session_state["selected"] = (3, "email")
    app.run()
    box = next(t for t in app.text_area if str(t.key).startswith("edit-t-3-email"))
    box.input("cy@umbrella.com").run()
    app.button(key=box.key + "-save").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "save: tester is a viewer and may not edit inputs (that needs member) — log in as a user who may (ada): "
        "Log out in the sidebar, then log in; or ask an admin to change your role (Settings → People and roles)."
    ]
    assert states_ws.campaign("t").cell(3, "email").value == "cy@initech.org"
    app.session_state["selected"] = (2, "opener")
    app.run()
    app.button(key="panel-run").click().run()
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("run: tester is a viewer and may not run")
    assert runs.launches_all() == []  # refused before any process started
    denied = [(a["actor"], a["action"]) for a in states_ws.activity(50) if a["outcome"] == "permission_denied"]
    assert sorted(denied) == [("tester", "edit_inputs"), ("tester", "run")]


def test_an_admin_sets_a_role_and_a_viewer_may_not(app: AppTest, states_ws: Workspace) -> None:
    on_page(app, "settings")
    assert "No users yet" in " ".join(c.value for c in app.caption)
    assert app.text_input(key="role_person").value == "tester"
    app.button(key="role_save").click().run()  # the first user needs a password: nothing changes
    assert [e.value for e in app.error] == [
        "roles: the first user needs a password — the UI asks for a login once the workspace has users"
    ]
    assert states_ws.users() == []
    app.text_input(key="role_password").input("tester-password").run()
    app.button(key="role_save").click().run()  # the first user: tester, an admin, logged in at once
    assert not app.error and [(u["name"], u["role"]) for u in states_ws.users()] == [("tester", "admin")]
    app.run()
    assert app.dataframe[0].value.to_dict("records")[0]["role"] == "admin"
    assert "Signed in as **tester**" in [c.value for c in app.sidebar.caption]
    app.text_input(key="role_person").input("vic").run()
    app.selectbox(key="role_choice").select("viewer").run()
    app.text_input(key="role_password").input("vic-password").run()
    app.button(key="role_save").click().run()
    assert not app.exception and not app.error
    assert [(u["name"], u["role"], u["password"]) for u in states_ws.users()] == [
        ("tester", "admin", True),
        ("vic", "viewer", True),
    ]

    viewer = AppTest.from_file(APP, default_timeout=60)  # another browser: vic logs in
    log_in(viewer, "vic", "vic-password")
    viewer.switch_page("views/settings.py").run()
    viewer.text_input(key="role_person").input("vic").run()
    viewer.selectbox(key="role_choice").select("admin").run()
    viewer.button(key="role_save").click().run()
    assert not viewer.exception
    assert "vic is a viewer and may not manage users" in viewer.error[0].value
    assert "log in as a user who may (tester)" in viewer.error[0].value
    assert [(u["name"], u["role"]) for u in states_ws.users()] == [("tester", "admin"), ("vic", "viewer")]
