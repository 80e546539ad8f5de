"""Consent in tests: a new paid step starts paused when a spec adds it (issue 13, item 11). Tests that run paid
steps apply their spec through `apply_active`, which resumes those steps as the person would, without running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import ApplyResult, CampaignSpec, Workspace


def apply_active(ws: Workspace, spec: CampaignSpec | str | Path, **options: Any) -> ApplyResult:
    """`ws.apply(spec, **options)`, then resume the new paid steps it paused (nothing runs here)."""
    result = ws.apply(spec, **options)
    for column in result.paused:
        ws.resume(result.campaign, column, run=False)
    return result
