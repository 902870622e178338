"""Answers kept in this process; the one-answer rule also holds across processes (the database).

Followers, stop and snapshots only see this process's answers: sharing them needs REDIS_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from uuid import UUID

import structlog

from ..errors import AnswerInProgress, TooManyAnswers
from . import leases
from .answer import Answer, id_base
from .base import Answers

log = structlog.get_logger(__name__)


class LocalAnswers(Answers):
    def __init__(self, heartbeat: float, max_per_user: int, lease_seconds: float) -> None:
        super().__init__(heartbeat, max_per_user)
        self._lease_seconds = lease_seconds
        self._process = uuid.uuid4().hex[:16]
        self._numbers = itertools.count(random.randrange(1_000_000))
        self._owners: dict[UUID, str] = {}
        self._renewing: asyncio.Task | None = None

    def _new_answer(self, conversation_id: UUID, user_id: UUID) -> Answer:
        number = next(self._numbers)
        answer = Answer(conversation_id, user_id, id_base(number))
        self._owners[conversation_id] = f"{self._process}:{number}"
        return answer

    async def _claim(self, answer: Answer) -> None:
        owner = self._owners[answer.conversation_id]
        try:
            claimed = await leases.claim(
                answer.conversation_id, answer.user_id, self._max_per_user, self._process, owner, self._lease_seconds
            )
            if not claimed:  # which of the two reasons
                if await leases.running_for_user(answer.user_id) >= self._max_per_user:
                    raise TooManyAnswers()
                raise AnswerInProgress()
        except BaseException:
            self._owners.pop(answer.conversation_id, None)
            raise

    async def _release(self, answer: Answer) -> None:
        owner = self._owners.pop(answer.conversation_id, None)
        if owner is None:
            return
        try:
            await leases.release(answer.conversation_id, owner)
        except Exception as exc:  # it lapses on its own
            log.warning("answer_lease_not_released", error=type(exc).__name__)

    async def open(self) -> None:
        self._renewing = asyncio.create_task(self._renew_leases(), name="answers.leases")

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            if not self._owners:
                continue
            try:
                await leases.renew(self._process, self._lease_seconds)
            except Exception as exc:  # the database is away; try again next time
                log.warning("answer_leases_not_renewed", error=type(exc).__name__)
