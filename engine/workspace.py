"""The workspace: a folder holding `runsheet.duckdb` (records, cells, runs, activity) and, later, the result cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.campaign import Campaign
from engine.errors import NotFoundError
from engine.executor import RunReport
from engine.graph import Request
from engine.spec import CampaignSpec, load_spec, parse_spec
from engine.store.catalog import SpecChanges, campaign_names, load_campaign, store_spec
from engine.store.cells import Scope
from engine.store.database import Database
from engine.store.runs import run_transaction
from engine.store.schema import create_metadata

DB_FILE = "runsheet.duckdb"


@dataclass(frozen=True)
class ApplyResult:
    """What applying a spec changed, and the recompute it caused."""

    campaign: str
    changes: SpecChanges
    report: RunReport | None


class Workspace:
    """Owns one workspace folder: opens short transactions on its database and hands out campaigns."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        if not (self.path / DB_FILE).exists():
            raise NotFoundError(
                f"no workspace at {self.path}", hint=f"create one with `runsheet init {self.path}`"
            )
        self.db = Database(self.path / DB_FILE, busy_timeout=busy_timeout)

    @classmethod
    def init(cls, path: str | Path, *, busy_timeout: float = 30.0) -> Workspace:
        """Create the workspace folder and its tables; an existing workspace is kept as it is."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        database = Database(folder / DB_FILE, busy_timeout=busy_timeout)
        with database.transaction() as con:
            create_metadata(con)
        return cls(folder, busy_timeout=busy_timeout)

    def campaigns(self) -> list[str]:
        with self.db.transaction() as con:
            return campaign_names(con)

    def campaign(self, name: str, *, actor: str = "api", trigger: str = "api") -> Campaign:
        """The campaign called `name`; raises NotFoundError if no spec of that name was applied."""
        with self.db.transaction() as con:
            load_campaign(con, name)
        return Campaign(self.db, name, actor=actor, trigger=trigger)

    def apply(self, spec: CampaignSpec | str | Path, *, actor: str = "api") -> ApplyResult:
        """Create or update a campaign from a spec (a CampaignSpec, a YAML file path, or YAML text).

        The spec is validated as a whole before anything is stored. Changed steps and their downstream become
        stale; free auto-run steps (formula, python) recompute at once, paid ones wait for a run.
        """
        if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
            spec = load_spec(spec)
        elif isinstance(spec, str):
            spec = parse_spec(spec)
        with self.db.transaction() as con:
            changes = store_spec(con, spec)
            report = None
            if changes.changed or changes.added:
                campaign = load_campaign(con, spec.name)
                steps = [c for c in changes.changed + changes.added if c in spec.graph.steps()]
                retyped_inputs = [c for c in changes.changed if spec.column(c).is_input]
                # a retyped input changes the values its downstream steps read
                request = Request.spec_change([*steps, *spec.graph.downstream(retyped_inputs)])
                report = run_transaction(
                    con, campaign, request, Scope.all(), actor=actor, trigger="apply",
                    describe={"apply": spec.name, "changed": changes.changed, "added": changes.added},
                )
        return ApplyResult(spec.name, changes, report)

    def activity(self, limit: int = 100) -> list[dict[str, object]]:
        """The most recent activity rows, newest first."""
        with self.db.transaction() as con:
            cursor = con.execute(
                "SELECT a.*, c.name AS campaign FROM activity a LEFT JOIN campaigns c USING (campaign_id) "
                "ORDER BY \"at\" DESC LIMIT ?",
                [limit],
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def runs(self, limit: int = 20) -> list[dict[str, object]]:
        """The most recent runs, newest first."""
        with self.db.transaction() as con:
            cursor = con.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT ?", [limit])
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            for field in ("request", "counts"):
                if isinstance(row.get(field), str):
                    row[field] = json.loads(row[field])  # type: ignore[arg-type]
        return rows
