"""PostgreSQL schema migrations: numbered, each applied once, in order, in its own
transaction, under an advisory lock so replicas starting together never race."""

from __future__ import annotations

import asyncpg

# Append only: a released migration never changes; a new one gets the next number.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        id text PRIMARY KEY,
        context_id text NOT NULL,
        agent text NOT NULL,
        tenant text NOT NULL DEFAULT '',
        state text NOT NULL,
        owner text NOT NULL DEFAULT '',
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        data jsonb NOT NULL
    );
    CREATE INDEX tasks_by_tenant ON tasks (tenant, agent, updated_at DESC, id DESC);
    CREATE INDEX tasks_unfinished ON tasks (owner) WHERE state IN ('submitted', 'working');
    CREATE TABLE messages (
        seq bigserial PRIMARY KEY,
        tenant text NOT NULL,
        context_id text NOT NULL,
        role text NOT NULL,
        content text NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (tenant, context_id, seq);
    CREATE TABLE token_usage (
        tenant text NOT NULL,
        period text NOT NULL,
        tokens bigint NOT NULL,
        PRIMARY KEY (tenant, period)
    );
    CREATE TABLE replicas (
        owner text PRIMARY KEY,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE cancel_requests (
        task_id text PRIMARY KEY,
        owner text NOT NULL,
        requested_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX cancel_requests_by_owner ON cancel_requests (owner);
    """,
    """
    CREATE TABLE push_configs (
        tenant text NOT NULL,
        task_id text NOT NULL,
        id text NOT NULL,
        created_at double precision NOT NULL,
        data jsonb NOT NULL,
        PRIMARY KEY (tenant, task_id, id)
    );
    """,
    """
    CREATE TABLE rate_buckets (
        key text PRIMARY KEY,
        level double precision NOT NULL,
        at double precision NOT NULL
    );
    """,
    """
    CREATE TABLE kb_documents (
        id bigserial PRIMARY KEY,
        store text NOT NULL,
        path text NOT NULL,
        mtime_ns bigint NOT NULL,
        size bigint NOT NULL,
        sha256 text NOT NULL,
        title text NOT NULL,
        UNIQUE (store, path)
    );
    CREATE TABLE kb_chunks (
        id bigserial PRIMARY KEY,
        document bigint NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
        store text NOT NULL,
        title text NOT NULL,
        heading text NOT NULL,
        locator text NOT NULL,
        text text NOT NULL,
        tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', title), 'A')
            || setweight(to_tsvector('english', heading), 'B')
            || setweight(to_tsvector('english', text), 'D')
        ) STORED
    );
    CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
    CREATE INDEX kb_chunks_document ON kb_chunks (document);
    CREATE INDEX kb_chunks_store ON kb_chunks (store, id);
    CREATE TABLE kb_vectors (
        chunk bigint PRIMARY KEY REFERENCES kb_chunks (id) ON DELETE CASCADE,
        model text NOT NULL,
        embedding real[] NOT NULL
    );
    """,
)

LATEST = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was migrated by a newer hector than this one."""


def _lock_key(schema: str) -> str:
    return f"hector-migrations:{schema}"


async def _applied(conn: asyncpg.Connection, schema: str) -> int:
    exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
    if exists is None:
        return 0
    version = await conn.fetchval(f'SELECT max(version) FROM "{schema}".schema_migrations')
    return int(version or 0)


async def schema_version(conn: asyncpg.Connection, schema: str) -> int:
    """The highest migration applied to ``schema`` (0 when none)."""
    return await _applied(conn, schema)


async def migrate(conn: asyncpg.Connection, schema: str) -> list[int]:
    """Bring ``schema`` up to :data:`LATEST`; returns the versions applied now (none when
    another replica got there first). Raises :class:`SchemaTooNew`."""
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", _lock_key(schema))
    try:
        current = await _applied(conn, schema)
        if current > LATEST:
            raise SchemaTooNew(
                f"database schema '{schema}' is at version {current}, newer than this"
                f" hector's {LATEST}: upgrade hector"
            )
        applied = []
        for version in range(current + 1, LATEST + 1):
            async with conn.transaction():
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                await conn.execute(MIGRATIONS[version - 1])
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", _lock_key(schema))
