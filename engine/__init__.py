"""Runsheet's public API: the CLI, the HTTP API and the UI use only what is exported here (tests/test_public_api.py
checks it; test hooks are in engine/testing.py).

ws = Workspace.init("my-workspace")
ws.apply("campaigns/outbound.yaml")
campaign = ws.campaign("outbound")
campaign.import_file("campaigns/prospects.csv")
campaign.set(1, "email", "ada@example.com")   # downstream formula cells recompute at once
campaign.run(["opener"], rows=[1])             # Click to Run / Run Again (force=True)
campaign.save_to_record(1, "opener")           # Save to Record: a line "opener: ..." in the notes field
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.action_columns import with_action_column
    from engine.actions import TEMPLATES as ACTION_TEMPLATES
    from engine.actions import ActionLibrary
    from engine.auth import ROLES
    from engine.builder import ActionBuilder, BuilderModel
    from engine.campaign import Campaign, ImportReport
    from engine.campaign_reads import Cell, Page
    from engine.copilot import Copilot
    from engine.errors import (
        CycleError,
        EditError,
        ExportError,
        ImportError_,
        LoginError,
        NotFoundError,
        PermissionDeniedError,
        QueryError,
        RunsheetError,
        SpecConflictError,
        SpecError,
        WorkspaceBusyError,
    )
    from engine.estimate import ColumnEstimate, Estimate
    from engine.intake import Intake, IntakePlan
    from engine.io.exporter import ExportReport, export_from_workspace, frame_to_csv
    from engine.io.plan import ImportOptions
    from engine.io.records import check_records
    from engine.logins import Login
    from engine.run.reports import ExecutionEvent, RunOptions, RunProgress, RunReport
    from engine.run.selection import RunSelection
    from engine.schedules import Schedule, Scheduler, add_schedule, remove_schedule
    from engine.schedules import schedules as list_schedules
    from engine.spec import CampaignSpec, ColumnSpec, load_spec, parse_spec
    from engine.status import CampaignStatus, read_status
    from engine.store.changes import SpecChanges, TypeChange
    from engine.store.context import ContextDocument
    from engine.store.layouts import ColumnLayout
    from engine.store.settings import Settings
    from engine.types import HINTS, ErrorCode, Status
    from engine.warm import WarmCall, WarmResult, WarmRunner
    from engine.workspace import ApplyResult, Resumed, Workspace

# Each public name and where it lives: `import engine` loads none of them (the CLI's `--help` needs no DuckDB,
# polars or pyarrow); the first use of a name imports its module (PEP 562).
_EXPORTS: dict[str, tuple[str, str]] = {
    "ApplyResult": ("engine.workspace", "ApplyResult"),
    "Campaign": ("engine.campaign", "Campaign"),
    "CampaignSpec": ("engine.spec", "CampaignSpec"),
    "CampaignStatus": ("engine.status", "CampaignStatus"),
    "Cell": ("engine.campaign_reads", "Cell"),
    "ACTION_TEMPLATES": ("engine.actions", "TEMPLATES"),
    "ActionBuilder": ("engine.builder", "ActionBuilder"),
    "ActionLibrary": ("engine.actions", "ActionLibrary"),
    "BuilderModel": ("engine.builder", "BuilderModel"),
    "ColumnEstimate": ("engine.estimate", "ColumnEstimate"),
    "ColumnLayout": ("engine.store.layouts", "ColumnLayout"),
    "ColumnSpec": ("engine.spec", "ColumnSpec"),
    "Copilot": ("engine.copilot", "Copilot"),
    "ContextDocument": ("engine.store.context", "ContextDocument"),
    "CycleError": ("engine.errors", "CycleError"),
    "EditError": ("engine.errors", "EditError"),
    "ErrorCode": ("engine.types", "ErrorCode"),
    "Estimate": ("engine.estimate", "Estimate"),
    "ExecutionEvent": ("engine.run.reports", "ExecutionEvent"),
    "ExportError": ("engine.errors", "ExportError"),
    "ExportReport": ("engine.io.exporter", "ExportReport"),
    "HINTS": ("engine.types", "HINTS"),
    "ImportError_": ("engine.errors", "ImportError_"),
    "ImportOptions": ("engine.io.plan", "ImportOptions"),
    "ImportReport": ("engine.campaign", "ImportReport"),
    "Intake": ("engine.intake", "Intake"),
    "IntakePlan": ("engine.intake", "IntakePlan"),
    "Login": ("engine.logins", "Login"),
    "LoginError": ("engine.errors", "LoginError"),
    "NotFoundError": ("engine.errors", "NotFoundError"),
    "Page": ("engine.campaign_reads", "Page"),
    "PermissionDeniedError": ("engine.errors", "PermissionDeniedError"),
    "QueryError": ("engine.errors", "QueryError"),
    "ROLES": ("engine.auth", "ROLES"),
    "Resumed": ("engine.workspace", "Resumed"),
    "RunOptions": ("engine.run.reports", "RunOptions"),
    "RunProgress": ("engine.run.reports", "RunProgress"),
    "RunReport": ("engine.run.reports", "RunReport"),
    "RunSelection": ("engine.run.selection", "RunSelection"),
    "RunsheetError": ("engine.errors", "RunsheetError"),
    "Schedule": ("engine.schedules", "Schedule"),
    "Scheduler": ("engine.schedules", "Scheduler"),
    "Settings": ("engine.store.settings", "Settings"),
    "SpecChanges": ("engine.store.changes", "SpecChanges"),
    "SpecConflictError": ("engine.errors", "SpecConflictError"),
    "SpecError": ("engine.errors", "SpecError"),
    "Status": ("engine.types", "Status"),
    "TypeChange": ("engine.store.changes", "TypeChange"),
    "Workspace": ("engine.workspace", "Workspace"),
    "WarmCall": ("engine.warm", "WarmCall"),
    "WarmResult": ("engine.warm", "WarmResult"),
    "WarmRunner": ("engine.warm", "WarmRunner"),
    "WorkspaceBusyError": ("engine.errors", "WorkspaceBusyError"),
    "add_schedule": ("engine.schedules", "add_schedule"),
    "check_records": ("engine.io.records", "check_records"),
    "export_from_workspace": ("engine.io.exporter", "export_from_workspace"),
    "frame_to_csv": ("engine.io.exporter", "frame_to_csv"),
    "list_schedules": ("engine.schedules", "schedules"),
    "load_spec": ("engine.spec", "load_spec"),
    "parse_spec": ("engine.spec", "parse_spec"),
    "read_status": ("engine.status", "read_status"),
    "remove_schedule": ("engine.schedules", "remove_schedule"),
    "with_action_column": ("engine.action_columns", "with_action_column"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module, original = _EXPORTS[name]
    value = getattr(importlib.import_module(module), original)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
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
