"""`formula`: a DuckDB SQL expression over the row, computed for all planned rows in one statement."""

from __future__ import annotations

from typing import ClassVar

from engine.cells.base import StepOptions
from engine.graph.references import sql_references


class FormulaOptions(StepOptions):
    expression: str


class Formula:
    name: ClassVar[str] = "formula"
    free: ClassVar[bool] = True
    options: ClassVar[type[StepOptions]] = FormulaOptions

    def references(self, options: FormulaOptions) -> set[str]:
        return sql_references(options.expression)

    def value_type(self, options: FormulaOptions, input_types: dict[str, str]) -> str | None:
        return None  # bound by DuckDB from the expression and the input types

    def sql(self, options: FormulaOptions) -> str:
        return options.expression
