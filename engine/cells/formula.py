"""`formula`: a DuckDB SQL expression over the row, computed for all planned rows in one statement."""

from __future__ import annotations

from typing import ClassVar

import duckdb
import polars as pl

from engine.cells.base import StepKind, StepOptions
from engine.graph.references import sql_references


class FormulaOptions(StepOptions):
    expression: str


class Formula(StepKind):
    """Differs in: its values are SQL (`sql`), free."""

    name: ClassVar[str] = "formula"
    free: ClassVar[bool] = True
    options: ClassVar[type[StepOptions]] = FormulaOptions

    def references(self, options: FormulaOptions) -> set[str]:
        return sql_references(options.expression)

    def value_type(self, options: FormulaOptions, input_types: dict[str, str]) -> str | None:
        return None  # bound by DuckDB from the expression and the input types

    def sql(self, options: FormulaOptions) -> str:
        return options.expression


def failing_rows(candidates: pl.DataFrame, expression: str) -> dict[int, str]:
    """The rows of `candidates` (row_id and input columns) on which `expression` raises, with DuckDB's message.

    They are evaluated in a scratch in-memory database, so a failure cannot abort the workspace's transaction;
    the search bisects, so a few bad rows among many cost a few statements.
    """
    failures: dict[int, str] = {}
    with duckdb.connect(":memory:") as scratch:
        scratch.register("_candidates", candidates.to_arrow())
        pending = [candidates["row_id"].to_list()]
        while pending:
            chunk = pending.pop()
            try:
                scratch.execute(
                    f"SELECT count({expression}) FROM _candidates WHERE row_id IN (SELECT unnest(?::BIGINT[]))",
                    [chunk],
                ).fetchall()
            except duckdb.Error as err:
                if len(chunk) == 1:
                    failures[chunk[0]] = str(err).strip().splitlines()[0]
                else:
                    middle = len(chunk) // 2
                    pending += [chunk[:middle], chunk[middle:]]
    return failures
