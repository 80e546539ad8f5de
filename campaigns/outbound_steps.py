"""Python steps of the outbound campaign (`campaigns.outbound_steps:<function>` in campaigns/outbound.yaml).

Each step takes a polars DataFrame of its declared inputs and returns a Series with one value per row.
"""

from __future__ import annotations

import polars as pl

# Checked in this order: the first pattern a (lower-cased) title matches decides its level.
EXECUTIVE = r"\b(chief|c[etfomri]o|ciso|founder|owner|partner|president|managing director|vp|svp|evp)\b"
DIRECTOR = r"\b(director|head)\b"
MANAGER = r"\b(manager|lead|supervisor)\b"


def seniority(df: pl.DataFrame) -> pl.Series:
    """`title` -> executive, director, manager or individual; unknown when the title is empty or null."""
    title = pl.col("title").str.strip_chars().str.to_lowercase()
    level = (
        pl.when(title.is_null() | (title == ""))
        .then(pl.lit("unknown"))
        .when(title.str.contains(EXECUTIVE))
        .then(pl.lit("executive"))
        .when(title.str.contains(DIRECTOR))
        .then(pl.lit("director"))
        .when(title.str.contains(MANAGER))
        .then(pl.lit("manager"))
        .otherwise(pl.lit("individual"))
    )
    return df.select(level.alias("seniority")).to_series()
