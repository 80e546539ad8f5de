"""The workspace features the UI reads beyond the reactive core (estimates, credits, settings, context, SQL,
export), reached through the public `engine` API. They arrived in stages; each accessor here says plainly when
the engine in use does not offer one yet, so a page can show that instead of failing.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from engine import Campaign, RunsheetError, Workspace

DEFAULT_CONFIRM_THRESHOLD = 100.0


class Unavailable(RunsheetError):
    """This engine build does not offer a feature the UI page needs."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"{feature} is not available in this engine build", hint="update runsheet")


def has(obj: object, name: str) -> bool:
    return callable(getattr(obj, name, None))


def as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if callable(getattr(value, "as_dict", None)):
        return dict(value.as_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    return {k: v for k, v in vars(value).items() if not k.startswith("_")}


def estimate(
    campaign: Campaign, columns: list[str], rows: list[int] | None, *, force: bool, only_stale: bool,
    limit: int | None = None,
) -> dict[str, Any]:
    """What running `columns` on `rows` would cost (calls, cache hits, credits, downstream auto-run)."""
    if not has(campaign, "estimate"):
        raise Unavailable("cost estimates")
    method = campaign.estimate  # type: ignore[attr-defined]
    accepted = inspect.signature(method).parameters
    extra = {k: v for k, v in (("force", force), ("only_stale", only_stale), ("limit", limit)) if k in accepted}
    return as_dict(method(columns, rows, **extra))


def credits(ws: Workspace) -> float | None:
    if not has(ws, "credits"):
        return None
    value = ws.credits()  # type: ignore[attr-defined]
    if isinstance(value, int | float):
        return float(value)
    found = as_dict(value)
    for key in ("balance", "credits", "available"):
        if key in found:
            return float(found[key])
    return None


def add_credits(ws: Workspace, amount: float, actor: str) -> None:
    if not has(ws, "add_credits"):
        raise Unavailable("adding credits")
    method = ws.add_credits  # type: ignore[attr-defined]
    params = inspect.signature(method).parameters
    if "actor" in params:
        method(amount, actor=actor)
    elif "reason" in params:
        method(amount, reason=f"added in the UI by {actor}")
    else:
        method(amount)


def settings(ws: Workspace) -> dict[str, Any]:
    if has(ws, "settings"):
        return as_dict(ws.settings())  # type: ignore[attr-defined]
    return {}


def setting(ws: Workspace, name: str, default: Any) -> Any:
    if has(ws, "setting"):
        try:
            value = ws.setting(name)  # type: ignore[attr-defined]
            return default if value is None else value
        except (KeyError, RunsheetError):
            return default
    return settings(ws).get(name, default)


def set_setting(ws: Workspace, name: str, value: Any, actor: str) -> None:
    for method_name in ("set_setting", "configure"):
        if has(ws, method_name):
            method = getattr(ws, method_name)
            if method_name == "configure":
                method(**{name: value})
            elif "actor" in inspect.signature(method).parameters:
                method(name, value, actor=actor)
            else:
                method(name, value)
            return
    raise Unavailable("changing settings")


def confirm_threshold(ws: Workspace) -> float:
    return float(setting(ws, "confirm_threshold", DEFAULT_CONFIRM_THRESHOLD))


def context(ws: Workspace) -> dict[str, str]:
    """The global context documents by name."""
    if not has(ws, "context"):
        raise Unavailable("global context")
    found = ws.context()  # type: ignore[attr-defined]
    if isinstance(found, dict):
        return {str(k): v if isinstance(v, str) else str(as_dict(v).get("text", v)) for k, v in found.items()}
    return {str(as_dict(d)["name"]): str(as_dict(d).get("text", "")) for d in found}


def set_context(ws: Workspace, name: str, text: str, actor: str) -> None:
    if not has(ws, "set_context"):
        raise Unavailable("global context")
    ws.set_context(name, text, actor=actor)  # type: ignore[attr-defined]


def query_csv(ws: Workspace, sql: str) -> bytes:
    """The whole result of `sql` as CSV (cells that look like spreadsheet formulas are escaped)."""
    import tempfile
    from pathlib import Path

    if not has(ws, "query_to_file"):
        raise Unavailable("exporting query results")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "query.csv"
        ws.query_to_file(sql, path, format="csv")  # type: ignore[attr-defined]
        return path.read_bytes()


def export_campaign(campaign: Campaign, fmt: str, with_state: bool) -> bytes:
    """The campaign's values (and, with `with_state`, each step's status, error and credits) as file bytes."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{campaign.name}.{fmt}"
        if has(campaign, "export"):
            campaign.export(path, format=fmt, with_state=with_state)  # type: ignore[attr-defined]
        else:
            frame = campaign.values()
            frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
        return path.read_bytes()


def query(ws: Workspace, sql: str, limit: int) -> Any:
    """Run read-only SQL in the engine's sandbox; returns a polars or pandas frame (or rows)."""
    if not has(ws, "query"):
        raise Unavailable("SQL queries")
    method = ws.query  # type: ignore[attr-defined]
    params = inspect.signature(method).parameters
    return method(sql, limit=limit) if "limit" in params else method(sql)
