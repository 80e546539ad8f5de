"""Runsheet's own reference for the step kinds the builder writes, generated from each kind's options model
(field names, types, defaults, descriptions) and its module's docstring, so it cannot drift from the code."""

from __future__ import annotations

import inspect
import sys
from functools import cache

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from engine.cells import kind_named
from engine.cells.base import StepOptions

BUILDABLE = ("ai", "formula", "python", "http")  # what a request can become (export sends: built by hand)
SHARED = set(StepOptions.model_fields) - {"run", "enabled"}  # `run` and `enabled` belong to a column, not a draft


@cache
def kind_reference(kind: str) -> str:
    """One kind's reference: what it is (its module's docstring, first paragraph) and each option it takes."""
    step = kind_named(kind)
    module = sys.modules[type(step).__module__]
    about = inspect.cleandoc(module.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"## {kind}", about, "options:"]
    for name, info in step.options.model_fields.items():
        if name in StepOptions.model_fields and name not in SHARED:
            continue
        lines.append(f"- {name}: {_describe(info)}")
    return "\n".join(lines)


def reference(kinds: tuple[str, ...] = BUILDABLE) -> str:
    """The reference of every kind the builder writes."""
    return "\n\n".join(kind_reference(k) for k in kinds)


def _describe(info: FieldInfo) -> str:
    annotation = getattr(info.annotation, "__name__", None) or str(info.annotation).replace("typing.", "")
    text = annotation
    if info.is_required():
        text += ", required"
    elif info.default is not PydanticUndefined and info.default not in (None, (), {}):
        text += f", default {info.default!r}"
    if info.description:
        text += f": {info.description}"
    return text
