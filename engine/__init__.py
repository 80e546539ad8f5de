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

from engine.auth import ROLES
from engine.campaign import Campaign, Cell, ImportReport, Page
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
from engine.io import ExportReport, ImportOptions, frame_to_csv
from engine.io.records import check_records
from engine.logins import Login
from engine.run.reports import ExecutionEvent, RunOptions, RunProgress, RunReport
from engine.run.selection import RunSelection
from engine.schedules import Schedule, Scheduler, add_schedule, remove_schedule
from engine.schedules import schedules as list_schedules
from engine.spec import CampaignSpec, ColumnSpec, load_spec, parse_spec
from engine.store.changes import SpecChanges, TypeChange
from engine.store.context import ContextDocument
from engine.store.layouts import ColumnLayout
from engine.store.settings import Settings
from engine.types import HINTS, ErrorCode, Status
from engine.warm import WarmCall, WarmResult, WarmRunner
from engine.workspace import ApplyResult, Resumed, Workspace

__all__ = [
    "ApplyResult",
    "Campaign",
    "CampaignSpec",
    "Cell",
    "ColumnEstimate",
    "ColumnLayout",
    "ColumnSpec",
    "ContextDocument",
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
    "frame_to_csv",
    "list_schedules",
    "load_spec",
    "parse_spec",
    "remove_schedule",
]
