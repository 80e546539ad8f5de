"""Runsheet's public API: the CLI and the UI use only what is exported here.

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
from engine.cells.probe import LEDGER as PROBE_LEDGER
from engine.errors import (
    CycleError,
    EditError,
    ExportError,
    ImportError_,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    RunsheetError,
    SpecError,
    WorkspaceBusyError,
)
from engine.estimate import ColumnEstimate, Estimate
from engine.graph import Action, CellPlan, ColumnGraph, ColumnNode, Request, plan_row
from engine.io import ExportReport, ImportOptions, frame_to_csv
from engine.run.reports import ExecutionEvent, RunOptions, RunProgress, RunReport
from engine.run.selection import RunSelection
from engine.spec import CampaignSpec, ColumnSpec, load_spec, parse_spec
from engine.store.changes import SpecChanges, TypeChange
from engine.store.context import ContextDocument
from engine.store.settings import Settings
from engine.types import HINTS, ErrorCode, Status
from engine.workspace import ApplyResult, Resumed, Workspace

__all__ = [
    "HINTS",
    "PROBE_LEDGER",
    "ROLES",
    "Action",
    "ApplyResult",
    "Campaign",
    "CampaignSpec",
    "Cell",
    "CellPlan",
    "ColumnGraph",
    "ColumnNode",
    "ColumnSpec",
    "CycleError",
    "ColumnEstimate",
    "ContextDocument",
    "EditError",
    "Estimate",
    "ErrorCode",
    "ExecutionEvent",
    "ExportError",
    "ExportReport",
    "ImportError_",
    "ImportOptions",
    "ImportReport",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "QueryError",
    "Request",
    "RunOptions",
    "RunProgress",
    "Resumed",
    "RunReport",
    "RunSelection",
    "Settings",
    "RunsheetError",
    "SpecChanges",
    "SpecError",
    "Status",
    "TypeChange",
    "Workspace",
    "WorkspaceBusyError",
    "frame_to_csv",
    "load_spec",
    "parse_spec",
    "plan_row",
]
