"""Building the outcome frames that batch steps return: one row per cell, failures included."""

from __future__ import annotations

import polars as pl

from engine.types import HINTS, ErrorCode, Status

OUTCOME_SCHEMA = {
    "row_id": pl.Int64,
    "status": pl.String,
    "error_code": pl.String,
    "error_message": pl.String,
    "error_hint": pl.String,
    "cost": pl.Float64,
}


def done(row_ids: pl.Series, values: pl.Series, cost: float = 0.0) -> pl.DataFrame:
    """Every row computed: `values` in row order."""
    n = row_ids.len()
    return pl.DataFrame(
        {
            "row_id": row_ids.cast(pl.Int64),
            "value": values,
            "status": pl.repeat(Status.DONE.value, n, eager=True, dtype=pl.String),
            "error_code": pl.repeat(None, n, eager=True, dtype=pl.String),
            "error_message": pl.repeat(None, n, eager=True, dtype=pl.String),
            "error_hint": pl.repeat(None, n, eager=True, dtype=pl.String),
            "cost": pl.repeat(cost, n, eager=True, dtype=pl.Float64),
        }
    )


def failed(row_ids: pl.Series, code: ErrorCode, message: str) -> pl.DataFrame:
    """Every row failed with the same error."""
    n = row_ids.len()
    return pl.DataFrame(
        {
            "row_id": row_ids.cast(pl.Int64),
            "value": pl.repeat(None, n, eager=True, dtype=pl.String),
            "status": pl.repeat(Status.ERROR.value, n, eager=True, dtype=pl.String),
            "error_code": pl.repeat(code.value, n, eager=True, dtype=pl.String),
            "error_message": pl.repeat(message, n, eager=True, dtype=pl.String),
            "error_hint": pl.repeat(HINTS[code], n, eager=True, dtype=pl.String),
            "cost": pl.repeat(0.0, n, eager=True, dtype=pl.Float64),
        }
    )


def from_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Outcomes built cell by cell (paid kinds): dicts with row_id, value, status and, for errors, the code."""
    filled = []
    for row in rows:
        code = ErrorCode(row["error_code"]) if row.get("error_code") else None
        filled.append(
            {
                "row_id": row["row_id"],
                "value": row.get("value"),
                "status": str(row.get("status", Status.DONE.value)),
                "error_code": code.value if code else None,
                "error_message": row.get("error_message"),
                "error_hint": HINTS[code] if code else None,
                "cost": float(row.get("cost", 0.0) or 0.0),  # type: ignore[arg-type]
            }
        )
    return pl.DataFrame(filled, schema={**OUTCOME_SCHEMA, "value": pl.String})
