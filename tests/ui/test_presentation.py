"""The UI's pure parts: what each cell state reads as, value formatting, run arguments, spec edits."""

from __future__ import annotations

import pytest

from engine import Cell, RunSelection, Status, parse_spec
from tests.ui.conftest import STATES_SPEC
from ui import cells, runs, specs


def cell(status: Status, value: object = None, **fields: object) -> Cell:
    return Cell(row_id=1, column="c", value=value, status=status, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "manual", "shown", "style"),
    [
        (cell(Status.EMPTY), True, "▶ Click to Run", "click"),
        (cell(Status.EMPTY), False, "… queued soon", "queued"),
        (cell(Status.WAITING, waiting_on="research"), True, "⏳ waiting on research", "waiting"),
        (cell(Status.QUEUED), False, "… queued", "queued"),
        (cell(Status.RUNNING), False, "⟳ running", "running"),
        (cell(Status.DONE, "hello"), True, "hello", "done"),
        (cell(Status.STALE, "old"), True, "◐ old  (stale)", "stale"),
        (cell(Status.SKIPPED), False, "— skipped", "muted"),
        (cell(Status.NOT_FOUND), False, "∅ no data", "muted"),
        (cell(Status.ERROR, error_code="timeout", error_hint="run again"), False, "⚠ timeout: run again", "error"),
        (cell(Status.PINNED, "mine"), False, "✎ mine", "pinned"),
        (cell(Status.CONFIRMED, "mine"), False, "✎ mine  (confirmed)", "pinned"),
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
