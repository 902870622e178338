"""Messages of a conversation: the user's questions and the stored answers."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from uuid import UUID, uuid4

from tortoise.exceptions import IntegrityError
from tortoise.timezone import now
from tortoise.transactions import in_transaction

from .. import sql
from ..errors import AlreadyAnswered, AnswerInProgress, ConversationNotFound, NothingToAnswer
from ..models import DEFAULT_TITLE, Conversation, Message, MessageStatus, Role
from ..owner import Owner, owned

TITLE_LENGTH = 80

# The statements of every question and answer are written in SQL (see samosachat_api/sql.py).
RECENT = f"""
SELECT messages.* FROM messages JOIN conversations ON conversations.id = messages.conversation_id
WHERE messages.conversation_id = $1 AND {owned(2)} ORDER BY messages.created_at DESC LIMIT $3
"""
# Only into a conversation of the answer's owner ($11). Written with WITH, so that Tortoise counts
# the rows it returns (for an INSERT it reads the OID of `INSERT 0 1`): hence RETURNING id.
INSERT_ANSWER = f"""
WITH owned AS (SELECT id FROM conversations WHERE id = $2 AND {owned(11)})
INSERT INTO messages (id, conversation_id, role, content, status, token_count, inference_time_ms,
                      time_to_first_token_ms, model_tag, created_at)
SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10 FROM owned RETURNING id
"""
TOUCH = f"UPDATE conversations SET updated_at = $1 WHERE id = $2 AND {owned(3)}"
# The title is decided here, so that a rename made meanwhile in another tab wins; NULL keeps it.
TOUCH_AND_TITLE = f"""
UPDATE conversations SET updated_at = $1, title = CASE WHEN title_set_by_user THEN title ELSE COALESCE($4, title) END
WHERE id = $2 AND {owned(3)}
"""
# Both in one statement, so that neither happens without the other: TOUCH_AND_TITLE's values, then
# the question's. Tortoise counts the rows a statement starting
# with WITH returns: hence RETURNING id.
TOUCH_AND_INSERT_QUESTION = f"""
WITH touched AS ({TOUCH_AND_TITLE} RETURNING id)
INSERT INTO messages (id, conversation_id, role, content, status, idempotency_key, created_at)
SELECT $5, $6, $7, $8, $9, $10, $11 FROM touched RETURNING id
"""


def title_from(question: str) -> str:
    """A conversation's title from its first question: whitespace collapsed, at most
    TITLE_LENGTH characters, cut at a word boundary where there is one."""
    title = " ".join(question.split())
    if len(title) > TITLE_LENGTH:
        head = title[: TITLE_LENGTH + 1]
        title = head.rsplit(" ", 1)[0] if " " in head else head[:TITLE_LENGTH]
    return title or DEFAULT_TITLE


async def add_user_message(
    conversation: Conversation, content: str, history_limit: int, idempotency_key: str | None = None
) -> list[Message]:
    """Store the question and bump updated_at; returns the newest `history_limit` messages,
    oldest first, ending with the question. The first question titles the conversation unless it
    was renamed (a title given at creation is only a placeholder).

    A question sent again with the same idempotency key is not stored again: it is answered if it
    has no answer yet (the first try failed before its answer started), else refused."""
    if idempotency_key and await _question_with_key(conversation, idempotency_key) is not None:
        return await recent(conversation, history_limit)
    question = Message(id=uuid4(), conversation_id=conversation.id, role=Role.USER, content=content, created_at=now())
    earlier = await recent(conversation, history_limit)
    title = None if earlier else title_from(content)
    if not await _touch_and_insert(question, conversation.user_id, title, idempotency_key):
        raise ConversationNotFound()  # deleted since it was read
    return [*earlier, question][-history_limit:]


async def _touch_and_insert(question: Message, owner: UUID, title: str | None, idempotency_key: str | None) -> bool:
    """Bump the conversation's updated_at (and title it) and store the question: both or neither.
    False if the conversation is gone."""
    at, conversation_id = question.created_at, question.conversation_id
    touch = (at, conversation_id, owner, title)
    insert = (
        question.id, conversation_id, Role.USER.value, question.content, MessageStatus.COMPLETE.value,
        idempotency_key, at,
    )
    try:
        return await sql.execute(TOUCH_AND_INSERT_QUESTION, *touch, *insert) == 1
    except IntegrityError:  # the same Idempotency-Key, stored meanwhile by a request now answering it
        raise AnswerInProgress() from None


async def _question_with_key(conversation: Conversation, key: str) -> Message | None:
    messages = Owner(conversation.user_id).messages(conversation.id)
    stored = await messages.get_or_none(idempotency_key=key)
    if stored is not None and await messages.filter(created_at__gt=stored.created_at).exists():
        raise AlreadyAnswered()
    return stored


async def recent(conversation: Conversation, limit: int) -> list[Message]:
    """The newest `limit` messages, oldest first."""
    newest_first = await sql.fetch_objects(Message, RECENT, conversation.id, conversation.user_id, limit)
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

    id: UUID  # chosen when the answer started: clients see it while it is generated
    status: MessageStatus
    user_id: UUID
    conversation_id: UUID
    content: str
    token_count: int
    inference_time_ms: int
    time_to_first_token_ms: int | None
    model_tag: str
    replaces: UUID | None = None


async def store_answer(answer: StoredAnswer) -> bool:
    """Store an assistant answer (and drop the one it replaces, atomically); False if the
    conversation is gone or the answer was stored already (by a process salvaging it)."""
    owner, conversation_id = answer.user_id, answer.conversation_id
    try:
        async with in_transaction() if answer.replaces else contextlib.nullcontext() as connection:
            stored_at = now()
            inserted = await sql.execute(
                INSERT_ANSWER, answer.id, conversation_id, Role.ASSISTANT.value, answer.content, answer.status.value,
                answer.token_count, answer.inference_time_ms, answer.time_to_first_token_ms, answer.model_tag, stored_at,
                owner, connection=connection,
            )
            if not inserted:
                return False
            if answer.replaces is not None:
                await Owner(owner).messages(conversation_id).filter(id=answer.replaces).delete()
            await sql.execute(TOUCH, stored_at, conversation_id, owner, connection=connection)
    except IntegrityError:  # the caller logs it
        return False
    return True
