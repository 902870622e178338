"""The owner rule: a user reads and changes only their own conversations and their messages.

Every store's query goes through it: the ORM's as `Owner(user_id).conversations()` or
`.messages(conversation_id)`, hand-written SQL with `owned(n)`, the condition on the owner's id
given as the statement's n-th parameter. tests/test_owner_rule.py runs every statement of every
store with another user's id, and fails on a statement that has neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tortoise.queryset import QuerySet

from .models import Conversation, Message


@dataclass(frozen=True)
class Owner:
    user_id: UUID

    def conversations(self) -> QuerySet[Conversation]:
        return Conversation.filter(user_id=self.user_id)

    def messages(self, conversation_id: UUID) -> QuerySet[Message]:
        """The messages of one conversation, and only if it is the owner's."""
        return Message.filter(conversation_id=conversation_id, conversation__user_id=self.user_id)


def owned(parameter: int) -> str:
    """The SQL condition: the conversation (`conversations`, in the statement) is the owner's,
    whose id is the statement's parameter `$parameter`."""
    return f"conversations.user_id = ${parameter}"
