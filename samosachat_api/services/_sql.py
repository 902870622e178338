"""Hand-written SQL for the statement every conversation route runs: building a query through
Tortoise (pypika) cost about three times running it (bench/README.md).

Written with PostgreSQL's `$1` placeholders, which SQLite reads as numbered parameters `?1`;
UUIDs are passed as text, which both accept.
"""

from __future__ import annotations

import re
from typing import Any

from tortoise import connections

_PLACEHOLDER = re.compile(r"\$(\d+)")


async def fetch(sql: str, *values: Any) -> list[dict[str, Any]]:
    connection = connections.get("default")
    if connection.capabilities.dialect == "sqlite":
        sql = _PLACEHOLDER.sub(r"?\1", sql)
    return await connection.execute_query_dict(sql, list(values))
