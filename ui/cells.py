"""How a cell reads in the grid and in its panel: display text per state, colours, and value formatting.

Pure functions over `engine.Cell`; no Streamlit here, so the mapping from DESIGN.md's cell states to what the
grid shows is tested directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from engine import Cell, Status

CLICK_TO_RUN = "▶ Click to Run"
MAX_GRID_TEXT = 80
# Every glyph the grid draws is in DejaVu Sans, Debian's stock font (fonts-dejavu-core; tests/ui/test_browser.py
# looks at them in Chromium): ⏳ and ⏸ are not, and drew as empty boxes.
WAITING, PAUSED, BLOCKED = "◷", "‖", "⊘"

KIND_ICONS = {
    "input": "",
    "formula": "ƒ",
    "python": "λ",
    "ai": "✦",
    "http": "⇄",
    "export": "⇪",
    "probe": "◇",
}

# Cell styles for the grid (CSS for pandas' Styler, which st.dataframe renders).
STYLES: dict[str, str] = {
    "click": "color: #1a5fb4; font-weight: 600",
    "queued": "color: #6b7280; font-style: italic",
    "running": "color: #1a5fb4; font-style: italic",
    "waiting": "color: #6b7280; font-style: italic",
    "stale": "background-color: #fff4d6; color: #7a5a00",
    "muted": "color: #9ca3af",
    "error": "background-color: #fdecea; color: #b42318",
    "pinned": "background-color: #f1eaff; color: #4c1d95",
    "done": "",
}


def short(value: Any, limit: int = MAX_GRID_TEXT) -> str:
    """One line of a value for a grid cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def grid_text(cell: Cell, manual: bool) -> str:
    """What a step cell shows in the grid, for each state of DESIGN.md's "Cell states" table."""
    status = cell.status
    value = short(cell.value)
    if status is Status.EMPTY:
        return CLICK_TO_RUN if manual else "… queued soon"
    if status is Status.WAITING:
        return f"{WAITING} waiting on {cell.waiting_on or 'an upstream cell'}"
    if status is Status.QUEUED:
        return "… queued"
    if status is Status.RUNNING:
        return "⟳ running"
    if status is Status.STALE:
        return f"◐ {value}  (stale)"
    if status is Status.SKIPPED:
        return "— skipped"
    if status is Status.NOT_FOUND:
        return "∅ no data"
    if status is Status.PAUSED:
        return f"{PAUSED} paused: resume to run it"
    if status is Status.ERROR and cell.blocked_by:
        return f"{BLOCKED} blocked by {cell.blocked_by}"
    if status is Status.ERROR:
        code = cell.error_code or "error"
        hint = cell.error_hint or ""
        return f"⚠ {code}: {hint}" if hint else f"⚠ {code}"
    if status is Status.PINNED:
        return f"✎ {value}"
    if status is Status.CONFIRMED:
        return f"✎ {value}  (confirmed)"
    return value


def style_key(cell: Cell, manual: bool) -> str:
    """Which of STYLES a step cell gets."""
    status = cell.status
    if status is Status.EMPTY:
        return "click" if manual else "queued"
    if cell.blocked_by:
        return "waiting"
    return {
        Status.WAITING: "waiting",
        Status.QUEUED: "queued",
        Status.RUNNING: "running",
        Status.STALE: "stale",
        Status.SKIPPED: "muted",
        Status.NOT_FOUND: "muted",
        Status.ERROR: "error",
        Status.PINNED: "pinned",
        Status.CONFIRMED: "pinned",
        Status.PAUSED: "muted",
    }.get(status, "done")


def status_label(cell: Cell) -> str:
    """A short human label for the panel's header."""
    return {
        Status.EMPTY: "not run yet",
        Status.WAITING: f"waiting on {cell.waiting_on}",
        Status.QUEUED: "queued",
        Status.RUNNING: "running",
        Status.DONE: "up to date",
        Status.STALE: "stale: its inputs changed since it ran",
        Status.SKIPPED: "skipped: run_if was false",
        Status.NOT_FOUND: "no data: the provider found nothing",
        Status.ERROR: f"blocked by {cell.blocked_by}" if cell.blocked_by else f"error: {cell.error_code}",
        Status.PINNED: "edited by hand (pinned)",
        Status.CONFIRMED: "edited by hand (pinned) and confirmed: exports may send it",
        Status.PAUSED: "paused: resume the step or campaign (column menu, or `runsheet resume`) to run it",
    }[cell.status]


def can_run_again(cell: Cell) -> bool:
    """Whether the panel offers Run Again (a cell that has run) rather than Click to Run (one that has not)."""
    return cell.status not in (Status.EMPTY, Status.WAITING, Status.QUEUED, Status.RUNNING, Status.PAUSED)


def why_not_runnable(cell: Cell, kind: str) -> str | None:
    """Why running this step cell by hand cannot help (the panel offers no run button then), or None if it can.
    A formula recomputes by itself; a blocked cell waits on its upstream's error; a skipped one's run_if is
    false for the row (running it again skips it again); a paused step runs nothing until resumed. Run Again on
    a hand-edited cell unpins it: that helps."""
    if kind == "formula" and not cell.hand_set:
        return "A formula: it recomputes by itself whenever its inputs change."
    if cell.blocked_by:
        return f"Blocked by **{cell.blocked_by}**: its value for this row is in error. Fix or retry it there."
    if cell.status is Status.SKIPPED:
        return "Skipped: the step's run_if is false for this row. It runs when the row's values make it true."
    if cell.status is Status.PAUSED:
        return "Paused: resume the step (Mode menu, or `runsheet resume`) to run it."
    return None


def running_now(cell: Cell) -> Cell:
    """The cell as it reads once a run has it (a run was just asked for it; its process has not marked it yet)."""
    return replace(cell, status=Status.RUNNING)


def as_markdown(value: Any) -> str:
    """A value as Markdown: text stays as written; JSON objects become bullet lists, nested lists indent."""
    if value is None:
        return ""
    if isinstance(value, str):
        parsed = _maybe_json(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, dict | list):
        return "\n".join(_markdown_lines(value, 0))
    return str(value)


def as_plain_text(value: Any) -> str:
    """A value as plain text: Markdown markers (headings, emphasis, link targets) removed."""
    text = as_markdown(value)
    text = re.sub(r"^#{1,6}\s*", "", text, flags=re.MULTILINE)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return text


def detail_of(cell: Cell) -> dict[str, Any]:
    """The cell's provenance JSON (model, rendered prompt, cache key...) as a dict; {} when there is none."""
    detail = cell.detail
    if detail is None:
        return {}
    if isinstance(detail, str):
        parsed = _maybe_json(detail)
        return parsed if isinstance(parsed, dict) else {"detail": detail}
    return detail if isinstance(detail, dict) else {"detail": detail}


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _markdown_lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list):
                lines.append(f"{pad}- **{key}**:")
                lines.extend(_markdown_lines(item, depth + 1))
            else:
                lines.append(f"{pad}- **{key}**: {item}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                lines.append(f"{pad}-")
                lines.extend(_markdown_lines(item, depth + 1))
            else:
                lines.append(f"{pad}- {item}")
    return lines
