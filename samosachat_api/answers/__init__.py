"""The answers being generated: one interface (`Answers`), two implementations.

Answers
 ├── LocalAnswers   no REDIS_URL: answers live in the process that generates them; the
 │                  one-answer-per-conversation rule also holds across processes (a lease in the database)
 └── RedisAnswers   REDIS_URL: claims, events and stop requests are shared through Redis, so any
                    process follows, stops and sees an answer, and stores it if its process dies

The routes and the generation see `Answers`, `Answer` (publish, read_upstream) and `Batch` only.
"""

from __future__ import annotations

from ..settings import Settings
from .answer import Answer, Batch
from .base import STORE_GRACE_SECONDS, Answers, RunningAnswer
from .local import LocalAnswers
from .redis import RedisAnswers, Salvage

__all__ = ["STORE_GRACE_SECONDS", "Answer", "Answers", "Batch", "RunningAnswer", "build_answers"]


def build_answers(settings: Settings, salvage: Salvage) -> Answers:
    """The implementation the settings ask for; `salvage` stores a dead process's answer."""
    if settings.redis_url:
        return RedisAnswers.from_url(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            pool_size=settings.redis_pool_size,
            heartbeat=settings.sse_heartbeat_seconds,
            max_per_user=settings.max_running_answers_per_user,
            lease_seconds=settings.answer_lease_seconds,
            salvage=salvage,
        )
    return LocalAnswers(
        settings.sse_heartbeat_seconds, settings.max_running_answers_per_user, settings.answer_lease_seconds
    )
