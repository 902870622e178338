"""The one-answer-per-conversation claim in the database, for several processes without Redis.

A conversation is claimed by a conditional UPDATE of its lease columns: it succeeds only when no
lease is held, the lease has lapsed, or the lease belongs to this process (which knows its own
answers). Owners are `<process>:<answer>`; the process renews its leases while its answers run.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from tortoise.expressions import Q
from tortoise.timezone import now

from ..models import Conversation


def _free_for(process: str) -> Q:
    return (
        Q(answer_lease_until__isnull=True)
        | Q(answer_lease_until__lt=now())
        | Q(answer_lease_owner__startswith=f"{process}:")
    )


async def claim(conversation_id: UUID, process: str, owner: str, seconds: float) -> bool:
    """Take the conversation's lease for `owner`; False if another process holds it."""
    claimed = await Conversation.filter(Q(id=conversation_id) & _free_for(process)).update(
        answer_lease_owner=owner, answer_lease_until=now() + timedelta(seconds=seconds)
    )
    return claimed == 1


async def running_for_user(user_id: UUID) -> int:
    """Conversations of the user whose answer lease is held."""
    return await Conversation.owned_by(user_id).filter(answer_lease_until__gte=now()).count()


async def renew(process: str, seconds: float) -> None:
    """Extend every lease this process holds."""
    await Conversation.filter(answer_lease_owner__startswith=f"{process}:").update(
        answer_lease_until=now() + timedelta(seconds=seconds)
    )


async def release(conversation_id: UUID, owner: str) -> None:
    await Conversation.filter(id=conversation_id, answer_lease_owner=owner).update(
        answer_lease_owner=None, answer_lease_until=None
    )
