"""Conversations of one user: every function takes the owner's id and never crosses it."""

from __future__ import annotations

from collections import defaultdict
from datetime import timezone
from typing import Any
from uuid import UUID

from tortoise.timezone import now

from .. import sql
from ..answers import RunningAnswer
from ..errors import ConversationNotFound
from ..models import DEFAULT_MODEL_TAG, DEFAULT_TITLE, Conversation, Role
from ..owner import Owner, owned


# The hot reads are written in SQL (see samosachat_api/sql.py) and return rows, dicts of the
# columns shown, rather than model objects: building either through Tortoise cost more than the
# query itself (bench/README.md).
LIST_PAGE = f"""
SELECT id, user_id, title, model_tag, is_favorited, created_at, updated_at FROM conversations
WHERE {owned(1)} ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3
"""
CONVERSATION = f"SELECT * FROM conversations WHERE id = $1 AND {owned(2)}"
# Columns the old service left nullable are shown as 0 / "" rather than null.
MESSAGES = f"""
SELECT messages.id, conversation_id, role, content, COALESCE(token_count, 0) AS token_count,
       COALESCE(messages.model_tag, '') AS model_tag, COALESCE(inference_time_ms, 0) AS inference_time_ms,
       COALESCE(time_to_first_token_ms, 0) AS time_to_first_token_ms, status, messages.created_at
FROM messages JOIN conversations ON conversations.id = messages.conversation_id
WHERE conversation_id = $1 AND {owned(2)} ORDER BY messages.created_at
"""


async def list_page(user_id: UUID, limit: int, offset: int) -> list[dict[str, Any]]:
    return await sql.fetch(LIST_PAGE, user_id, limit, offset)


def group_by_day(conversations: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Conversations keyed by the UTC date of their last activity, keeping their order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for conversation in conversations:
        groups[conversation["updated_at"].astimezone(timezone.utc).date().isoformat()].append(conversation)
    return dict(groups)


async def create(user_id: UUID, title: str | None, model_tag: str | None) -> Conversation:
    return await Conversation.create(
        user_id=user_id, title=title or DEFAULT_TITLE, model_tag=model_tag or DEFAULT_MODEL_TAG
    )


async def get(user_id: UUID, conversation_id: UUID) -> Conversation:
    found = await sql.fetch_objects(Conversation, CONVERSATION, conversation_id, user_id)
    if not found:
        raise ConversationNotFound()
    return found[0]


async def messages_of(conversation: Conversation, running: RunningAnswer | None = None) -> list[dict[str, Any]]:
    """The messages as rows, oldest first, then the answer being generated (unless it was stored meanwhile)."""
    history = await sql.fetch(MESSAGES, conversation.id, conversation.user_id)
    if running is not None and all(message["id"] != running.message_id for message in history):
        history.append(_generating_message(conversation, running))
    return history


def _generating_message(conversation: Conversation, running: RunningAnswer) -> dict[str, Any]:
    """The answer being generated, shown as the conversation's newest message: the id it will be
    stored under and the text so far."""
    return {
        "id": running.message_id,
        "conversation_id": conversation.id,
        "role": Role.ASSISTANT.value,
        "content": running.content,
        "token_count": 0,
        "model_tag": conversation.model_tag,
        "inference_time_ms": 0,
        "time_to_first_token_ms": 0,
        "status": "generating",
        "created_at": now(),
    }


async def rename(conversation: Conversation, title: str) -> None:
    changed = {"title": title, "title_set_by_user": True, "updated_at": now()}
    if not await Owner(conversation.user_id).conversations().filter(id=conversation.id).update(**changed):
        raise ConversationNotFound()  # deleted since it was read
    conversation.update_from_dict(changed)


async def delete(conversation: Conversation) -> None:
    if not await Owner(conversation.user_id).conversations().filter(id=conversation.id).delete():
        raise ConversationNotFound()  # deleted since it was read
