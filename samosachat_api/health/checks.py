"""What readiness depends on."""

from __future__ import annotations

import asyncio

from tortoise import connections

DATABASE_CHECK_SECONDS = 2.0


async def database_problem() -> str | None:
    """None when a trivial query answers within DATABASE_CHECK_SECONDS; else what went wrong (the
    error's class, e.g. InvalidCatalogNameError when the database does not exist)."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), DATABASE_CHECK_SECONDS)
    except Exception as exc:  # any failure means not ready; the caller logs it
        return type(exc).__name__
    return None
