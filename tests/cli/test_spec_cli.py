"""`runsheet spec history`, `runsheet spec export` and `runsheet apply` refusing a file that would undo changes
made elsewhere (issue 15: spec history), through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from engine import Workspace, parse_spec
from tests.cli.test_cli import cli, ok
from tests.conftest import BASIC_SPEC, snapshot


def setup_workspace(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "ws"
    ok(folder, "init", str(folder))
    spec = tmp_path / "t.yaml"
    spec.write_text(BASIC_SPEC)
    ok(folder, "apply", str(spec))
    return folder, spec


def edit_in_ui(folder: Path) -> None:
    """What the UI's step editor does: the live spec with one option changed, applied as a UI edit."""
    ws = Workspace(folder, actor="alice")
    source = parse_spec(ws.spec_yaml("t")).source
    source["columns"][4]["expression"] = "'HELLO ' || first"
    ws.apply(yaml.safe_dump(source, sort_keys=False), actor="alice", origin="ui")
    ws.release()


def test_spec_history_lists_each_change_with_its_diff(tmp_path: Path) -> None:
    folder, spec = setup_workspace(tmp_path)
    edit_in_ui(folder)
    shown = ok(folder, "spec", "history", "-c", "t").stdout
    lines = shown.splitlines()
    assert lines[0].startswith("#2 ") and lines[0].endswith("by alice via ui")
    assert "+  expression: '''HELLO '' || first'" in shown
    assert any(line.startswith("#1 ") and line.endswith("by tester via file") for line in lines)
    listed = json.loads(click.unstyle(ok(folder, "spec", "history", "-c", "t", "--json").stdout))
    assert [(c["change_id"], c["origin"], c["actor"]) for c in listed] == [(2, "ui", "alice"), (1, "file", "tester")]
    brief = ok(folder, "spec", "history", "-c", "t", "--no-diff", "-n", "1").stdout
    assert brief.splitlines() == [lines[0]]


def test_spec_export_applies_back_unchanged(tmp_path: Path) -> None:
    folder, _ = setup_workspace(tmp_path)
    edit_in_ui(folder)
    exported = tmp_path / "live.yaml"
    assert "wrote the spec of campaign t" in ok(folder, "spec", "export", "-c", "t", "-o", str(exported)).stdout
    assert "HELLO" in exported.read_text()
    assert ok(folder, "spec", "export", "-c", "t").stdout == exported.read_text()
    applied = ok(folder, "apply", str(exported)).stdout
    assert applied.startswith("campaign t unchanged")
    assert len(Workspace(folder).spec_history("t")) == 2  # the round trip recorded nothing


def test_apply_refuses_a_file_that_would_undo_a_ui_edit_unless_forced(tmp_path: Path) -> None:
    folder, spec = setup_workspace(tmp_path)
    edit_in_ui(folder)
    before = snapshot(Workspace(folder))
    refused = cli(folder, "apply", str(spec))
    assert refused.exit_code == 1
    assert "-  expression: '''HELLO '' || first'" in refused.stdout
    assert "+  expression: '''Hi '' || first || '' at '' || domain'" in refused.stdout
    assert refused.stderr.startswith("error: applying this file to campaign 't' would undo changes")
    assert "column greet" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert snapshot(Workspace(folder)) == before  # nothing changed

    dry = ok(folder, "apply", str(spec), "--dry-run").stdout
    assert "refused" in dry and "HELLO" in dry

    forced = ok(folder, "apply", str(spec), "--force").stdout
    assert forced.startswith("campaign t updated") and "changed: greet" in forced
    assert "HELLO" not in ok(folder, "spec", "export", "-c", "t").stdout
    assert ok(folder, "apply", str(spec)).stdout.startswith("campaign t unchanged")


def test_spec_commands_name_the_fix_for_an_unknown_campaign(tmp_path: Path) -> None:
    folder, _ = setup_workspace(tmp_path)
    for command in (("spec", "history", "-c", "nope"), ("spec", "export", "-c", "nope")):
        result = cli(folder, *command)
        assert result.exit_code == 1 and "no campaign named 'nope'" in result.stderr
