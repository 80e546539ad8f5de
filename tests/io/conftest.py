"""Fixtures for import, export and query: a small campaign with a record id, formula, paid-like and manual
steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Campaign, Workspace

PEOPLE_SPEC = """
campaign: people
columns:
  - {name: crm_id, kind: input}
  - {name: email, kind: input}
  - {name: first, kind: input}
  - {name: employees, kind: input, type: BIGINT}
  - {name: domain, kind: formula, expression: "split_part(email, '@', 2)"}
  - {name: greet, kind: formula, expression: "'Hi ' || first"}
  - {name: research, kind: probe, inputs: [domain]}
  - {name: opener, kind: probe, inputs: [greet, research], run: manual}
"""


def people_csv(rows: int, *, changed: dict[int, str] | None = None, start: int = 1) -> str:
    """A CSV of `rows` people (crm_id c<i>); `changed` gives some rows another first name."""
    changed = changed or {}
    lines = ["crm_id,email,first,employees"]
    for i in range(start, start + rows):
        lines.append(f"c{i},p{i}@firm{i % 7}.com,{changed.get(i, f'First{i}')},{i * 3}")
    return "\n".join(lines) + "\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def people(ws: Workspace) -> Campaign:
    ws.apply(PEOPLE_SPEC)
    return ws.campaign("people")
