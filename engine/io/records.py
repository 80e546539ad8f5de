"""Records sent as values rather than a file (the HTTP API's batches): checked against a campaign's input columns
and handed on as a frame of text columns, which the store casts as it does an imported file's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import ImportError_

if TYPE_CHECKING:
    import polars as pl

    from engine.spec import CampaignSpec

Scalar = str | int | float | bool | None


def check_records(spec: CampaignSpec, records: list[dict[str, Scalar]]) -> pl.DataFrame:
    """The batch as a frame of text columns (the store casts them), after refusing it with the first value that
    is not of its input column's type (or an unknown field); checked in a scratch in-memory DuckDB."""
    import duckdb
    import polars as pl
    import pyarrow as pa

    inputs = {c.name: c.value_type for c in spec.columns if c.is_input}
    fields = list(dict.fromkeys(f for r in records for f in r))
    unknown = [f for f in fields if f not in inputs]
    if unknown:
        raise ImportError_(
            f"field(s) {', '.join(unknown)} are not input columns of campaign '{spec.name}'",
            hint="add them to the spec as `kind: input`, or leave them out",
        )
    table = pa.table({f: pa.array([_text(r.get(f)) for r in records], pa.string()) for f in fields})
    with duckdb.connect(":memory:") as scratch:
        scratch.register("_batch", table)
        for field in fields:
            bad = scratch.execute(
                f'SELECT n, v FROM (SELECT row_number() OVER () AS n, "{field}" AS v FROM _batch) '
                f"WHERE v IS NOT NULL AND TRY_CAST(v AS {inputs[field]}) IS NULL LIMIT 1"
            ).fetchall()
            if bad:
                raise ImportError_(
                    f"record {bad[0][0]}: {field} = {bad[0][1]!r} is not a {inputs[field]}",
                    hint=f"send a {inputs[field]} value for '{field}'",
                )
    found = pl.from_arrow(table)
    assert isinstance(found, pl.DataFrame)
    return found


def _text(value: Scalar) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
