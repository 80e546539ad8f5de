"""The public API (`engine/__init__.py`) and the faces on it: `__all__` is pinned, sorted and importable, and the
CLI, the API and the UI import `engine` only (never `engine.auth`, `engine.store.*`, ...) and open no database of
their own (no `ws.db`, no SQL), read from their source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

import engine
from engine import Workspace
from engine.cli import app
from ui import runs

ROOT = Path(__file__).resolve().parents[1]
FACES = {"engine.cli": ROOT / "engine" / "cli", "engine.api": ROOT / "engine" / "api", "ui": ROOT / "ui"}
# The one face that uses another: `runsheet serve` runs the API's app (engine.api's own public entry point).
FACE_TO_FACE = {("engine.cli", "engine.api")}

PUBLIC = [
    "ACTION_TEMPLATES",
    "ActionBuilder",
    "ActionLibrary",
    "ApplyResult",
    "BuilderModel",
    "Campaign",
    "CampaignSpec",
    "CampaignStatus",
    "Cell",
    "ColumnEstimate",
    "ColumnLayout",
    "ColumnSpec",
    "ContextDocument",
    "Copilot",
    "CycleError",
    "EditError",
    "ErrorCode",
    "Estimate",
    "ExecutionEvent",
    "ExportError",
    "ExportReport",
    "HINTS",
    "ImportError_",
    "ImportOptions",
    "ImportReport",
    "Intake",
    "IntakePlan",
    "Login",
    "LoginError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "QueryError",
    "ROLES",
    "Resumed",
    "RunOptions",
    "RunProgress",
    "RunReport",
    "RunSelection",
    "RunsheetError",
    "Schedule",
    "Scheduler",
    "Settings",
    "SpecChanges",
    "SpecConflictError",
    "SpecError",
    "Status",
    "TypeChange",
    "WarmCall",
    "WarmResult",
    "WarmRunner",
    "Workspace",
    "WorkspaceBusyError",
    "add_schedule",
    "check_records",
    "export_from_workspace",
    "frame_to_csv",
    "list_schedules",
    "load_spec",
    "parse_spec",
    "read_status",
    "remove_schedule",
    "with_action_column",
]


def test_all_is_the_pinned_list() -> None:
    assert engine.__all__ == PUBLIC


def test_all_is_sorted() -> None:
    assert engine.__all__ == sorted(engine.__all__)


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from engine import *", namespace)  # noqa: S102  (what a user's star import gets)
    assert [name for name in engine.__all__ if name not in namespace] == []
    assert all(getattr(engine, name) is namespace[name] for name in engine.__all__)


def test_planner_internals_and_test_hooks_stay_out_of_the_public_api() -> None:
    hidden = {"Action", "CellPlan", "ColumnGraph", "ColumnNode", "Request", "plan_row", "PROBE_LEDGER"}
    assert hidden & set(engine.__all__) == set()
    from engine.testing import PROBE_LEDGER

    assert PROBE_LEDGER.calls is not None


def reach_arounds(source: str, package: str) -> list[str]:
    """The imports in `source` (a module of the face `package`) that reach past `engine`'s public API: any engine
    module but `engine` itself and the face's own package, and any name taken from `engine` not in `__all__`."""
    found: list[str] = []

    def allowed(module: str) -> bool:
        if module == "engine" or not module.startswith("engine."):
            return True
        return module == package or module.startswith(package + ".") or (package, module) in FACE_TO_FACE

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if not allowed(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if not allowed(node.module):
                found.append(f"from {node.module} import ...")
            elif node.module == "engine":
                found += [f"from engine import {a.name}" for a in node.names if a.name not in engine.__all__]
    return found


def test_the_check_catches_each_way_around() -> None:
    source = (
        "from engine.auth import current_user\n"
        "import engine.store.runlog\n"
        "from engine import cli\n"
        "def late():\n"
        "    from engine.schedules import schedules\n"
        "from engine import Workspace\n"
        "from engine.cli.common import app\n"
        "import polars\n"
    )
    assert sorted(reach_arounds(source, "ui")) == [
        "from engine import cli",
        "from engine.auth import ...",
        "from engine.cli.common import ...",
        "from engine.schedules import ...",
        "import engine.store.runlog",
    ]
    assert sorted(reach_arounds(source, "engine.cli")) == [
        "from engine import cli",
        "from engine.auth import ...",
        "from engine.schedules import ...",
        "import engine.store.runlog",
    ]
    assert reach_arounds("from engine.api import create_app\n", "engine.cli") == []
    assert reach_arounds("from engine.api import create_app\n", "ui") == ["from engine.api import ..."]


def test_the_cli_the_api_and_the_ui_import_engine_only() -> None:
    checked = 0
    found: dict[str, list[str]] = {}
    for package, folder in FACES.items():
        for path in sorted(folder.rglob("*.py")):
            checked += 1
            bad = reach_arounds(path.read_text(encoding="utf-8"), package)
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert found == {}
    assert checked >= 30  # every face's modules were read (cli 10, api 2, ui 20 and its views)


def database_reach(source: str) -> list[str]:
    """Where `source` opens a workspace's database itself: `<anything>.db` (a Workspace's or Campaign's handle on
    it) or `.execute(...)`/`.transaction(...)` (SQL or a transaction of its own)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("db", "execute", "transaction"):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_database_check_catches_a_handle_and_sql() -> None:
    source = "with ws.db.transaction() as con:\n    con.execute('UPDATE runs SET status = 1')\n"
    assert sorted(database_reach(source)) == ["line 1: .db", "line 1: .transaction", "line 2: .execute"]
    assert database_reach("ws.run_log(limit=5)\n") == []


def test_the_faces_open_no_database_of_their_own() -> None:
    found: dict[str, list[str]] = {}
    for folder in FACES.values():
        for path in sorted(folder.rglob("*.py")):
            bad = database_reach(path.read_text(encoding="utf-8"))
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert found == {}


def test_the_ui_run_command_is_one_the_cli_accepts(tmp_path: Path) -> None:
    """The UI launches `runsheet run` as a process: the line it builds parses with the CLI's own parser."""
    request = runs.RunRequest("outbound", ("opener", "score"), (1, 2, 3, 7), force=True, only_stale=True, limit=5)
    line = runs.command_for(tmp_path, request, "ann")
    assert line[1:4] == ["-m", "engine.cli", "run"]
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    context = command.make_context("run", line[4:])
    assert context.params | {"workspace": None} == {
        **context.params,
        "campaign": "outbound",
        "column": ["opener", "score"],
        "rows": "1-3,7",
        "force": True,
        "stale": True,
        "limit": 5,
        "actor": "ann",
        "trigger": "ui",
        "workspace": None,
    }
    assert Path(context.params["workspace"]) == tmp_path


def test_a_face_asks_the_workspace_not_its_files(tmp_path: Path) -> None:
    assert not Workspace.exists(tmp_path / "none")
    ws = Workspace.init(tmp_path / "ws")
    assert Workspace.exists(ws.path)
    assert ws.run_record(12345) is None
    handle = ws.handle("absent", actor="ann", trigger="api")  # no transaction: the name is checked on first use
    assert (handle.name, handle.actor, handle.trigger) == ("absent", "ann", "api")
