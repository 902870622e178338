"""The tables the migrations make are the ones the models declare: the same columns, indexes and
constraints, read back from PostgreSQL's catalog."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tortoise.context import TortoiseContext
from tortoise.migrations.schema_editor import AsyncpgSchemaEditor

from dev.embedded import create_database
from dev.processes import release
from samosachat_api.models import Conversation, Message
from samosachat_api.settings import tortoise_config

MODELS = (Conversation, Message)
TABLES = [model._meta.db_table for model in MODELS]  # not tortoise_migrations, the migrations' bookkeeping

# Each row a tuple: what it is, its table, its name, then its definition.
CATALOG = [
    # Columns by name, not position: a column added by a later migration comes last.
    """SELECT 'column', table_name::text, column_name::text,
              data_type || coalesce('(' || character_maximum_length || ')', ''), is_nullable::text, column_default::text
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name::text = ANY($1::text[])""",
    """SELECT 'index', tablename::text, indexname::text, indexdef
       FROM pg_indexes WHERE schemaname = 'public' AND tablename::text = ANY($1::text[])""",
    # UNIQUE constraints left out: Tortoise makes the idempotency key's unique rule a constraint,
    # migration 0005 a bare unique index, and both enforce it with that index, compared above.
    """SELECT 'constraint', conrelid::regclass::text, conname::text, contype::text, pg_get_constraintdef(oid)
       FROM pg_constraint WHERE conrelid = ANY($1::text[]::regclass[]) AND contype <> 'u'""",
]

# What Tortoise 1.1 cannot declare (its Index takes field names, without an order): migration 0001
# makes this index descending on updated_at, as the old service's was.
USER_UPDATED = "CREATE INDEX ix_conversations_user_updated ON public.conversations USING btree (user_id, updated_at{})"


async def drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def databases(postgres_server: str) -> AsyncIterator[list[str]]:
    """Two empty databases of this test's own, dropped afterwards."""
    names = [f"samosachat_schema_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        yield await asyncio.gather(*(create_database(postgres_server, name) for name in names))
    finally:
        await asyncio.gather(*(drop_database(postgres_server, name) for name in names))


async def create_from_models(database_url: str) -> None:
    async with TortoiseContext() as context:
        await context.init(config=tortoise_config(database_url))
        await context.generate_schemas(safe=False)
        # generate_schemas() skips Meta.constraints: add them as Tortoise's migrations would.
        editor = AsyncpgSchemaEditor(context.db())
        for model in MODELS:
            for constraint in model._meta.constraints:
                await editor.add_constraint(model, constraint)


async def schema(database_url: str) -> set[tuple]:
    connection = await asyncpg.connect(database_url)
    try:
        return {tuple(row) for query in CATALOG for row in await connection.fetch(query, TABLES)}
    finally:
        await connection.close()


async def test_the_migrations_make_the_tables_the_models_declare(databases):
    migrated_url, declared_url = databases
    release(migrated_url)
    await create_from_models(declared_url)
    migrated, declared = await schema(migrated_url), await schema(declared_url)
    migrated.remove(("index", "conversations", "ix_conversations_user_updated", USER_UPDATED.format(" DESC")))
    declared.remove(("index", "conversations", "ix_conversations_user_updated", USER_UPDATED.format("")))
    assert migrated == declared
