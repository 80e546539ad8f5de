"""How a file's headers become campaign columns: exact or case-insensitive matches first, otherwise a plain
name.

Spec column names are plain identifiers (letters, digits, underscores), so a header such as `First Name` or
`x"; DROP TABLE cells; --` is mapped to one (`first_name`, `x_drop_table_cells`) and never reaches SQL as
text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.errors import ImportError_
from engine.spec import SHADOW_PREFIXES, CampaignSpec, reserved_name

ROW_ID = "row_id"
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")
MAX_NAME = 63


def plain_name(header: str) -> str:
    """A spec-valid column name for `header`: lower case, runs of other characters become one underscore."""
    name = _NOT_NAME.sub("_", header.strip()).strip("_").lower()
    if not name:
        name = "column"
    if not (name[0].isalpha() or name[0] == "_"):
        name = "c_" + name
    if reserved_name(name):  # the engine's own names (engine/spec.py): `key` becomes `key_`
        name = name + "_"
    return name[:MAX_NAME]


@dataclass(frozen=True)
class ColumnMap:
    """Which file column feeds which campaign column. `new` lists the columns the import adds to the
    campaign."""

    columns: dict[str, str]  # file header -> campaign column (row_id maps to itself)
    skipped: tuple[str, ...]
    new: tuple[str, ...]


def check_headers(headers: Sequence[str], where: str) -> None:
    """Refuse empty and duplicate headers, naming their positions (1-based)."""
    seen: dict[str, int] = {}
    for position, header in enumerate(headers, start=1):
        if not header.strip():
            raise ImportError_(
                f"column {position} of {where} has an empty header",
                hint="give every column a name in the header row, or remove the column",
            )
        if header in seen:
            raise ImportError_(
                f"{where} has two columns named '{header}' (columns {seen[header]} and {position})",
                hint="rename one of them in the header row",
            )
        seen[header] = position


def map_columns(
    headers: Sequence[str], spec: CampaignSpec, *, skip: Iterable[str] = (), add_columns: bool = True
) -> ColumnMap:
    """Map each header to a column: the same name, else a case-insensitive match, else its plain name (a new
    input column). Step columns, and names two headers share, are refused with the fix."""
    skipped = set(skip)
    unknown_skips = skipped - set(headers)
    if unknown_skips:
        raise ImportError_(
            f"--skip names {', '.join(sorted(unknown_skips))}, which the file does not have",
            hint=f"the file's columns are: {', '.join(headers)}",
        )
    by_lower: dict[str, str] = {}
    for name in spec.names:
        by_lower.setdefault(name.lower(), name)
    columns: dict[str, str] = {}
    steps: list[str] = []
    for header in headers:
        if header in skipped:
            continue
        if header == ROW_ID:
            columns[header] = ROW_ID
            continue
        target = _target(header, spec, by_lower)
        if target in spec.names and not spec.column(target).is_input:
            steps.append(header)
        columns[header] = target
    if steps:
        raise ImportError_(
            f"column(s) {', '.join(steps)} are step columns of campaign '{spec.name}': a file only brings inputs",
            hint="leave them out with " + " ".join(f"--skip {s}" for s in steps),
        )
    _refuse_shared_targets(columns)
    new = tuple(c for c in columns.values() if c != ROW_ID and c not in spec.names)
    if new and not add_columns:
        raise ImportError_(
            f"column(s) {', '.join(new)} are not input columns of campaign '{spec.name}'",
            hint="add them to the spec as `kind: input`, or remove them from the data",
        )
    return ColumnMap(columns=columns, skipped=tuple(h for h in headers if h in skipped), new=new)


def _target(header: str, spec: CampaignSpec, by_lower: Mapping[str, str]) -> str:
    """The column `header` feeds: its namesake, else the column its name or plain name matches in any case
    (DuckDB's names are: `EMAIL` and ` Email.` feed `email`, never a second column beside it), else a new one."""
    if header in spec.names:
        return header
    plain = plain_name(header)
    return by_lower.get(header.lower()) or by_lower.get(plain.lower()) or _new_name(plain, spec)


def _new_name(plain: str, spec: CampaignSpec) -> str:
    """The name of a new column: the header's plain name, moved aside (`s_score_`) where a run would read it as
    the state of a step (s_<step>, r_<step>: the spec refuses such a name)."""
    steps = {c.name.lower() for c in spec.columns if not c.is_input}
    if any(plain.startswith(prefix) and plain.removeprefix(prefix) in steps for prefix in SHADOW_PREFIXES):
        return plain + "_"
    return plain


def _refuse_shared_targets(columns: Mapping[str, str]) -> None:
    owners: dict[str, str] = {}
    for header, target in columns.items():
        if target in owners:
            raise ImportError_(
                f"headers '{owners[target]}' and '{header}' both map to column '{target}'",
                hint=f"rename one of them, or leave one out with --skip '{header}'",
            )
        owners[target] = header
