"""Messages of a conversation: the user's turns, the stored answers, and the history sent upstream."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Case, F, Value, When
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from ..errors import ConversationNotFound, NothingToAnswer
from ..models import DEFAULT_TITLE, Conversation, Message, Role

TITLE_LENGTH = 80


def history_for_model(messages: list[Message], max_characters: int) -> list[dict[str, str]]:
    """The newest messages, oldest first, dropping older ones once their characters exceed
    `max_characters`; the newest is always kept, however long it is."""
    kept: list[Message] = []
    characters = 0
    for message in reversed(messages):
        characters += len(message.content)
        if kept and characters > max_characters:
            break
        kept.append(message)
    return [{"role": m.role.value, "content": m.content} for m in reversed(kept)]


async def add_user_message(conversation: Conversation, content: str) -> Message:
    """Store the question, title a conversation that still has the default title, bump updated_at.

    Two statements and no transaction: the question is what matters, and the answer's store
    bumps updated_at again.
    """
    try:
        message = await Message.create(conversation_id=conversation.id, role=Role.USER, content=content)
    except IntegrityError:  # deleted since it was read
        raise ConversationNotFound() from None
    # The title is decided in the UPDATE itself, so that a rename made meanwhile in another tab wins.
    title = Case(When(title=DEFAULT_TITLE, then=Value(content[:TITLE_LENGTH])), default=F("title"))
    await Conversation.owned_by(conversation.user_id).filter(id=conversation.id).update(title=title, updated_at=now())
    return message


async def recent(conversation: Conversation, limit: int) -> list[Message]:
    """The newest `limit` messages, oldest first."""
    newest_first = await Message.in_conversation_of(conversation.user_id, conversation.id).order_by("-created_at").limit(limit)
    return newest_first[::-1]


async def history_for_regenerate(conversation: Conversation, limit: int) -> tuple[list[Message], UUID | None]:
    """The history to answer again, and the newest assistant answer it would replace (if any)."""
    history = await recent(conversation, limit + 1)
    replaced = None
    if history and history[-1].role == Role.ASSISTANT:
        replaced = history.pop().id
    if not history or history[-1].role != Role.USER:
        raise NothingToAnswer()
    return history[-limit:], replaced


@dataclass(frozen=True)
class StoredAnswer:
    """An assistant answer as it is stored; `replaces` is the answer a regenerated one supersedes."""

    user_id: UUID
    conversation_id: UUID
    content: str
    token_count: int
    inference_time_ms: int
    time_to_first_token_ms: int | None
    model_tag: str
    replaces: UUID | None = None


async def store_answer(answer: StoredAnswer) -> Message | None:
    """Store an assistant answer (and drop the one it replaces, atomically); None if the
    conversation is gone."""
    owner, conversation_id = answer.user_id, answer.conversation_id
    try:
        async with in_transaction() if answer.replaces else contextlib.nullcontext():
            message = await Message.create(
                conversation_id=conversation_id,
                role=Role.ASSISTANT,
                content=answer.content,
                token_count=answer.token_count,
                inference_time_ms=answer.inference_time_ms,
                time_to_first_token_ms=answer.time_to_first_token_ms,
                model_tag=answer.model_tag,
            )
            if answer.replaces is not None:
                await Message.in_conversation_of(owner, conversation_id).filter(id=answer.replaces).delete()
            await Conversation.owned_by(owner).filter(id=conversation_id).update(updated_at=now())
    except IntegrityError:  # the caller logs it
        return None
    return message
