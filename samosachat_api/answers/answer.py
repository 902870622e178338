"""One answer being generated in this process: its events, its readers, its upstream read.

Event ids are `base + position` (positions start at 1); each answer gets a base of its own, so an
id kept from an earlier answer is recognised as foreign and the reader starts from the beginning.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from uuid import UUID

# (first event id, events): the events that arrived since the last batch; none means a heartbeat.
Batch = tuple[int, list[str]]

ID_STRIDE = 1_000_000  # events an answer may have; ids stay within 9 digits (999 bases)
ID_BASES = 999


def id_base(sequence: int) -> int:
    """The event-id base of the answer numbered `sequence`."""
    return (sequence % ID_BASES + 1) * ID_STRIDE


def position_after(event_id: int, base: int) -> int:
    """The position to read after, for a Last-Event-ID: 0 (from the start) if it is not this answer's."""
    position = event_id - base
    return position if 0 < position < ID_STRIDE else 0


class Answer:
    """One answer: the events published so far, and the readers waiting for more.

    Readers see the first `visible` events. A local answer shows each event as it is published; a
    shared one (Redis) shows events once they are shared, so that a reader who sees `done` also
    finds the conversation free.
    """

    def __init__(self, conversation_id: UUID, user_id: UUID, base: int, *, shared: bool = False) -> None:
        self.id = ""  # its key in the shared state, if shared
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.record: dict[str, Any] | None = None  # the job's record, once prepared
        self.base = base
        self.events: list[str] = []
        self.visible = 0
        self.shared = shared
        self.started = False  # prepared: the question is stored, the generation is under way
        self.finished = False
        self.stop_requested = False
        self.task: asyncio.Task | None = None  # the task generating it
        self.new_events = asyncio.Event()  # set on publish; the sharer waits on it
        self._readers_waiting: list[asyncio.Future] = []
        self._upstream: asyncio.Future | None = None

    def publish(self, event: str) -> None:
        self.events.append(event)
        self.new_events.set()
        if not self.shared:
            self.show(len(self.events))

    def show(self, upto: int) -> None:
        """Let readers see the events up to position `upto`."""
        self.visible = max(self.visible, upto)
        self._wake_readers()

    def unshare(self) -> None:
        """Shared state is gone (Redis lost): show everything from now on."""
        self.shared = False
        self.show(len(self.events))

    def finish(self) -> None:
        self.finished = True
        self.show(len(self.events))

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
        """Every event after position `after`, live until the answer finishes, in batches."""
        sent = max(after, 0)
        while True:
            if sent < self.visible:
                batch = self.events[sent : self.visible]
                yield self.base + sent + 1, batch
                sent += len(batch)
            elif self.finished:
                if sent > len(self.events) and self.events:  # asked from past the end: still end with `done`
                    yield self.base + len(self.events), self.events[-1:]
                return
            elif not await self._next_event(heartbeat):
                yield self.base + sent + 1, []

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
