"""Users' SQL: a read-only, locked-down DuckDB sandbox over the workspace, with views of every campaign."""

from engine.sql.sandbox import Limits, Sandbox, open_sandbox

__all__ = ["Limits", "Sandbox", "open_sandbox"]
