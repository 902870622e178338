"""The one-answer-per-conversation claim in the database, for several processes without Redis.

A conversation is claimed by a conditional UPDATE of its lease columns: it succeeds only when no
lease is held, the lease has lapsed, or the lease belongs to this process (which knows its own
answers). Owners are `<process>:<answer>`; the process renews its leases while its answers run.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from tortoise.timezone import now

from .. import sql
from ..models import Conversation
from ..owner import owned


# The statements of every answer are written in SQL (see samosachat_api/sql.py); `renew`, once
# every few seconds, stays with Tortoise.
CLAIM = f"""
UPDATE conversations SET answer_lease_owner = $1, answer_lease_until = $2
WHERE id = $3 AND {owned(6)} AND (answer_lease_until IS NULL OR answer_lease_until < $4 OR answer_lease_owner LIKE $5)
  AND (SELECT COUNT(*) FROM conversations WHERE {owned(6)} AND answer_lease_until >= $4) < $7
"""
RUNNING_FOR_USER = f"SELECT COUNT(*) AS running FROM conversations WHERE {owned(1)} AND answer_lease_until >= $2"
# Not scoped by user: only this process's own lease (`<process>:<answer>`), taken by CLAIM, which is.
RELEASE = """
UPDATE conversations SET answer_lease_owner = NULL, answer_lease_until = NULL WHERE id = $1 AND answer_lease_owner = $2
"""


async def claim(conversation_id: UUID, user_id: UUID, max_per_user: int, process: str, owner: str, seconds: float) -> bool:
    """Take the conversation's lease for `owner`; False if another process holds it or the user
    already has `max_per_user` answers running (running_for_user tells which)."""
    at = now()
    until = at + timedelta(seconds=seconds)
    return await sql.execute(CLAIM, owner, until, conversation_id, at, f"{process}:%", user_id, max_per_user) == 1


async def running_for_user(user_id: UUID) -> int:
    """Conversations of the user whose answer lease is held."""
    rows = await sql.fetch(RUNNING_FOR_USER, user_id, now())
    return rows[0]["running"]


async def renew(process: str, seconds: float) -> None:
    """Extend every lease this process holds."""
    # Not scoped by user: the leases of every user's answers this process generates.
    await Conversation.filter(answer_lease_owner__startswith=f"{process}:").update(
        answer_lease_until=now() + timedelta(seconds=seconds)
    )


async def release(conversation_id: UUID, owner: str) -> None:
    await sql.execute(RELEASE, conversation_id, owner)
