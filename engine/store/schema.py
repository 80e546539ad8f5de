"""The workspace's tables.

Metadata lives in a few small tables. Records and cells are stored one table per column
(`c<campaign>_<column>`), so adding a column creates a table instead of altering a million-row one, and a
column's recompute rewrites only its own table.
"""

from __future__ import annotations

import re

import duckdb

SCHEMA_VERSION = "3"

METADATA_DDL = [
    "CREATE SEQUENCE IF NOT EXISTS ids START 1",
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS campaigns (
        campaign_id BIGINT PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, description VARCHAR, spec JSON,
        rows_table VARCHAR NOT NULL, next_row_id BIGINT NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS columns (
        campaign_id BIGINT NOT NULL, name VARCHAR NOT NULL, position INTEGER NOT NULL, kind VARCHAR NOT NULL,
        version VARCHAR NOT NULL, value_type VARCHAR NOT NULL, table_name VARCHAR NOT NULL,
        PRIMARY KEY (campaign_id, name))""",
    # A run's progress (total/done/credits...) is updated as paid results are written; `heartbeat`, `pid` and
    # `host` let another process tell a live run from a crashed one; `stop_requested` is how Stop reaches it.
    """CREATE TABLE IF NOT EXISTS runs (
        run_id BIGINT PRIMARY KEY, campaign_id BIGINT, actor VARCHAR, trigger VARCHAR, request JSON,
        status VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, counts JSON,
        total BIGINT DEFAULT 0, done BIGINT DEFAULT 0, credits DOUBLE DEFAULT 0, tokens BIGINT DEFAULT 0,
        provider_cost DOUBLE DEFAULT 0, cache_hits BIGINT DEFAULT 0, credits_saved DOUBLE DEFAULT 0,
        stop_requested BOOLEAN DEFAULT FALSE, heartbeat TIMESTAMP, pid BIGINT, host VARCHAR, message VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS activity (
        run_id BIGINT, campaign_id BIGINT, column_name VARCHAR, row_id BIGINT, cells BIGINT, action VARCHAR,
        outcome VARCHAR, logged_at TIMESTAMP, duration_ms DOUBLE, cost DOUBLE, actor VARCHAR, trigger VARCHAR,
        tokens BIGINT, provider_cost DOUBLE, cached BOOLEAN, error_code VARCHAR, old_value VARCHAR,
        new_value VARCHAR, action_id BIGINT)""",
    # Global context documents (brand brief, ICP, ...): the current text, and every version ever saved.
    """CREATE TABLE IF NOT EXISTS context (
        name VARCHAR PRIMARY KEY, text VARCHAR NOT NULL, version VARCHAR NOT NULL, updated_at TIMESTAMP,
        updated_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS context_history (
        name VARCHAR NOT NULL, text VARCHAR, version VARCHAR NOT NULL, saved_at TIMESTAMP, saved_by VARCHAR)""",
    # Credits: the balance is the sum of the ledger (grants positive, spending negative).
    """CREATE TABLE IF NOT EXISTS credit_ledger (
        booked_at TIMESTAMP NOT NULL, amount DOUBLE NOT NULL, run_id BIGINT, campaign_id BIGINT, reason VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value JSON)",
    # The memo: the latest answer of a cacheable paid step for each cell key (step version, context versions and
    # input values), across campaigns, so a rerun over known inputs is one join instead of a call per cell.
    """CREATE TABLE IF NOT EXISTS memo (
        key UBIGINT PRIMARY KEY, value VARCHAR, status VARCHAR NOT NULL, saved_at TIMESTAMP)""",
    # Who may do what (engine/auth.py): users with a role, and API tokens (only their hash is stored).
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, created_at TIMESTAMP, created_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS api_tokens (
        token_hash VARCHAR PRIMARY KEY, user_name VARCHAR NOT NULL, label VARCHAR, created_at TIMESTAMP)""",
    # UI logins (engine/logins.py): argon2id password hashes, and sessions by the SHA-256 of their id.
    """CREATE TABLE IF NOT EXISTS passwords (
        user_name VARCHAR PRIMARY KEY, hash VARCHAR NOT NULL, set_at TIMESTAMP, set_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        session_hash VARCHAR PRIMARY KEY, user_name VARCHAR NOT NULL, via VARCHAR NOT NULL, token_hash VARCHAR,
        created_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL)""",
    # Paused campaigns (column_name '') and steps (engine/store/pause.py).
    """CREATE TABLE IF NOT EXISTS paused (
        campaign_id BIGINT NOT NULL, column_name VARCHAR NOT NULL, paused_at TIMESTAMP, paused_by VARCHAR,
        PRIMARY KEY (campaign_id, column_name))""",
    # Schedules (engine/schedules.py): cron or interval (in a time zone), optional freshness, or a library action
    # run on the records a filter selects; run inside `runsheet serve`.
    """CREATE TABLE IF NOT EXISTS schedules (
        schedule_id BIGINT PRIMARY KEY, campaign VARCHAR NOT NULL, column_name VARCHAR, cron VARCHAR,
        every_seconds DOUBLE, older_than_seconds DOUBLE, next_due_at TIMESTAMP NOT NULL, last_run_at TIMESTAMP,
        last_run_id BIGINT, created_by VARCHAR, created_at TIMESTAMP, action_id BIGINT, record_filter VARCHAR,
        timezone VARCHAR)""",
    # Export steps' decisions to send (engine/store/outbox.py), written when their cells are claimed.
    """CREATE TABLE IF NOT EXISTS outbox (
        delivery_id BIGINT PRIMARY KEY, campaign_id BIGINT NOT NULL, column_name VARCHAR NOT NULL,
        row_id BIGINT NOT NULL, cell_key UBIGINT, idempotency_key VARCHAR NOT NULL, message_id VARCHAR NOT NULL,
        payload VARCHAR NOT NULL, status VARCHAR NOT NULL, run_id BIGINT, attempts INTEGER DEFAULT 0,
        created_at TIMESTAMP, delivered_at TIMESTAMP, last_error VARCHAR)""",
    # Each person's grid layout of a campaign (engine/store/layouts.py).
    """CREATE TABLE IF NOT EXISTS column_layouts (
        user_name VARCHAR NOT NULL, campaign_id BIGINT NOT NULL, layout JSON NOT NULL, updated_at TIMESTAMP,
        PRIMARY KEY (user_name, campaign_id))""",
    # The action library (engine/store/actions.py): actions, their results on single records, documents.
    """CREATE TABLE IF NOT EXISTS actions (
        action_id BIGINT PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, kind VARCHAR NOT NULL, options JSON NOT NULL,
        category VARCHAR NOT NULL, description VARCHAR NOT NULL, enabled BOOLEAN NOT NULL, active BOOLEAN NOT NULL,
        roles JSON NOT NULL, produces VARCHAR NOT NULL, created_at TIMESTAMP, created_by VARCHAR,
        updated_at TIMESTAMP, updated_by VARCHAR)""",
    # One row per ad hoc run of an action on one record: `running` while its call is made, then its outcome.
    """CREATE TABLE IF NOT EXISTS action_results (
        result_id BIGINT PRIMARY KEY, action_id BIGINT NOT NULL, campaign_id BIGINT NOT NULL, row_id BIGINT NOT NULL,
        run_id BIGINT, status VARCHAR NOT NULL, value VARCHAR, error_code VARCHAR, error_message VARCHAR,
        error_hint VARCHAR, credits DOUBLE DEFAULT 0, tokens BIGINT DEFAULT 0, provider_cost DOUBLE,
        cached BOOLEAN DEFAULT FALSE, latency_ms DOUBLE, detail JSON, started_at TIMESTAMP, finished_at TIMESTAMP,
        actor VARCHAR, trigger VARCHAR, saved_at TIMESTAMP, saved_by VARCHAR, saved_field VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS documents (
        document_id BIGINT PRIMARY KEY, action_id BIGINT NOT NULL, campaign_id BIGINT, row_id BIGINT,
        result_id BIGINT, run_id BIGINT, title VARCHAR NOT NULL, body VARCHAR NOT NULL, author VARCHAR,
        created_at TIMESTAMP)""",
    # Every change of a campaign's spec (engine/store/spec_history.py): who, when, through what, the spec after
    # it and a readable diff from the one before.
    # The action builder's chats (engine/store/chats.py): one row per message, kept per action name (a chat may
    # draft an action that does not exist yet); an assistant's proposal is kept whole, as shown, until accepted.
    """CREATE TABLE IF NOT EXISTS action_chats (
        message_id BIGINT PRIMARY KEY, action VARCHAR NOT NULL, action_id BIGINT, turn BIGINT NOT NULL,
        role VARCHAR NOT NULL, content VARCHAR NOT NULL, proposal JSON, created_at TIMESTAMP, actor VARCHAR,
        accepted_at TIMESTAMP)""",
    # Copilot's chats (engine/store/copilot.py): one per source (a campaign's step cell, or an action result),
    # seeded with the record, the step, the rendered prompt and the result; then one row per message.
    """CREATE TABLE IF NOT EXISTS copilot_chats (
        chat_id BIGINT PRIMARY KEY, source VARCHAR UNIQUE NOT NULL, campaign_id BIGINT NOT NULL,
        row_id BIGINT NOT NULL, column_name VARCHAR, result_id BIGINT, action_id BIGINT, seed JSON NOT NULL,
        created_at TIMESTAMP, created_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS copilot_messages (
        message_id BIGINT PRIMARY KEY, chat_id BIGINT NOT NULL, turn BIGINT NOT NULL, role VARCHAR NOT NULL,
        content VARCHAR NOT NULL, model VARCHAR, credits DOUBLE DEFAULT 0, created_at TIMESTAMP, actor VARCHAR,
        used_as VARCHAR, used_at TIMESTAMP, used_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS spec_history (
        change_id BIGINT PRIMARY KEY, campaign_id BIGINT NOT NULL, campaign VARCHAR NOT NULL, changed_at TIMESTAMP,
        actor VARCHAR, origin VARCHAR NOT NULL, spec JSON NOT NULL, diff VARCHAR)""",
]

# Columns renamed or added since a workspace was made: (table, old name or None for added, new name, type).
# Old workspaces named two timestamp columns "at", a SQL keyword that every query had to quote.
COLUMN_UPGRADES = [
    ("activity", "at", "logged_at", "TIMESTAMP"),
    ("credit_ledger", "at", "booked_at", "TIMESTAMP"),
    ("activity", None, "old_value", "VARCHAR"),
    ("activity", None, "new_value", "VARCHAR"),
    ("activity", None, "action_id", "BIGINT"),
    ("schedules", None, "action_id", "BIGINT"),
    ("schedules", None, "record_filter", "VARCHAR"),
    ("schedules", None, "timezone", "VARCHAR"),
]

STEP_COLUMNS = (
    "row_id, value, status, key, waiting_on, error_code, error_message, error_hint, cost, started_at, finished_at, "
    "run_id, tokens, latency_ms, attempts, provider_cost, cached, detail"
)


def upgrade_metadata(con: duckdb.DuckDBPyConnection) -> None:
    """Give a workspace made by an older version the metadata tables added since (a read when none are missing)."""
    tables_missing, stale, columns = _outdated(con)
    if tables_missing:
        create_metadata(con)
        _, stale, columns = _outdated(con)  # the tables just made have every column
    for table, old, new, value_type in stale:
        if old is not None and (table, old) in columns:
            con.execute(f"ALTER TABLE {table} RENAME COLUMN {quote(old)} TO {new}")
        else:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {new} {value_type}")
    if stale:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])


def metadata_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the workspace has every metadata table and column this version writes (`upgrade_metadata` would
    change nothing): a read-only path may then read it as it is."""
    tables_missing, stale, _ = _outdated(con)
    return not tables_missing and not stale


def _outdated(
    con: duckdb.DuckDBPyConnection,
) -> tuple[bool, list[tuple[str, str | None, str, str]], set[tuple[str, str]]]:
    wanted = {m.group(1) for s in METADATA_DDL if (m := re.search(r"TABLE IF NOT EXISTS (\w+)", s))}
    present = {
        r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    }
    columns = set(
        con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main'").fetchall()
    )
    stale = [u for u in COLUMN_UPGRADES if (u[0], u[2]) not in columns]
    return not wanted <= present, stale, columns


def create_metadata(con: duckdb.DuckDBPyConnection) -> None:
    for statement in METADATA_DDL:
        con.execute(statement)
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])


def rows_table_ddl(table: str) -> str:
    return f"CREATE TABLE {table} (row_id BIGINT NOT NULL, created_at TIMESTAMP NOT NULL)"


def input_table_ddl(table: str, value_type: str) -> str:
    return f"CREATE TABLE {table} (row_id BIGINT NOT NULL, value {value_type})"


def step_table_ddl(table: str, value_type: str) -> str:
    return (
        f"CREATE TABLE {table} (row_id BIGINT NOT NULL, value {value_type}, status VARCHAR NOT NULL, key UBIGINT, "
        "waiting_on VARCHAR, error_code VARCHAR, error_message VARCHAR, error_hint VARCHAR, cost DOUBLE, "
        "started_at TIMESTAMP, finished_at TIMESTAMP, run_id BIGINT, tokens BIGINT, latency_ms DOUBLE, "
        "attempts INTEGER, provider_cost DOUBLE, cached BOOLEAN, detail JSON)"
    )


def quote(identifier: str) -> str:
    """A safely quoted SQL identifier, whatever the name contains."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A safely quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
