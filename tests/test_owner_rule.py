"""The owner rule: every statement that reads or writes a conversation or its messages carries the
owner's id. Each is run here with Bob's id on Alice's conversation: nothing of hers comes back and
nothing in the database changes. A statement added to samosachat_api needs a row here (or a place
on the allow-list, with a comment at the statement saying why it is not per-user), and carries the
condition owner.owned gives; a Tortoise query goes through owner.Owner, or on the allow-list."""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tortoise.timezone import now

import samosachat_api
from samosachat_api import sql
from samosachat_api.answers import leases
from samosachat_api.errors import ConversationNotFound
from samosachat_api.models import Conversation, Message, MessageStatus
from samosachat_api.conversations import store as conversations
from samosachat_api.messages import store as messages
from samosachat_api.owner import Owner, owned

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
    "conversations.store.LIST_PAGE": lambda s: not_bobs(conversations.list_page(s.bob, 100, 0), s),
    "conversations.store.CONVERSATION": lambda s: not_found(conversations.get(s.bob, s.conversation)),
    "conversations.store.MESSAGES": lambda s: conversations.messages_of(s.bobs_view()),
    "messages.store.RECENT": lambda s: messages.recent(s.bobs_view(), 10),
    "messages.store.INSERT_ANSWER": lambda s: messages.store_answer(bobs_answer(s)),
    "messages.store.TOUCH": lambda s: sql.execute(messages.TOUCH, now(), s.conversation, s.bob),
    "messages.store.TOUCH_AND_TITLE": lambda s: sql.execute(
        messages.TOUCH_AND_TITLE, now(), s.conversation, s.bob, "Bob's title"
    ),
    "messages.store.TOUCH_AND_INSERT_QUESTION": lambda s: not_found(
        messages.add_user_message(s.bobs_view(), "Bob's question", 10)
    ),
    "answers.leases.CLAIM": lambda s: leases.claim(s.conversation, s.bob, 3, LEASE_PROCESS, f"{LEASE_PROCESS}:2", 30),
    "answers.leases.RUNNING_FOR_USER": lambda s: leases.running_for_user(s.bob),
}

# The owner-scoped querysets, where the stores use them.
HELPERS: dict[str, Check] = {
    "Owner.conversations: rename": lambda s: not_found(conversations.rename(s.bobs_view(), "Bob's title")),
    "Owner.conversations: delete": lambda s: not_found(conversations.delete(s.bobs_view())),
    "Owner.messages: a question sent again": lambda s: not_found(
        messages.add_user_message(s.bobs_view(), "Bob's question", 10, IDEMPOTENCY_KEY)
    ),
    "Owner.messages: the answer a new one replaces": lambda s: Owner(s.bob).messages(s.conversation).filter(id=s.answer).delete(),
}

# Statements that are not per-user; the comment at each says why:
NOT_PER_USER = {
    "answers.leases.RELEASE",  # this process's own lease, taken by the owner-scoped CLAIM
}
# Queries written with Tortoise on the models themselves rather than through Owner; why:
UNSCOPED_QUERIES = {
    "admin/store.py": 5,  # every user's counts, for the admin listing
    "answers/leases.py": 1,  # renew: the leases of the answers this process generates, every user's
    "conversations/store.py": 1,  # create: the caller's own new conversation, no other user's to reach
}

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


def test_every_statement_carries_the_owner_condition():
    """Each is written with owner.owned(n), which this pattern matches (and its own test proves)."""
    condition = re.compile(r"\bconversations\.user_id = \$\d+")
    assert condition.fullmatch(owned(7))
    missing = [name for name in STATEMENTS if not condition.search(statement(name))]
    assert missing == []


ORM_QUERY = re.compile(r"\b(Conversation|Message)\.(filter|all|get|get_or_none|exclude|annotate|create|select_for_update)\(")


def test_the_stores_query_the_models_only_through_owner():
    package = Path(samosachat_api.__file__).parent
    found = {}
    for source in sorted(package.rglob("*.py")):
        if source.name != "owner.py" and (count := len(ORM_QUERY.findall(source.read_text()))):
            found[str(source.relative_to(package))] = count
    assert found == UNSCOPED_QUERIES


def statement(name: str) -> str:
    module, _, constant = name.rpartition(".")
    return getattr(importlib.import_module(f"samosachat_api.{module}"), constant)


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
