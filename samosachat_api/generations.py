"""Answers being generated, one per conversation, each in a task of its own that clients attach to.

An answer is a list of events (JSON texts) that grows until it finishes; its event ids are
positions in that list, starting at 1. Clients read it from any id onwards, however many
attach, and the generation goes on whether or not anyone is reading. Everything about an
answer is released as soon as it finishes.

The interface (start, attach, stop, drain) is what the routes use; this in-process
implementation could be replaced by one shared across workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from uuid import UUID

import structlog

from .errors import AnswerInProgress

log = structlog.get_logger(__name__)

STORE_GRACE_SECONDS = 5  # after the shutdown deadline, time left to store what was stopped


class Answer:
    def __init__(self, conversation_id: UUID) -> None:
        self.conversation_id = conversation_id
        self.events: list[str] = []
        self.finished = False
        self._readers_waiting: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None
        self._upstream: asyncio.Future | None = None

    def publish(self, event: str) -> None:
        self.events.append(event)
        self._wake_readers()

    def finish(self) -> None:
        self.finished = True
        self._wake_readers()

    async def read_upstream(self, reading: Coroutine[Any, Any, None]) -> None:
        """Run the upstream read so that `stop()` can end it, and only it: storing goes on."""
        self._upstream = asyncio.ensure_future(reading)
        try:
            await self._upstream
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # cancelled from outside, not by stop()
                raise
        finally:
            self._upstream = None

    def stop(self) -> None:
        if self._upstream is not None:
            self._upstream.cancel()

    def _wake_readers(self) -> None:
        for waiting in self._readers_waiting:
            if not waiting.done():
                waiting.set_result(None)
        self._readers_waiting.clear()

    async def follow(self, after: int, heartbeat: float) -> AsyncIterator[tuple[int, list[str]]]:
        """Every event after `after`, live until the answer finishes, in batches:
        (the first event's id, the events that arrived since the last batch).

        An empty batch means no event arrived for `heartbeat` seconds.
        """
        sent = max(after, 0)
        while True:
            if sent < len(self.events):
                batch = self.events[sent:]
                yield sent + 1, batch
                sent += len(batch)
            elif self.finished:
                return
            elif not await self._next_event(heartbeat):
                yield sent + 1, []

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
    """The running answers of this process, by conversation."""

    def __init__(self) -> None:
        self._answers: dict[UUID, Answer] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def reserve(self, conversation_id: UUID) -> Answer:
        """Claim the conversation for a new answer; AnswerInProgress if one is running."""
        if conversation_id in self._answers:
            raise AnswerInProgress()
        answer = self._answers[conversation_id] = Answer(conversation_id)
        return answer

    def release(self, answer: Answer) -> None:
        """Give up a reservation whose answer never started."""
        self._answers.pop(answer.conversation_id, None)

    def start(self, answer: Answer, generate: Callable[[Answer], Coroutine[Any, Any, None]]) -> None:
        answer._task = asyncio.create_task(self._run(answer, generate))

    async def _run(self, answer: Answer, generate: Callable[[Answer], Coroutine[Any, Any, None]]) -> None:
        try:
            await generate(answer)
        except Exception:
            log.exception("generation_failed", conversation_id=str(answer.conversation_id))
        finally:
            answer.finish()
            self._answers.pop(answer.conversation_id, None)

    def attach(self, conversation_id: UUID) -> Answer | None:
        return self._answers.get(conversation_id)

    def stop(self, conversation_id: UUID) -> bool:
        """Ask the answer to end now; it keeps what it has. False if nothing is running."""
        answer = self._answers.get(conversation_id)
        if answer is None or answer.finished:
            return False
        answer.stop()
        return True

    async def drain(self, timeout: float) -> None:
        """Let running answers finish; stop those still running after `timeout` seconds."""
        tasks = [a._task for a in self._answers.values() if a._task is not None]
        if not tasks:
            return
        log.info("draining_answers", running=len(tasks), timeout=timeout)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            log.warning("stopping_answers_at_deadline", running=len(pending))
            for answer in list(self._answers.values()):
                answer.stop()
            await asyncio.wait(pending, timeout=STORE_GRACE_SECONDS)
