"""Issue 13, data in and out: an upsert touches only the rows its key names, an export comes back in unchanged,
and bad input is refused up front in one line that names the fix, with nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from engine import Campaign, ImportError_, Workspace
from tests.io.conftest import write
from tests.test_cli import cli, ok, ok_json

LEADS_SPEC = """
campaign: leads
columns:
  - {name: linkedin, kind: input}
  - {name: name, kind: input}
  - {name: company, kind: input}
  - {name: shout, kind: formula, expression: "upper(company)"}
"""
FOUNDERS = (
    "linkedin,name,company\n"
    "in/acme,Ann,Acme\n"
    "in/acme,Bob,Acme\n"
    "in/acme,Cy,Acme\n"
    "in/acme,Di,Acme\n"
    "in/globex,Eve,Globex\n"
)


@pytest.fixture
def leads(ws: Workspace, tmp_path: Path) -> Campaign:
    """Five founders; four of them share one company LinkedIn URL."""
    ws.apply(LEADS_SPEC)
    campaign = ws.campaign("leads")
    campaign.import_file(write(tmp_path, "founders.csv", FOUNDERS))
    return campaign


def rows_of(ws: Workspace, campaign: str) -> list[tuple[object, ...]]:
    return ws.query(f"SELECT * EXCLUDE (row_id) FROM {campaign} ORDER BY row_id").rows()


def cli_workspace(tmp_path: Path, spec: str, data: str) -> Path:
    """A workspace made through the CLI: `init`, `apply SPEC`, `import DATA`."""
    folder = tmp_path / "cli-ws"
    ok(folder, "init", str(folder))
    ok(folder, "apply", str(write(tmp_path, "spec.yaml", spec)))
    ok(folder, "import", str(write(tmp_path, "data.csv", data)))
    return folder


# ---- 1. an upsert never touches a row it was not meant for -------------------------------------------------


def test_upsert_refuses_a_key_repeated_in_the_campaign(leads: Campaign, ws: Workspace, tmp_path: Path) -> None:
    before = rows_of(ws, "leads")
    company = write(tmp_path, "company.csv", "linkedin,name,company\nin/acme,Acme Inc,Acme Inc\n")
    with pytest.raises(ImportError_) as refused:
        leads.import_file(company, key="linkedin")
    assert refused.value.message == (
        "1 row(s) of company.csv cannot be imported: key 'linkedin' value 'in/acme' on line 2 is held by "
        "4 rows of campaign 'leads' (rows 1, 2, 3, 4)"
    )
    assert "dedupe the campaign, or pick a key that is unique in it, such as row_id" in refused.value.hint
    assert rows_of(ws, "leads") == before


def test_upsert_rejects_records_whose_key_the_campaign_repeats_and_takes_the_rest(
    leads: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    update = write(
        tmp_path,
        "update.csv",
        "linkedin,name,company\nin/acme,Acme Inc,Acme Inc\nin/globex,Eve,Globex Corp\nin/initech,Peter,Initech\n",
    )
    rejects = tmp_path / "rejects.csv"
    report = leads.import_file(update, key="linkedin", rejects=rejects)
    assert (report.updated, report.unchanged, list(report.inserted), report.rejected) == (1, 0, [6], 1)
    assert [r[:3] for r in rows_of(ws, "leads")] == [
        ("in/acme", "Ann", "Acme"),
        ("in/acme", "Bob", "Acme"),
        ("in/acme", "Cy", "Acme"),
        ("in/acme", "Di", "Acme"),
        ("in/globex", "Eve", "Globex Corp"),
        ("in/initech", "Peter", "Initech"),
    ]
    with rejects.open(encoding="utf-8", newline="") as handle:
        found = list(csv.DictReader(handle))
    assert [(r["line"], r["error"]) for r in found] == [
        ("2", "key 'linkedin' value 'in/acme' on line 2 is held by 4 rows of campaign 'leads' (rows 1, 2, 3, 4)")
    ]
    assert json.loads(found[0]["record"]) == {"linkedin": "in/acme", "name": "Acme Inc", "company": "Acme Inc"}


def test_upsert_by_row_id_still_updates_rows_that_share_another_key(
    leads: Campaign, ws: Workspace, tmp_path: Path
) -> None:
    report = leads.import_file(write(tmp_path, "ids.csv", "row_id,name\n2,Bobby\n4,Dina\n"), key="row_id")
    assert (report.updated, report.unchanged, len(report.inserted)) == (2, 0, 0)
    assert [r[1] for r in rows_of(ws, "leads")] == ["Ann", "Bobby", "Cy", "Dina", "Eve"]


def test_cli_upsert_refuses_a_key_repeated_in_the_campaign(tmp_path: Path) -> None:
    folder = cli_workspace(tmp_path, LEADS_SPEC, FOUNDERS)
    company = write(tmp_path, "company.csv", "linkedin,company\nin/acme,Acme Inc\n")
    result = cli(folder, "import", str(company), "--key", "linkedin")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "error: 1 row(s) of company.csv cannot be imported: key 'linkedin' value 'in/acme' on line 2 is held "
        "by 4 rows of campaign 'leads' (rows 1, 2, 3, 4) (dedupe the campaign"
    )
    assert result.stderr.count("\n") == 1
    shown = ok_json(folder, "export", "-o", str(tmp_path / "after.csv"))
    assert shown["rows"] == 5
    assert "Acme Inc" not in (tmp_path / "after.csv").read_text(encoding="utf-8")
