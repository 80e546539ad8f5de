"""Runsheet's public API: the CLI and the UI use only what is exported here.

    ws = Workspace.init("my-workspace")
    ws.apply("campaigns/outbound.yaml")
    campaign = ws.campaign("outbound")
    campaign.import_file("campaigns/prospects.csv")
    campaign.set(1, "email", "ada@example.com")   # downstream formula cells recompute at once
    campaign.run(["opener"], rows=[1])             # Click to Run / Run Again (force=True)
"""

from engine.campaign import Campaign, Cell, Page
from engine.cells.probe import LEDGER as PROBE_LEDGER
from engine.errors import (
    CycleError,
    EditError,
    ImportError_,
    NotFoundError,
    RunsheetError,
    SpecError,
    WorkspaceBusyError,
)
from engine.executor import ExecutionEvent, RunReport
from engine.graph import Action, CellPlan, ColumnGraph, ColumnNode, Request, plan_row
from engine.spec import CampaignSpec, ColumnSpec, load_spec, parse_spec
from engine.types import HINTS, ErrorCode, Status
from engine.workspace import ApplyResult, Workspace

__all__ = [
    "HINTS",
    "PROBE_LEDGER",
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
    "EditError",
    "ErrorCode",
    "ExecutionEvent",
    "ImportError_",
    "NotFoundError",
    "Page",
    "Request",
    "RunReport",
    "RunsheetError",
    "SpecError",
    "Status",
    "Workspace",
    "WorkspaceBusyError",
    "load_spec",
    "parse_spec",
    "plan_row",
]
