"""What readiness depends on."""

from __future__ import annotations

import asyncio

from tortoise import connections

DATABASE_CHECK_SECONDS = 2.0


async def database_ready() -> bool:
    """True when a trivial query answers within DATABASE_CHECK_SECONDS."""
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), DATABASE_CHECK_SECONDS)
    except Exception:  # any failure means not ready; the caller logs it
        return False
    return True
