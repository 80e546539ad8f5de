"""`python`: a function `package.module:function` that takes a polars DataFrame of the inputs, returns a Series.

Only computing imports the module: a stored spec is read without it (engine/store/catalog.py) and a read's lazy
pull leaves python cells as stored (`Request.pull`), so status, show, export, query, the UI and the API work in a
process that cannot import it. Computing there fails the cell with an error naming the module and PYTHONPATH.

A step that declares `rowwise: true` says each row's value depends on that row alone, so its batch may be cut
into shards computed elsewhere (`Batch.map_rows`: on Ray, engine/runner/ray_backend.py) and put back in row
order; a step that is not row-wise (a rank over the whole column) is always one call over its batch. What travels
is a `RowFunction`: the reference, the folder the run imported the module from, and the digest of the module's
source as the run imported it (a worker holding another copy gives no values: the run computes the batch itself).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import polars as pl
from pydantic import Field, field_validator

from engine.cells.base import Batch, OptionValueError, StepKind, StepOptions
from engine.cells.outcomes import done, failed
from engine.types import ErrorCode

IMPORT_FIX = "put the module's folder on PYTHONPATH, or run runsheet in the folder that holds it"
ROWWISE_FIX = (
    "write `rowwise: true` when the function computes each row from that row's inputs alone (it may then be "
    "computed in shards on Ray), or leave `rowwise` out"
)
# The digest of each module's source as this process imported it through `resolve` (what a shard's worker must
# also have imported to compute the run's function).
_SOURCES: dict[str, str] = {}


class PythonOptions(StepOptions):
    unversioned: ClassVar[frozenset[str]] = frozenset({"rowwise"})  # where values are computed, not what they are

    function: str
    type: str = "VARCHAR"
    rowwise: bool = Field(default=False, description="each row's value depends on that row alone: may be sharded")

    @field_validator("function")
    @classmethod
    def _module_colon_function(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"'{value}' is not of the form package.module:function")
        return value

    @field_validator("rowwise", mode="before")
    @classmethod
    def _true_or_false(cls, value: object) -> bool:
        if not isinstance(value, bool):  # "no" or 0 read as a truth value would shard a step that is not row-wise
            raise OptionValueError(f"{value!r} is not true or false", hint=ROWWISE_FIX)
        return value


def source_digest(module: ModuleType) -> str:
    """The digest of a module's source file; "" when it has none (built in, a namespace package)."""
    file = getattr(module, "__file__", None)
    if not file or not Path(file).is_file():
        return ""
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()


def resolve(reference: str, source: str | None = None) -> Callable[[pl.DataFrame], Any]:
    """Import `package.module:function`; raises LookupError naming what is missing. With `source` (a digest), the
    module must be that source: a copy this process imported earlier is imported again, another is refused."""
    module_name, _, attr = reference.partition(":")
    if os.getcwd() not in sys.path:  # step modules live beside the specs, in the folder runsheet runs in
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise LookupError(f"cannot import module '{module_name}' ({err})") from err
    if module_name not in _SOURCES:
        _SOURCES[module_name] = source_digest(module)
    if source is not None and _SOURCES[module_name] != source:
        module = importlib.reload(module)
        _SOURCES[module_name] = source_digest(module)
        if _SOURCES[module_name] != source:
            raise LookupError(f"module '{module_name}' here differs from the run's")
    function = getattr(module, attr, None)
    if not callable(function):
        raise LookupError(f"module '{module_name}' has no function '{attr}'")
    return function  # type: ignore[no-any-return]


def values_of(function: Callable[[pl.DataFrame], Any], frame: pl.DataFrame) -> pl.Series:
    """`function`'s values over the rows of `frame`; raises what it raises, or when it gives another number."""
    result = function(frame)
    values = result if isinstance(result, pl.Series) else pl.Series(result)
    if values.len() != frame.height:
        raise ValueError(f"returned {values.len()} values for {frame.height} rows")
    return values


@dataclass(frozen=True)
class RowFunction:
    """A row-wise step's function as a worker computes it over a shard of the batch: imported from the folder the
    run imported its module from (`root`), from the same source (`source`, its digest) or not at all."""

    reference: str
    root: str
    source: str

    @classmethod
    def of(cls, reference: str) -> RowFunction | None:
        """The function `resolve` imported in this process, to ship; None when its module has no source file (a
        worker's copy could not be checked against it)."""
        module_name = reference.partition(":")[0]
        module, source = sys.modules.get(module_name), _SOURCES.get(module_name)
        if module is None or not source:
            return None
        file = Path(str(module.__file__))
        depth = module_name.count(".") + (file.name == "__init__.py")
        return cls(reference, str(file.parents[depth]), source)

    def __call__(self, frame: pl.DataFrame) -> pl.Series | None:
        if self.root not in sys.path:
            sys.path.insert(0, self.root)
        try:
            return values_of(resolve(self.reference, self.source), frame)
        except Exception:  # no values: the run computes the whole batch, and its cells fail as they do locally
            return None


class Python(StepKind):
    """Differs in: its values are computed in Python (`compute`), free; its value type is declared."""

    name: ClassVar[str] = "python"
    free: ClassVar[bool] = True
    options: ClassVar[type[StepOptions]] = PythonOptions

    def references(self, options: PythonOptions) -> set[str]:
        return set()  # a function's inputs cannot be inferred: the spec lists them in `inputs`

    def value_type(self, options: PythonOptions, input_types: dict[str, str]) -> str | None:
        return options.type

    def rowwise(self, options: PythonOptions) -> bool:
        return options.rowwise

    def compute(self, options: PythonOptions, batch: Batch) -> pl.DataFrame:
        row_ids = batch.frame["row_id"]
        try:
            function = resolve(options.function)
        except LookupError as err:  # not importable in this process: say where the module must be, in one line
            fix = f": {IMPORT_FIX}" if isinstance(err.__cause__, ImportError) else ""
            return failed(row_ids, ErrorCode.PYTHON_ERROR, f"{options.function}: {err}{fix}")
        inputs = batch.frame.drop("row_id")
        values = self._sharded(options, batch, inputs)
        if values is None:
            try:
                values = values_of(function, inputs)
            except Exception as err:  # a user's function failing is a cell outcome, not an engine error
                return failed(row_ids, ErrorCode.PYTHON_ERROR, f"{options.function}: {type(err).__name__}: {err}")
        return done(row_ids, values)

    def _sharded(self, options: PythonOptions, batch: Batch, inputs: pl.DataFrame) -> pl.Series | None:
        """A row-wise step's values computed where the run's backend computes them; None: here, as one call."""
        if not self.rowwise(options) or batch.map_rows is None:
            return None
        shipped = RowFunction.of(options.function)
        return None if shipped is None else batch.map_rows(shipped, inputs)
