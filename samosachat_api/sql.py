"""Hand-written SQL for the hot reads and the statements of every question and answer: building
a statement through Tortoise (pypika) cost two to three times running it (bench/README.md).

Written with PostgreSQL's `$1` placeholders, which SQLite reads as numbered parameters `?1`.
SQLite gets UUIDs and datetimes as text, in the form Tortoise stores them in (`str(value)`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

ModelT = TypeVar("ModelT", bound=Model)
_PLACEHOLDER = re.compile(r"\$(\d+)")


def on_sqlite(connection: BaseDBAsyncClient | None = None) -> bool:
    return (connection or connections.get("default")).capabilities.dialect == "sqlite"


def _prepared(sql: str, values: tuple, connection: BaseDBAsyncClient) -> tuple[str, list]:
    if not on_sqlite(connection):
        return sql, list(values)
    return _PLACEHOLDER.sub(r"?\1", sql), [str(v) if isinstance(v, UUID | datetime) else v for v in values]


async def fetch(sql: str, *values: Any, model: type[Model] | None = None) -> list[dict[str, Any]]:
    """The rows a query returns, as dicts. With `model`, each column holds the Python value of the
    model's field of that name (SQLite returns datetimes as text, booleans as integers)."""
    connection = connections.get("default")
    rows = await connection.execute_query_dict(*_prepared(sql, values, connection))
    if model is not None and on_sqlite(connection):
        fields = model._meta.fields_map
        rows = [{column: fields[column].to_python_value(value) for column, value in row.items()} for row in rows]
    return rows


async def fetch_objects(model: type[ModelT], sql: str, *values: Any) -> list[ModelT]:
    """The rows a query returns, as model objects: built as Tortoise builds those it reads itself
    (`_init_from_db` converts each backend's values)."""
    return [model._init_from_db(**row) for row in await fetch(sql, *values)]


async def execute(sql: str, *values: Any, connection: BaseDBAsyncClient | None = None) -> int:
    """Run a statement; returns the number of rows it changed."""
    connection = connection or connections.get("default")
    changed, _ = await connection.execute_query(*_prepared(sql, values, connection))
    return changed
