"""`python`: a function `package.module:function` that takes a polars DataFrame of the inputs, returns a Series.

Only computing imports the module: a stored spec is read without it (engine/store/catalog.py) and a read's lazy
pull leaves python cells as stored (`Request.pull`), so status, show, export, query, the UI and the API work in a
process that cannot import it. Computing there fails the cell with an error naming the module and PYTHONPATH.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import polars as pl
from pydantic import field_validator

from engine.cells.base import Batch, StepKind, StepOptions
from engine.cells.outcomes import done, failed
from engine.types import ErrorCode

IMPORT_FIX = "put the module's folder on PYTHONPATH, or run runsheet in the folder that holds it"


class PythonOptions(StepOptions):
    function: str
    type: str = "VARCHAR"

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"'{value}' is not of the form package.module:function")
        return value


def resolve(reference: str) -> Callable[[pl.DataFrame], Any]:
    """Import `package.module:function`; raises LookupError naming what is missing."""
    module_name, _, attr = reference.partition(":")
    if os.getcwd() not in sys.path:  # step modules live beside the specs, in the folder runsheet runs in
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise LookupError(f"cannot import module '{module_name}' ({err})") from err
    function = getattr(module, attr, None)
    if not callable(function):
        raise LookupError(f"module '{module_name}' has no function '{attr}'")
    return function  # type: ignore[no-any-return]


class Python(StepKind):
    """Differs in: its values are computed in Python (`compute`), free; its value type is declared."""

    name: ClassVar[str] = "python"
    free: ClassVar[bool] = True
    options: ClassVar[type[StepOptions]] = PythonOptions

    def references(self, options: PythonOptions) -> set[str]:
        return set()  # a function's inputs cannot be inferred: the spec lists them in `inputs`

    def value_type(self, options: PythonOptions, input_types: dict[str, str]) -> str | None:
        return options.type

    def compute(self, options: PythonOptions, batch: Batch) -> pl.DataFrame:
        row_ids = batch.frame["row_id"]
        try:
            function = resolve(options.function)
        except LookupError as err:  # not importable in this process: say where the module must be, in one line
            fix = f": {IMPORT_FIX}" if isinstance(err.__cause__, ImportError) else ""
            return failed(row_ids, ErrorCode.PYTHON_ERROR, f"{options.function}: {err}{fix}")
        try:
            result = function(batch.frame.drop("row_id"))
            values = result if isinstance(result, pl.Series) else pl.Series(result)
            if values.len() != row_ids.len():
                raise ValueError(f"returned {values.len()} values for {row_ids.len()} rows")
        except Exception as err:  # a user's function failing is a cell outcome, not an engine error
            return failed(row_ids, ErrorCode.PYTHON_ERROR, f"{options.function}: {type(err).__name__}: {err}")
        return done(row_ids, values)
