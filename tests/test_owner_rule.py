"""The owner rule: every statement that reads or writes a conversation or its messages carries the
owner's id. Each is run here with Bob's id on Alice's conversation: nothing of hers comes back and
nothing in the database changes. A statement added to samosachat_api needs a row here (or a place
on the allow-list, with a comment at the statement saying why it is not per-user)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tortoise.timezone import now

import samosachat_api
from samosachat_api import sql
from samosachat_api.answers import leases
from samosachat_api.errors import ConversationNotFound
from samosachat_api.models import Conversation, Message, MessageStatus
from samosachat_api.services import conversations, messages

IDEMPOTENCY_KEY = "alice-question"
LEASE_PROCESS = "server"  # the process generating Alice's answer


@dataclass(frozen=True)
class Scene:
    alice: uuid.UUID
    bob: uuid.UUID
    conversation: uuid.UUID  # Alice's: a question, its answer, and an answer being generated
    answer: uuid.UUID

    def bobs_view(self) -> Conversation:
        """Alice's conversation as a service function would get it with Bob's id."""
        return Conversation(id=self.conversation, user_id=self.bob)


async def not_found(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ConversationNotFound:
        return None


async def not_bobs(rows: Awaitable[list[dict[str, Any]]], scene: Scene) -> list[dict[str, Any]]:
    return [row for row in await rows if row["user_id"] != scene.bob]


def bobs_answer(scene: Scene) -> messages.StoredAnswer:
    return messages.StoredAnswer(
        uuid.uuid4(), MessageStatus.COMPLETE, scene.bob, scene.conversation, "Bob's answer",
        token_count=1, inference_time_ms=1, time_to_first_token_ms=1, model_tag="default", replaces=scene.answer,
    )


Check = Callable[[Scene], Awaitable[Any]]

# Each statement constant, run as its service runs it, with Bob's id: what of Alice's it read or changed.
STATEMENTS: dict[str, Check] = {
    "services.conversations.LIST_PAGE": lambda s: not_bobs(conversations.list_page(s.bob, 100, 0), s),
    "services.conversations.CONVERSATION": lambda s: not_found(conversations.get(s.bob, s.conversation)),
    "services.conversations.MESSAGES": lambda s: conversations.messages_of(s.bobs_view()),
    "services.messages.RECENT": lambda s: messages.recent(s.bobs_view(), 10),
    "services.messages.INSERT_ANSWER": lambda s: messages.store_answer(bobs_answer(s)),
    "services.messages.TOUCH": lambda s: sql.execute(messages.TOUCH, now(), s.conversation, s.bob),
    "services.messages.TOUCH_AND_TITLE": lambda s: sql.execute(
        messages.TOUCH_AND_TITLE, now(), s.conversation, s.bob, "Bob's title"
    ),
    "services.messages.TOUCH_AND_INSERT_QUESTION": lambda s: not_found(
        messages.add_user_message(s.bobs_view(), "Bob's question", 10)
    ),
    "answers.leases.CLAIM": lambda s: leases.claim(s.conversation, s.bob, 3, LEASE_PROCESS, f"{LEASE_PROCESS}:2", 30),
    "answers.leases.RUNNING_FOR_USER": lambda s: leases.running_for_user(s.bob),
}

# The owner-scoped Tortoise helpers, where the services use them.
HELPERS: dict[str, Check] = {
    "Conversation.owned_by: rename": lambda s: not_found(conversations.rename(s.bobs_view(), "Bob's title")),
    "Conversation.owned_by: delete": lambda s: not_found(conversations.delete(s.bobs_view())),
    "Message.in_conversation_of: a question sent again": lambda s: not_found(
        messages.add_user_message(s.bobs_view(), "Bob's question", 10, IDEMPOTENCY_KEY)
    ),
    "Message.in_conversation_of: the answer a new one replaces": lambda s: (
        Message.in_conversation_of(s.bob, s.conversation).filter(id=s.answer).delete()
    ),
}

# Statements that are not per-user; the comment at each says why:
NOT_PER_USER = {
    "answers.leases.RELEASE",  # this process's own lease, taken by the owner-scoped CLAIM
}
# Not per-user either, written with Tortoise (so not found by the check below):
#   services.admin.users_page and its helpers: every user's counts, for the admin listing
#   answers.leases.renew: the leases of the answers this process generates
# services.conversations.create inserts the caller's own conversation: there is no other user's to reach.

SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b")
TABLES = re.compile(r"\b(conversations|messages)\b")


def statements_on_conversations_or_messages() -> set[str]:
    """The module-level SQL constants of samosachat_api that name either table."""
    found = set()
    for module in pkgutil.walk_packages(samosachat_api.__path__, "samosachat_api."):
        for name, value in vars(importlib.import_module(module.name)).items():
            if not name.startswith("__") and isinstance(value, str) and SQL.search(value) and TABLES.search(value):
                found.add(f"{module.name.removeprefix('samosachat_api.')}.{name}")
    return found


def test_every_statement_on_conversations_or_messages_has_a_row():
    assert statements_on_conversations_or_messages() == STATEMENTS.keys() | NOT_PER_USER


@pytest.fixture
async def scene(client, alice, bob, db) -> Scene:
    alices, bobs = [(await client.post("/api/conversations", json={}, headers=h)).json() for h in (alice, bob)]
    conversation, answer = uuid.UUID(alices["id"]), uuid.uuid4()
    insert = "INSERT INTO messages (id, conversation_id, role, content, idempotency_key) VALUES ($1, $2, $3, $4, $5)"
    await db.execute(insert, uuid.uuid4(), conversation, "user", "Alice's question", IDEMPOTENCY_KEY)
    await db.execute(insert, answer, conversation, "assistant", "Alice's answer", None)
    await db.execute(insert, uuid.uuid4(), uuid.UUID(bobs["id"]), "user", "Bob's own question", None)
    await db.execute(
        "UPDATE conversations SET answer_lease_owner = $1, answer_lease_until = now() + interval '1 minute' WHERE id = $2",
        f"{LEASE_PROCESS}:1", conversation,
    )
    return Scene(uuid.UUID(alices["user_id"]), uuid.UUID(bobs["user_id"]), conversation, answer)


async def everything(db) -> list[list[dict[str, Any]]]:
    return [[dict(row) for row in await db.fetch(f"SELECT * FROM {table} ORDER BY id")] for table in ("conversations", "messages")]


@pytest.mark.parametrize("check", [*STATEMENTS, *HELPERS])
async def test_another_users_id_reads_and_changes_nothing(check, scene, db):
    before = await everything(db)
    assert not await {**STATEMENTS, **HELPERS}[check](scene)
    assert await everything(db) == before
