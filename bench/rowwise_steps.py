"""The CPU-heavy row-wise python step bench/rowwise_ray.py computes: each row's value is its company name hashed
`LOOPS` times over (about 1 ms of CPU a row), from that row alone."""

from __future__ import annotations

import hashlib

import polars as pl

LOOPS = 2_000


def digest(frame: pl.DataFrame) -> pl.Series:
    values = []
    for company in frame["company"]:
        value = str(company).encode()
        for _ in range(LOOPS):
            value = hashlib.sha256(value).digest()
        values.append(value.hex()[:16])
    return pl.Series(values, dtype=pl.String)
