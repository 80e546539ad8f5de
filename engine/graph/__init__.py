"""The column DAG and the planner: pure data and functions, no I/O."""

from engine.graph.dag import ColumnGraph, ColumnNode
from engine.graph.planner import Action, CellPlan, Request, plan_row
from engine.graph.references import (
    ALL_CONTEXT,
    ReferenceError_,
    context_references,
    sql_references,
    template_references,
)

__all__ = [
    "Action",
    "CellPlan",
    "ColumnGraph",
    "ColumnNode",
    "ReferenceError_",
    "Request",
    "plan_row",
    "sql_references",
    "context_references",
    "ALL_CONTEXT",
    "template_references",
]
