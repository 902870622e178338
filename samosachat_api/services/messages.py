"""Messages of a conversation: the user's turns, the stored answers, and the history sent upstream."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from ..errors import NothingToAnswer
from ..models import DEFAULT_TITLE, Conversation, Message, Role

log = structlog.get_logger(__name__)

TITLE_LENGTH = 80


@dataclass(frozen=True)
class HistoryWindow:
    max_messages: int
    max_characters: int

    def apply(self, messages: list[Message]) -> list[dict[str, str]]:
        """The newest messages, oldest first, within the count and character budget.

        The newest message is always kept, however long it is.
        """
        kept: list[Message] = []
        characters = 0
        for message in reversed(messages[-self.max_messages :]):
            characters += len(message.content)
            if kept and characters > self.max_characters:
                break
            kept.append(message)
        return [{"role": m.role.value, "content": m.content} for m in reversed(kept)]


async def add_user_message(conversation: Conversation, content: str) -> Message:
    async with in_transaction():
        message = await Message.create(conversation_id=conversation.id, role=Role.USER, content=content)
        if conversation.title == DEFAULT_TITLE:
            conversation.title = content[:TITLE_LENGTH]
        await conversation.save(update_fields=["title", "updated_at"])
    return message


async def recent(conversation_id: UUID, limit: int) -> list[Message]:
    newest_first = await Message.filter(conversation_id=conversation_id).order_by("-created_at").limit(limit)
    return newest_first[::-1]


async def history_for_regenerate(conversation_id: UUID, limit: int) -> tuple[list[Message], UUID | None]:
    """The history to answer again, and the newest assistant answer it would replace (if any)."""
    messages = await recent(conversation_id, limit + 1)
    replaced = None
    if messages and messages[-1].role == Role.ASSISTANT:
        replaced = messages.pop().id
    if not messages or messages[-1].role != Role.USER:
        raise NothingToAnswer()
    return messages[-limit:], replaced


async def store_answer(
    conversation_id: UUID,
    content: str,
    *,
    token_count: int,
    inference_time_ms: int,
    time_to_first_token_ms: int | None,
    model_tag: str,
    replaces: UUID | None = None,
) -> Message | None:
    """Store an assistant answer (and drop the one it replaces); None if the conversation is gone."""
    try:
        async with in_transaction():
            message = await Message.create(
                conversation_id=conversation_id,
                role=Role.ASSISTANT,
                content=content,
                token_count=token_count,
                inference_time_ms=inference_time_ms,
                time_to_first_token_ms=time_to_first_token_ms,
                model_tag=model_tag,
            )
            if replaces is not None:
                await Message.filter(id=replaces, conversation_id=conversation_id).delete()
            await Conversation.filter(id=conversation_id).update(updated_at=now())
    except IntegrityError:
        log.info("answer_dropped_conversation_deleted", conversation_id=str(conversation_id))
        return None
    return message
