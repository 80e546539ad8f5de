"""The UI's pure parts: what each cell state reads as, value formatting, run arguments, spec edits."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from engine import Cell, RunSelection, Status, parse_spec
from tests.ui.conftest import STATES_SPEC
from ui import cells, grid, runs, specs


def cell(status: Status, value: object = None, **fields: object) -> Cell:
    return Cell(row_id=1, column="c", value=value, status=status, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "manual", "shown", "style"),
    [
        (cell(Status.EMPTY), True, "▶ Click to Run", "click"),
        (cell(Status.EMPTY), False, "… queued soon", "queued"),
        (cell(Status.WAITING, waiting_on="research"), True, "◷ waiting on research", "waiting"),
        (cell(Status.QUEUED), False, "… queued", "queued"),
        (cell(Status.RUNNING), False, "⟳ running", "running"),
        (cell(Status.DONE, "hello"), True, "hello", "done"),
        (cell(Status.STALE, "old"), True, "◐ old  (stale)", "stale"),
        (cell(Status.SKIPPED), False, "— skipped", "muted"),
        (cell(Status.NOT_FOUND), False, "∅ no data", "muted"),
        (cell(Status.ERROR, error_code="timeout", error_hint="run again"), False, "⚠ timeout: run again", "error"),
        (cell(Status.PINNED, "mine"), False, "✎ mine", "pinned"),
        (cell(Status.CONFIRMED, "mine"), False, "✎ mine  (confirmed)", "pinned"),
        (cell(Status.PAUSED), True, "‖ paused: resume to run it", "muted"),
        (cell(Status.ERROR, error_code="upstream_error", waiting_on="fit"), False, "⊘ blocked by fit", "waiting"),
    ],
)
def test_each_state_reads_as_design_says(given: Cell, manual: bool, shown: str, style: str) -> None:
    assert cells.grid_text(given, manual) == shown
    assert cells.style_key(given, manual) == style


def test_long_values_are_one_shortened_line() -> None:
    text = cells.short("a  b\nc " + "x" * 200)
    assert text.startswith("a b c x") and len(text) == cells.MAX_GRID_TEXT and text.endswith("…")


def test_json_values_become_markdown_lists_and_plain_text() -> None:
    value = '{"pain_points": ["slow onboarding", "churn"], "fit": {"score": 8}}'
    assert cells.as_markdown(value) == (
        "- **pain_points**:\n  - slow onboarding\n  - churn\n- **fit**:\n  - **score**: 8"
    )
    assert cells.as_plain_text("## Title\nSee [docs](https://x.io) **now**") == "Title\nSee docs (https://x.io) now"


def test_run_again_is_offered_once_a_cell_has_run() -> None:
    assert [s.value for s in Status if cells.can_run_again(cell(s))] == [
        "done",
        "stale",
        "skipped",
        "not_found",
        "error",
        "pinned",
        "confirmed",
    ]


def test_every_state_has_a_panel_label() -> None:
    labels = {s: cells.status_label(cell(s, waiting_on="x", error_code="timeout")) for s in Status}
    assert all(labels.values()) and len(set(labels.values())) == len(Status)


def test_run_request_becomes_cli_arguments() -> None:
    request = runs.RunRequest("t", ("opener",), (1, 2, 3, 7, 9, 10), force=True)
    assert request.cli_args() == ["--campaign", "t", "--column", "opener", "--rows", "1-3,7,9-10", "--force"]
    assert request.describe() == "opener on 6 row(s) (Run Again)"
    assert runs.RunRequest("t", limit=5, only_stale=True).cli_args() == ["--campaign", "t", "--stale", "--limit", "5"]


def test_run_request_is_the_engines_run_selection() -> None:
    request = runs.RunRequest("t", ("opener",), (10, 9, 7, 3, 2, 1), force=True)
    assert request.selection == RunSelection(("opener",), (1, 2, 3, 7, 9, 10), force=True)
    assert request.selection.to_json()["rows"] == request.cli_args()[request.cli_args().index("--rows") + 1]
    assert runs.RunRequest("t", limit=5, only_empty=True).selection == RunSelection(only_empty=True, limit=5)


def test_a_retry_of_failed_cells_is_the_cli_run_errors() -> None:
    request = runs.RunRequest("t", ("fit",), error_code="provider_error")
    assert request.cli_args() == ["--campaign", "t", "--column", "fit", "--errors", "--code", "provider_error"]
    assert request.selection == RunSelection(("fit",), errors=True, error_code="provider_error")
    assert runs.RunRequest("t", errors=True).describe() == "every auto-run step on all rows (failed cells only)"


def test_progress_summary() -> None:
    assert runs.progress({"total": 40, "done": 10, "credits": 30.0, "cache_hits": 2}) == (
        0.25,
        "10/40 cells · 30 credits · 2 cached",
    )
    assert runs.progress({"total": 0, "done": 0}) == (0.0, "planning…")


def test_spec_edits_validate_as_a_whole() -> None:
    spec = parse_spec(STATES_SPEC)
    manual = parse_spec(specs.with_column(spec, "research", {"run": "manual"}))
    assert manual.column("research").run == "manual"
    added = parse_spec(
        specs.with_new_column(spec, {"name": "shout", "kind": "formula", "expression": "upper(first)"}, after="first")
    )
    assert added.names[2] == "shout" and added.column("shout").deps == ("first",)
    dot = specs.dependency_dot(spec, "opener")
    assert '"research" -> "opener";' in dot and "penwidth=3" in dot
    with pytest.raises(ValueError, match="not valid YAML"):
        specs.parse_options("expression: [unclosed")


# ---- glyphs Debian's stock fonts draw; null numbers drawn blank ----------------------------------------------

EVERY_STATE = [
    cell(Status.EMPTY),
    cell(Status.WAITING, waiting_on="x"),
    cell(Status.QUEUED),
    cell(Status.RUNNING),
    cell(Status.STALE, "v"),
    cell(Status.SKIPPED),
    cell(Status.NOT_FOUND),
    cell(Status.PAUSED),
    cell(Status.ERROR, error_code="timeout"),
    cell(Status.ERROR, error_code="upstream_error", waiting_on="fit"),
    cell(Status.PINNED, "v"),
    cell(Status.CONFIRMED, "v"),
]


def dejavu_sans_has(char: str) -> bool:
    found = subprocess.run(
        ["fc-list", f":family=DejaVu Sans:charset={ord(char):x}", "family"], capture_output=True, text=True, check=True
    )
    return bool(found.stdout.strip())


@pytest.mark.skipif(shutil.which("fc-list") is None or not dejavu_sans_has("a"), reason="needs fontconfig, DejaVu Sans")
def test_every_glyph_the_grid_draws_is_in_debians_stock_font() -> None:
    """Chromium on Debian draws a glyph missing from its fonts as an empty box (the hourglass ⏳ did)."""
    texts = [cells.grid_text(given, manual) for given in EVERY_STATE for manual in (True, False)]
    texts += list(cells.KIND_ICONS.values()) + [cells.CLICK_TO_RUN]
    glyphs = sorted({char for text in texts for char in text if ord(char) > 0x7F})
    assert "◷" in glyphs and "⊘" in glyphs
    assert [char for char in glyphs if not dejavu_sans_has(char)] == []


def test_null_numbers_are_blank_and_whole_numbers_plain() -> None:
    assert grid.number_text(None) == "" and grid.number_text(float("nan")) == ""
    assert grid.number_text(40.0) == "40" and grid.number_text(1.5) == "1.5" and grid.number_text(900) == "900"


def test_grid_layout_puts_steps_first_and_keeps_frozen_inputs_when_collapsed() -> None:
    from engine import ColumnLayout
    from ui import layout

    spec = parse_spec(STATES_SPEC)
    inputs = ["email", "first", "employees"]
    steps = [n for n in spec.names if n not in inputs]
    assert layout.arrange(spec, ColumnLayout()).columns == steps + inputs
    collapsed = ColumnLayout(frozen=("first",), inputs_collapsed=True, hidden=("greet",))
    shown = layout.arrange(spec, collapsed)
    assert shown.columns == [n for n in steps if n != "greet"] + ["first"] and shown.frozen == {"first"}
    assert layout.arrange(spec, collapsed, editing=True).columns == inputs + [n for n in steps if n != "greet"]
    moved = layout.moved(spec, ColumnLayout(), "email", -1)
    assert layout.arrange(spec, moved).columns == [*steps[:-1], "email", steps[-1], "first", "employees"]
    assert layout.moved(spec, moved, "employees", 5).order == moved.order  # already last: stays
