"""The admin dashboard's users: who they are (from the auth service's `users` table, when it shares
this database) and how much they use the chat."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tortoise import connections
from tortoise.functions import Count, Max

from ..models import Conversation, Message

USERS_PAGE = """
    SELECT id, email, name, provider, created_at, last_login_at FROM users
    ORDER BY last_login_at DESC NULLS LAST, created_at DESC, id
    LIMIT $1 OFFSET $2
"""
NO_PROFILE = {"email": None, "name": None, "provider": None, "created_at": None, "last_login_at": None}


async def users_page(limit: int, offset: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A page of users, most recent login first, with their counts; and the totals of everyone."""
    # Not scoped by user, like the helpers below: the admin listing counts every user's conversations.
    if await _has_users_table():
        _, profiles = await connections.get("default").execute_query(USERS_PAGE, [limit, offset])
        profiles = [dict(row) for row in profiles]
        users_total = (await connections.get("default").execute_query("SELECT count(*) AS n FROM users"))[1][0]["n"]
    else:  # without the auth service's table: the users found in conversations, latest activity first
        profiles = await _users_of_conversations(limit, offset)
        users_total = len(await Conversation.all().distinct().values_list("user_id", flat=True))
    counts = await _counts_of([profile["id"] for profile in profiles])
    items = [{**profile, **counts.get(UUID(str(profile["id"])), _ZERO)} for profile in profiles]
    totals = {"users": users_total, "conversations": await Conversation.all().count(), "messages": await Message.all().count()}
    return items, totals


_ZERO = {"conversation_count": 0, "message_count": 0}


async def _has_users_table() -> bool:
    _, rows = await connections.get("default").execute_query("SELECT to_regclass('users') IS NOT NULL AS present")
    return rows[0]["present"]


async def _users_of_conversations(limit: int, offset: int) -> list[dict[str, Any]]:
    rows = (
        await Conversation.all()
        .annotate(last_active=Max("updated_at"))
        .group_by("user_id")
        .order_by("-last_active", "user_id")
        .offset(offset)
        .limit(limit)
        .values("user_id", "last_active")
    )
    return [{"id": row["user_id"], **NO_PROFILE} for row in rows]


async def _counts_of(user_ids: list[Any]) -> dict[UUID, dict[str, int]]:
    if not user_ids:
        return {}
    rows = (
        await Conversation.filter(user_id__in=user_ids)
        .annotate(conversation_count=Count("id", distinct=True), message_count=Count("messages__id"))
        .group_by("user_id")
        .values("user_id", "conversation_count", "message_count")
    )
    return {
        UUID(str(row["user_id"])): {"conversation_count": row["conversation_count"], "message_count": row["message_count"]}
        for row in rows
    }
