"""The release command: repeatable, and safe on a database the old service already filled."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from dev.processes import release as migrate

OLD_SERVICE_SCHEMA = """
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
CREATE TABLE conversations (
    id UUID PRIMARY KEY, user_id UUID NOT NULL, title VARCHAR(500), model_tag VARCHAR(100) DEFAULT 'default',
    is_favorited BOOLEAN NOT NULL DEFAULT false, created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX ix_conversations_user_id_updated_at ON conversations (user_id, updated_at DESC);
CREATE TABLE messages (
    id UUID PRIMARY KEY, conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role VARCHAR(20) NOT NULL CHECK (role IN ('user', 'assistant', 'system')), content TEXT NOT NULL,
    token_count INTEGER, model_tag VARCHAR(100), inference_time_ms INTEGER, created_at TIMESTAMPTZ DEFAULT now()
);
"""


@pytest.fixture
async def scratch_database(postgres_server):
    name = f"samosachat_migrations_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{postgres_server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    connection = await asyncpg.connect(f"{postgres_server}/{name}")
    try:
        yield f"{postgres_server}/{name}", connection
    finally:
        await connection.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrating_twice_is_harmless(scratch_database):
    url, connection = scratch_database
    migrate(url)
    second = migrate(url)
    assert "No migrations to apply" in second.stdout
    columns = await connection.fetch(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_name = 'conversations' ORDER BY ordinal_position"
    )
    assert [(c["column_name"], c["data_type"]) for c in columns] == [
        ("id", "uuid"), ("user_id", "uuid"), ("title", "character varying"), ("model_tag", "character varying"),
        ("is_favorited", "boolean"), ("created_at", "timestamp with time zone"), ("updated_at", "timestamp with time zone"),
        ("answer_lease_owner", "character varying"), ("answer_lease_until", "timestamp with time zone"),
        ("title_set_by_user", "boolean"),
    ]
    with pytest.raises(asyncpg.CheckViolationError):
        conversation_id = uuid.uuid4()
        await connection.execute("INSERT INTO conversations (id, user_id) VALUES ($1, $2)", conversation_id, uuid.uuid4())
        await connection.execute(
            "INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'robot', 'x')", uuid.uuid4(), conversation_id
        )
    assert await connection.fetchval("SELECT model_tag FROM conversations") == "default"


async def test_adopts_the_old_services_tables_without_losing_rows(scratch_database):
    url, connection = scratch_database
    await connection.execute(OLD_SERVICE_SCHEMA)
    conversation_id, user_id = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        "INSERT INTO conversations (id, user_id, title) VALUES ($1, $2, 'from the old service')", conversation_id, user_id
    )
    await connection.execute(
        "INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', 'old question')",
        uuid.uuid4(), conversation_id,
    )
    migrate(url)
    migrate(url)
    assert await connection.fetchval("SELECT title FROM conversations WHERE id = $1", conversation_id) == "from the old service"
    assert await connection.fetchval("SELECT content FROM messages") == "old question"
    assert await connection.fetchval("SELECT answer_lease_until FROM conversations") is None
    assert await connection.fetchval("SELECT title_set_by_user FROM conversations") is False
    assert await connection.fetchval("SELECT status FROM messages") == "complete"
