"""The interface the routes and the generation use, and what both implementations share.

An answer is claimed (one per conversation, at most MAX_RUNNING_ANSWERS_PER_USER per user),
prepared (the question stored, the history chosen), then generated in a task of its own that
clients attach to. The implementations differ in where the claim lives and whether other
processes can follow, stop and see the answer: `LocalAnswers` (this process; the claim also in
the database) and `RedisAnswers` (shared through Redis).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from uuid import UUID

import structlog

from ..errors import AnswerInProgress, ShuttingDown, TooManyAnswers
from .answer import Answer, Batch, position_after

log = structlog.get_logger(__name__)

STORE_GRACE_SECONDS = 5  # after the shutdown deadline, time left to store what was stopped
STOP_WAIT_SECONDS = 2.0  # stop returns once the answer is stored and the conversation free, or after this
DONE = json.dumps({"done": True})


class Job(Protocol):
    def to_record(self) -> dict[str, Any]:
        """What it takes to store the answer without the generating process (JSON-able)."""


JobT = TypeVar("JobT", bound=Job)


@dataclass(frozen=True)
class RunningAnswer:
    """A snapshot of the answer being generated for a conversation."""

    conversation_id: UUID
    content: str  # the tokens so far
    message_id: UUID | None  # the id it will be stored under, when the job chose one


def text_of(events: list[str]) -> str:
    """The tokens of an answer's events, joined."""
    tokens = []
    for data in events:
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if isinstance(event, dict) and "token" in event:
            tokens.append(str(event["token"]))
    return "".join(tokens)


def snapshot(conversation_id: UUID, events: list[str], record: dict[str, Any] | None) -> RunningAnswer:
    message_id = (record or {}).get("message_id")
    return RunningAnswer(conversation_id, text_of(events), UUID(str(message_id)) if message_id else None)


class Answers:
    """The answers being generated. This class runs the answers of this process; subclasses say
    how they are claimed and released, and how answers of other processes are reached."""

    def __init__(self, heartbeat: float, max_per_user: int) -> None:
        self._heartbeat = heartbeat
        self._max_per_user = max_per_user
        self._answers: dict[UUID, Answer] = {}
        self._draining = False

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def draining(self) -> bool:
        return self._draining

    # -- what the routes call ---------------------------------------------------------------

    async def start(
        self,
        conversation_id: UUID,
        user_id: UUID,
        prepare: Callable[[], Awaitable[JobT]],
        generate: Callable[[Answer, JobT], Awaitable[None]],
    ) -> AsyncIterator[Batch]:
        """Claim the conversation, run `prepare` (store the question, choose the history), then
        `generate` in a task of its own; returns the answer's events once `prepare` succeeded.

        Raises AnswerInProgress, TooManyAnswers, ShuttingDown during a drain, AnswersUnavailable
        when the claim cannot be made, and whatever `prepare` raises (the conversation is then
        free again).
        """
        if self._draining:
            raise ShuttingDown()
        if conversation_id in self._answers:
            raise AnswerInProgress()
        if sum(a.user_id == user_id for a in self._answers.values()) >= self._max_per_user:
            raise TooManyAnswers()
        answer = self._answers[conversation_id] = self._new_answer(conversation_id, user_id)
        prepared = asyncio.get_running_loop().create_future()
        prepared.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody waits
        answer.task = asyncio.create_task(self._run(answer, prepared, prepare, generate))
        # Shielded: a client that goes away now must not leave its question stored but unanswered.
        await asyncio.shield(prepared)
        return answer.follow(0, self._heartbeat)

    async def follow(self, conversation_id: UUID, after: int) -> AsyncIterator[Batch] | None:
        """The events of the answer being generated after event id `after` (from the start when
        `after` is not one of its ids); None if there is none."""
        answer = self._answers.get(conversation_id)
        if answer is not None:
            if not answer.started:
                return None
            return answer.follow(position_after(after, answer.base), self._heartbeat)
        return await self._follow_elsewhere(conversation_id, after)

    async def stop(self, conversation_id: UUID) -> bool:
        """End the answer; returns once it is stored and the conversation is free (bounded).
        False if nothing was running."""
        answer = self._answers.get(conversation_id)
        if answer is None:
            return await self._stop_elsewhere(conversation_id)
        answer.stop()
        await asyncio.wait([answer.task], timeout=STOP_WAIT_SECONDS)
        return True

    async def running(self, conversation_id: UUID) -> RunningAnswer | None:
        """The answer being generated for the conversation, as it stands; None if there is none."""
        answer = self._answers.get(conversation_id)
        if answer is not None:
            if not answer.started:
                return None
            return snapshot(conversation_id, answer.events, answer.record)
        return await self._running_elsewhere(conversation_id)

    async def drain(self, timeout: float) -> None:
        """Refuse new answers; let running ones finish; stop those still running after `timeout`."""
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._answers:
            log.info("draining_answers", running=len(self._answers), timeout=timeout)
        while self._answers and loop.time() < deadline:
            await asyncio.wait(self._running_tasks(), timeout=deadline - loop.time())
        if self._answers:
            log.warning("stopping_answers_at_deadline", running=len(self._answers))
            for answer in self._answers.values():
                answer.stop()
            await asyncio.wait(self._running_tasks(), timeout=STORE_GRACE_SECONDS)

    async def open(self) -> None:
        """Start the background work (lease renewal, ...); called once the worker's loop runs."""

    async def close(self) -> None:
        """Stop the background work; called after the drain."""

    async def checks(self) -> dict[str, bool]:
        """What readiness depends on besides the database, by name."""
        return {}

    # -- what the implementations provide -------------------------------------------------

    def _new_answer(self, conversation_id: UUID, user_id: UUID) -> Answer:
        raise NotImplementedError

    async def _claim(self, answer: Answer) -> None:
        """Claim the conversation across processes and set `answer.base`; raise if it is taken."""
        raise NotImplementedError

    async def _prepared(self, answer: Answer) -> None:
        """The question is stored and `answer.record` set; must not raise."""

    async def _release(self, answer: Answer) -> None:
        """Share the last events and free the conversation; must not raise."""
        raise NotImplementedError

    async def _follow_elsewhere(self, conversation_id: UUID, after: int) -> AsyncIterator[Batch] | None:
        return None

    async def _stop_elsewhere(self, conversation_id: UUID) -> bool:
        return False

    async def _running_elsewhere(self, conversation_id: UUID) -> RunningAnswer | None:
        return None

    # -- the run of one answer ----------------------------------------------------------------

    async def _run(self, answer: Answer, prepared: asyncio.Future, prepare, generate) -> None:
        claimed = False
        try:
            try:
                await self._claim(answer)
                claimed = True
                job = await prepare()
            except Exception as exc:  # the handler that started the answer reports it
                prepared.set_exception(exc)
                return
            answer.record = job.to_record()
            await self._prepared(answer)
            answer.started = True
            prepared.set_result(None)
            await generate(answer, job)
        except Exception:
            log.exception("generation_failed", conversation_id=str(answer.conversation_id))
        finally:
            if not prepared.done():  # cancelled while claiming or preparing
                prepared.cancel()
            # Out of this process's table before anything is awaited: a reader who sees `done`
            # and asks again must not be refused by this table.
            del self._answers[answer.conversation_id]
            if claimed:
                await self._release(answer)
            answer.finish()

    def _running_tasks(self) -> list[asyncio.Task]:
        return [answer.task for answer in self._answers.values()]
