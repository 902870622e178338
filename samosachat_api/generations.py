"""Answers being generated, one per conversation, each in a task of its own that clients attach to.

An answer is a list of events (JSON texts) that grows until it finishes; its event ids are
positions in that list, starting at 1. Clients read it from any id onwards, however many
attach, and the generation goes on whether or not anyone is reading. Everything about an
answer is released as soon as it finishes.

The routes use `Generations` only: start, follow (attach from an event id), stop, drain. This
in-process implementation could be replaced by one shared across workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from uuid import UUID

import structlog

from .errors import AnswerInProgress, ShuttingDown

log = structlog.get_logger(__name__)

STORE_GRACE_SECONDS = 5  # after the shutdown deadline, time left to store what was stopped

Job = TypeVar("Job")
# (first event id, events): the events that arrived since the last batch; none means a heartbeat.
Batch = tuple[int, list[str]]


class Answer:
    """One answer: the events published so far, and the readers waiting for more."""

    def __init__(self, conversation_id: UUID) -> None:
        self.conversation_id = conversation_id
        self.events: list[str] = []
        self.started = False  # prepared: the question is stored, the generation is under way
        self.finished = False
        self.stop_requested = False
        self.task: asyncio.Task | None = None  # the task generating it, set by Generations
        self._readers_waiting: list[asyncio.Future] = []
        self._upstream: asyncio.Future | None = None

    def publish(self, event: str) -> None:
        self.events.append(event)
        self._wake_readers()

    def finish(self) -> None:
        self.finished = True
        self._wake_readers()

    async def read_upstream(self, reading: Coroutine[Any, Any, None]) -> None:
        """Run the upstream read so that `stop()` can end it, and only it: storing goes on."""
        if self.stop_requested:  # stopped before it began
            reading.close()
            return
        self._upstream = asyncio.ensure_future(reading)
        try:
            await self._upstream
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # cancelled from outside, not by stop()
                raise
        finally:
            self._upstream = None

    def stop(self) -> None:
        self.stop_requested = True
        if self._upstream is not None:
            self._upstream.cancel()

    async def follow(self, after: int, heartbeat: float) -> AsyncIterator[Batch]:
        """Every event after `after`, live until the answer finishes, in batches."""
        sent = max(after, 0)
        while True:
            if sent < len(self.events):
                batch = self.events[sent:]
                yield sent + 1, batch
                sent += len(batch)
            elif self.finished:
                if sent > len(self.events) and self.events:  # asked from past the end: still end with `done`
                    yield len(self.events), self.events[-1:]
                return
            elif not await self._next_event(heartbeat):
                yield sent + 1, []

    def _wake_readers(self) -> None:
        for waiting in self._readers_waiting:
            if not waiting.done():
                waiting.set_result(None)
        self._readers_waiting.clear()

    async def _next_event(self, timeout: float) -> bool:
        """Wait for the next event or the end; False if `timeout` passed first."""
        waiting = asyncio.get_running_loop().create_future()
        self._readers_waiting.append(waiting)
        try:
            async with asyncio.timeout(timeout):
                await waiting
        except TimeoutError:
            return False
        return True


class Generations:
    """The answers of this process, by conversation."""

    def __init__(self, heartbeat: float) -> None:
        self._heartbeat = heartbeat
        self._answers: dict[UUID, Answer] = {}
        self._draining = False

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def draining(self) -> bool:
        return self._draining

    async def start(
        self,
        conversation_id: UUID,
        prepare: Callable[[], Awaitable[Job]],
        generate: Callable[[Answer, Job], Awaitable[None]],
    ) -> AsyncIterator[Batch]:
        """Claim the conversation, run `prepare` (store the question, choose the history), then
        `generate` in a task of its own; returns the answer's events once `prepare` succeeded.

        Raises AnswerInProgress if the conversation has an answer running, ShuttingDown during a
        drain, and whatever `prepare` raises (the conversation is then free again).
        """
        if self._draining:
            raise ShuttingDown()
        if conversation_id in self._answers:
            raise AnswerInProgress()
        answer = self._answers[conversation_id] = Answer(conversation_id)
        preparing = asyncio.ensure_future(prepare())
        answer.task = asyncio.create_task(self._run(answer, preparing, generate))
        # Shielded: a client that goes away now must not leave its question stored but unanswered.
        await asyncio.shield(preparing)
        return answer.follow(0, self._heartbeat)

    async def _run(self, answer: Answer, preparing: asyncio.Future, generate) -> None:
        try:
            try:
                job = await preparing
            except Exception:  # the handler that started the answer reports it
                return
            answer.started = True
            await generate(answer, job)
        except Exception:
            log.exception("generation_failed", conversation_id=str(answer.conversation_id))
        finally:
            answer.finish()
            del self._answers[answer.conversation_id]

    def follow(self, conversation_id: UUID, after: int) -> AsyncIterator[Batch] | None:
        """The events of the answer being generated, after event `after`; None if there is none."""
        answer = self._answers.get(conversation_id)
        if answer is None or not answer.started:
            return None
        return answer.follow(after, self._heartbeat)

    def stop(self, conversation_id: UUID) -> bool:
        """End the answer now; it keeps what it has. False if nothing is running."""
        answer = self._answers.get(conversation_id)
        if answer is None:
            return False
        answer.stop()
        return True

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

    def _running_tasks(self) -> list[asyncio.Task]:
        return [answer.task for answer in self._answers.values()]
