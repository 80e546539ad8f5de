"""Cell keys are stable (DESIGN rule 1): the key expression is md5 over a canonical string, whatever DuckDB build
computes it. Each key is checked against Python's hashlib, so a change in DuckDB's md5 functions, or in the way the
engine reads them, fails here instead of silently making every cell of every workspace stale."""

from __future__ import annotations

import hashlib

import duckdb

from engine.store.cells import key_expression

SEPARATOR = "\x1f"


def expected(version: str, *json_values: str) -> int:
    """The key by definition: bytes 8-15 of md5(version, then each input's JSON, joined by chr(31)), little-endian."""
    digest = hashlib.md5(SEPARATOR.join([version, *json_values]).encode()).digest()
    return int.from_bytes(digest[8:], "little")


def test_keys_are_md5_of_the_version_and_the_inputs_canonical_json() -> None:
    rows = [
        ("ann@acme.com", 40, None),
        ("", 0, "x"),
        ('Zoë 漢字 "quoted"', -7, "a\nb"),
        (None, None, None),
    ]
    with duckdb.connect(":memory:") as con:
        con.execute("CREATE TABLE t (email VARCHAR, employees BIGINT, note VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        key = key_expression("v1|ctx=3", ["email", "employees", "note"])
        found = [r[0] for r in con.execute(f"SELECT {key} FROM t ORDER BY rowid").fetchall()]
        legacy = con.execute(  # the expression keys were stored with before: the same numbers
            "SELECT md5_number_lower(concat_ws(chr(31), 'v1|ctx=3', coalesce(to_json(email), 'null'), "
            "coalesce(to_json(employees), 'null'), coalesce(to_json(note), 'null'))) FROM t ORDER BY rowid"
        ).fetchall()
    assert found == [
        expected("v1|ctx=3", '"ann@acme.com"', "40", "null"),
        expected("v1|ctx=3", '""', "0", '"x"'),
        expected("v1|ctx=3", '"Zoë 漢字 \\"quoted\\""', "-7", '"a\\nb"'),
        expected("v1|ctx=3", "null", "null", "null"),
    ]
    assert found == [r[0] for r in legacy]
