"""Conversations of one user: every function takes the owner's id and never crosses it."""

from __future__ import annotations

from collections import defaultdict
from datetime import timezone
from typing import Any
from uuid import UUID

from tortoise.timezone import now

from ..answers import RunningAnswer
from ..errors import ConversationNotFound
from ..models import DEFAULT_MODEL_TAG, DEFAULT_TITLE, Conversation, Message, Role


async def list_page(user_id: UUID, limit: int, offset: int) -> list[Conversation]:
    query = Conversation.owned_by(user_id).order_by("-updated_at", "-id")
    return await query.offset(offset).limit(limit)


def group_by_day(conversations: list[Conversation]) -> dict[str, list[Conversation]]:
    """Conversations keyed by the UTC date of their last activity, keeping their order."""
    groups: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        groups[conversation.updated_at.astimezone(timezone.utc).date().isoformat()].append(conversation)
    return dict(groups)


async def create(user_id: UUID, title: str | None, model_tag: str | None) -> Conversation:
    return await Conversation.create(
        user_id=user_id, title=title or DEFAULT_TITLE, model_tag=model_tag or DEFAULT_MODEL_TAG
    )


async def get(user_id: UUID, conversation_id: UUID) -> Conversation:
    conversation = await Conversation.owned_by(user_id).get_or_none(id=conversation_id)
    if conversation is None:
        raise ConversationNotFound()
    return conversation


async def messages_of(conversation: Conversation, running: RunningAnswer | None = None) -> list[Message | dict[str, Any]]:
    """The messages, oldest first, then the answer being generated (unless it was stored meanwhile)."""
    history: list = await Message.in_conversation_of(conversation.user_id, conversation.id).order_by("created_at")
    if running is not None and all(message.id != running.message_id for message in history):
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
        "model_tag": conversation.model_tag,
        "status": "generating",
        "created_at": now(),
    }


async def rename(conversation: Conversation, title: str) -> None:
    changed = {"title": title, "title_set_by_user": True, "updated_at": now()}
    if not await Conversation.owned_by(conversation.user_id).filter(id=conversation.id).update(**changed):
        raise ConversationNotFound()  # deleted since it was read
    conversation.update_from_dict(changed)


async def delete(conversation: Conversation) -> None:
    if not await Conversation.owned_by(conversation.user_id).filter(id=conversation.id).delete():
        raise ConversationNotFound()  # deleted since it was read
