"""Spec changes the UI makes (switch auto/manual, pause, edit a step, add a column), as pure edits of the
campaign's YAML source. The result goes through `Workspace.apply`, so the engine validates it as a whole and
marks exactly the changed columns and their downstream stale.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from engine import CampaignSpec

KIND_TEMPLATES: dict[str, str] = {
    "formula": 'expression: "lower(email)"\n',
    "python": "function: campaigns.outbound_steps:seniority\ninputs: [title]\n",
    "ai": "prompt: |\n  Write a one-line opener for {{ first_name }} at {{ company }}.\nmodel: offline\nrun: manual\n",
    "http": 'method: GET\nurl: "https://example.com/api?domain={{ email_domain }}"\nrun: manual\n',
    "export": 'url: "http://127.0.0.1:9999/hook"\ninputs: [email]\nrun: manual\n',
    "probe": "inputs: [email]\nrun: manual\n",
    "input": "type: VARCHAR\n",
}
# Options the step editor shows as their own fields, in this order, when the column's kind has them.
EDITABLE_FIELDS = ("expression", "prompt", "function", "model", "tier", "run_if", "required")


def source_of(spec: CampaignSpec) -> dict[str, Any]:
    return copy.deepcopy(spec.source)


def column_entry(spec: CampaignSpec, name: str) -> dict[str, Any]:
    for entry in spec.source.get("columns", []):
        if isinstance(entry, dict) and entry.get("name") == name:
            return copy.deepcopy(entry)
    raise KeyError(name)


def with_column(spec: CampaignSpec, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The spec source with `changes` merged into column `name`; a None value removes that option."""
    source = source_of(spec)
    for entry in source["columns"]:
        if entry.get("name") == name:
            for key, value in changes.items():
                if value is None or value == [] or value == "":
                    entry.pop(key, None)
                else:
                    entry[key] = value
            return source
    raise KeyError(name)


def replace_column(spec: CampaignSpec, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    source = source_of(spec)
    source["columns"] = [entry if c.get("name") == name else c for c in source["columns"]]
    return source


def with_new_column(spec: CampaignSpec, entry: dict[str, Any], after: str | None = None) -> dict[str, Any]:
    """The spec source with a new column inserted after `after` (at the end when None)."""
    source = source_of(spec)
    columns = source["columns"]
    position = len(columns)
    if after is not None:
        position = next((i + 1 for i, c in enumerate(columns) if c.get("name") == after), position)
    columns.insert(position, entry)
    return source


def parse_options(text: str) -> dict[str, Any]:
    """Column options typed as YAML; raises ValueError with a readable reason."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ValueError(f"the options are not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ValueError("write the options as 'key: value' lines")
    return data


def dump(source: dict[str, Any]) -> str:
    return yaml.safe_dump(source, sort_keys=False, allow_unicode=True, width=110)


def dependency_dot(spec: CampaignSpec, highlight: str | None = None) -> str:
    """The column DAG as Graphviz DOT: inputs as boxes, steps coloured by run mode, `highlight` in bold."""
    lines = ["digraph G {", "rankdir=LR;", 'node [fontname="sans-serif", fontsize=11, style=filled];']
    for column in spec.columns:
        if column.is_input:
            attrs = 'shape=box, fillcolor="#f3f4f6"'
        else:
            fill = "#dbeafe" if column.run == "auto" else "#fde68a"
            attrs = f'shape=ellipse, fillcolor="{fill}"'
        if column.name == highlight:
            attrs += ", penwidth=3"
        label = column.name if column.is_input else f"{column.name}\\n({column.kind}, {column.run})"
        lines.append(f'"{column.name}" [label="{label}", {attrs}];')
    for column in spec.columns:
        for dep in column.deps:
            lines.append(f'"{dep}" -> "{column.name}";')
    lines.append("}")
    return "\n".join(lines)
