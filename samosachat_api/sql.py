"""Hand-written SQL for the hot reads and the statements of every question and answer: building
a statement through Tortoise (pypika) cost two to three times running it (bench/README.md).
Written in PostgreSQL's own SQL, with its `$1` placeholders.
"""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

ModelT = TypeVar("ModelT", bound=Model)


async def fetch(sql: str, *values: Any) -> list[dict[str, Any]]:
    """The rows a query returns, as dicts."""
    return await connections.get("default").execute_query_dict(sql, list(values))


async def fetch_objects(model: type[ModelT], sql: str, *values: Any) -> list[ModelT]:
    """The rows a query returns, as model objects: built as Tortoise builds those it reads itself
    (`_init_from_db`)."""
    return [model._init_from_db(**row) for row in await fetch(sql, *values)]


async def execute(sql: str, *values: Any, connection: BaseDBAsyncClient | None = None) -> int:
    """Run a statement; returns the number of rows it changed."""
    connection = connection or connections.get("default")
    changed, _ = await connection.execute_query(sql, list(values))
    return changed
