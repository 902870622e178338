"""Answers shared through Redis: any process follows, stops and sees them; a dead process's
answers are stored from their shared events by whichever process notices first.

The generating process keeps its answer in memory and shares its events in batches (one pipeline
per flush); its own readers see an event once it is shared (or at once while Redis is away).
Its lease (`SET lease:<aid> PX`) is renewed every third of ANSWER_LEASE_SECONDS; every process
sweeps for answers whose lease lapsed. A stop reaches the owner over pub/sub, with a `stop:<aid>`
key as the fallback it reads when renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import structlog
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import AnswerInProgress, AnswersUnavailable, TooManyAnswers
from . import redis_scripts
from .answer import Answer, Batch, id_base, position_after
from .base import DONE, STOP_WAIT_SECONDS, Answers, RunningAnswer, snapshot

log = structlog.get_logger(__name__)

# Stores a dead process's answer: (job record, its events so far, milliseconds since it started).
Salvage = Callable[[dict[str, Any], list[str], int], Awaitable[None]]

EVENTS_KEPT_SECONDS = 300  # after the end, for late readers
RUNNING_EVENTS_TTL_MS = 3_600_000  # while running: a safety net, renewed with each flush
SALVAGE_LOCK_MS = 30_000
CHECK_SECONDS = 2.0
SHARER_EXIT_SECONDS = 3.0
READ_BATCH = 1000
POOL_WAIT_SECONDS = 5.0  # for a free connection of the pool, before it counts as Redis unavailable
INTERRUPTED = json.dumps({"error": "The answer was interrupted: the process generating it stopped"})
REDIS_LOST = json.dumps({"error": "The answer can no longer be followed (redis unavailable)"})


class RedisAnswers(Answers):
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        heartbeat: float,
        max_per_user: int,
        lease_seconds: float,
        salvage: Salvage,
    ) -> None:
        super().__init__(heartbeat, max_per_user)
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._salvage_answer = salvage
        self._process = uuid.uuid4().hex
        self._by_id: dict[str, Answer] = {}
        self._sharing: dict[str, tuple[asyncio.Task, list[int]]] = {}  # answer id -> (sharer, [shared count])
        self._unreleased: dict[str, Answer] = {}  # finished here, but Redis was away at the end
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._redis_down = False
        self._claim_script = redis.register_script(redis_scripts.CLAIM)
        self._finish_script = redis.register_script(redis_scripts.FINISH)

    @classmethod
    def from_url(cls, url: str, heartbeat: float, pool_size: int, **kwargs: Any) -> RedisAnswers:
        # A burst waits for a free connection: redis-py's default pool refuses one over its size.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=POOL_WAIT_SECONDS, decode_responses=True,
            socket_connect_timeout=2, socket_timeout=heartbeat + 10, health_check_interval=30,
        )
        return cls(aioredis.Redis.from_pool(pool), heartbeat=heartbeat, **kwargs)

    def _key(self, kind: str, name: object) -> str:
        return f"{self._prefix}{kind}:{name}"

    @property
    def _channel(self) -> str:
        return f"{self._prefix}stop"

    # -- this process's answers ---------------------------------------------------------------

    def _new_answer(self, conversation_id: UUID, user_id: UUID) -> Answer:
        answer = Answer(conversation_id, user_id, 0, shared=True)
        answer.id = uuid.uuid4().hex
        return answer

    async def _claim(self, answer: Answer) -> None:
        keys = [
            self._key("conversation", answer.conversation_id), self._key("user", answer.user_id),
            f"{self._prefix}running", f"{self._prefix}seq", self._key("lease", answer.id), self._key("meta", answer.id),
        ]
        args = [
            answer.id, self._max_per_user, self._process, self._lease_ms, self._prefix,
            str(answer.conversation_id), str(answer.user_id), time.time(),
        ]
        try:
            seq = await self._claim_script(keys=keys, args=args)
        except RedisError as exc:
            log.error("redis_unavailable", error=type(exc).__name__)
            raise AnswersUnavailable() from None
        if seq == -1:
            raise AnswerInProgress()
        if seq == -2:
            raise TooManyAnswers()
        answer.base = id_base(int(seq))
        self._by_id[answer.id] = answer
        shared = [0]
        self._sharing[answer.id] = (asyncio.create_task(self._share(answer, shared)), shared)

    async def _prepared(self, answer: Answer) -> None:
        try:
            await self._redis.hset(
                self._key("meta", answer.id), mapping={"started": "1", "record": json.dumps(answer.record)}
            )
        except RedisError as exc:
            log.warning("answer_not_shared", error=type(exc).__name__)

    async def _share(self, answer: Answer, shared: list[int]) -> None:
        """Flush new events in batches until the answer is released (its last events go with it)."""
        events_key = self._key("events", answer.id)
        while answer.id in self._sharing:
            await answer.new_events.wait()
            answer.new_events.clear()
            upto = len(answer.events)
            if upto == shared[0] or answer.id not in self._sharing:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for position in range(shared[0] + 1, upto + 1):
                pipe.xadd(events_key, {"d": answer.events[position - 1]}, id=f"0-{position}")
            pipe.pexpire(events_key, RUNNING_EVENTS_TTL_MS)
            try:
                await pipe.execute()
            except RedisError as exc:
                if answer.shared:
                    log.warning("answer_not_shared", error=type(exc).__name__)
                    answer.unshare()  # readers here go on; the rest is shared when Redis is back
                await asyncio.sleep(0.5)
                answer.new_events.set()
                continue
            shared[0] = upto
            answer.show(upto)

    async def _release(self, answer: Answer) -> None:
        sharer, _ = self._sharing.pop(answer.id)
        answer.new_events.set()
        try:
            await asyncio.wait_for(sharer, SHARER_EXIT_SECONDS)
        except TimeoutError:  # Redis hangs; _finish reads where the stream stands
            pass
        if not await self._finish(answer):
            self._unreleased[answer.id] = answer
            answer.unshare()
        self._by_id.pop(answer.id, None)

    async def _finish(self, answer: Answer) -> bool:
        events_key = self._key("events", answer.id)
        try:
            in_stream = await self._redis.xlen(events_key)
            keys = [
                self._key("conversation", answer.conversation_id), self._key("user", answer.user_id),
                f"{self._prefix}running", events_key, self._key("meta", answer.id), self._key("lease", answer.id),
            ]
            await self._finish_script(keys=keys, args=[answer.id, EVENTS_KEPT_SECONDS, in_stream, *answer.events[in_stream:]])
        except RedisError as exc:
            log.warning("answer_not_released", error=type(exc).__name__)
            return False
        return True

    # -- answers of other processes -------------------------------------------------------------

    async def _current(self, conversation_id: UUID) -> tuple[str, dict[str, str]] | None:
        """The answer id and metadata of the conversation's running answer, if it is prepared."""
        answer_id = await self._redis.get(self._key("conversation", conversation_id))
        if answer_id is None:
            return None
        meta = await self._redis.hgetall(self._key("meta", answer_id))
        if meta.get("started") != "1":
            return None
        return answer_id, meta

    async def _follow_elsewhere(self, conversation_id: UUID, after: int) -> AsyncIterator[Batch] | None:
        try:
            current = await self._current(conversation_id)
            if current is None:
                return None
            answer_id, meta = current
            base = id_base(int(meta["seq"]))
            position = position_after(after, base)
            in_stream = await self._redis.xlen(self._key("events", answer_id))
        except RedisError as exc:
            log.error("redis_unavailable", error=type(exc).__name__)
            raise AnswersUnavailable() from None
        return self._read(answer_id, base, position, min(position, max(in_stream - 1, 0)))

    async def _read(self, answer_id: str, base: int, after: int, cursor: int) -> AsyncIterator[Batch]:
        """Events after position `after`, reading the stream from `cursor`, live until its end."""
        events_key = self._key("events", answer_id)
        last: tuple[int, str] | None = None
        while True:
            try:
                reply = await self._redis.xread(
                    {events_key: f"0-{cursor}"}, count=READ_BATCH, block=max(1, round(self._heartbeat * 1000))
                )
                if not reply and not await self._redis.exists(events_key):
                    reply = None
                    raise RedisError("the answer's events are gone")
            except RedisError as exc:
                log.warning("answer_follow_failed", error=type(exc).__name__)
                yield base + cursor + 1, [REDIS_LOST, DONE]
                return
            if not reply:
                yield base + cursor + 1, []
                continue
            batch, first, ended = [], 0, False
            for entry_id, fields in reply[0][1]:
                cursor = int(entry_id.split("-")[1])
                if "end" in fields:
                    ended = True
                    break
                last = (cursor, fields["d"])
                if cursor > after:
                    first = first or cursor
                    batch.append(fields["d"])
            if batch:
                yield base + first, batch
            if ended:
                if last is not None and after > last[0]:  # asked from past the end: still end with `done`
                    yield base + last[0], [last[1]]
                return

    async def _stop_elsewhere(self, conversation_id: UUID) -> bool:
        conversation_key = self._key("conversation", conversation_id)
        try:
            answer_id = await self._redis.get(conversation_key)
            if answer_id is None:
                return False
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key("stop", answer_id), "1", px=self._lease_ms * 3)
                pipe.publish(self._channel, answer_id)
                await pipe.execute()
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while time.monotonic() < deadline and await self._redis.get(conversation_key) == answer_id:
                if not await self._redis.exists(self._key("lease", answer_id)):
                    await self._salvage(answer_id)  # nobody is generating it any more
                await asyncio.sleep(0.02)
        except RedisError as exc:
            log.error("redis_unavailable", error=type(exc).__name__)
            raise AnswersUnavailable() from None
        return True

    async def _running_elsewhere(self, conversation_id: UUID) -> RunningAnswer | None:
        try:
            current = await self._current(conversation_id)
            if current is None:
                return None
            answer_id, meta = current
            entries = await self._redis.xrange(self._key("events", answer_id))
        except RedisError as exc:  # the stored messages are still worth showing
            log.warning("running_answer_unknown", error=type(exc).__name__)
            return None
        record = json.loads(meta.get("record") or "null")
        return snapshot(conversation_id, [f["d"] for _, f in entries if "d" in f], record)

    # -- background work: leases, stop requests, the sweep --------------------------------------

    async def open(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep_leases(), name="answers.leases"),
            asyncio.create_task(self._listen_for_stops(), name="answers.stops"),
        ]

    async def close(self) -> None:
        # The loops also end on the flag: a cancellation that meets a timeout inside redis-py may
        # arrive as TimeoutError (an OSError), which the listener takes for a lost connection.
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()

    async def checks(self) -> dict[str, bool]:
        try:
            await asyncio.wait_for(self._redis.ping(), CHECK_SECONDS)
        except (RedisError, OSError, TimeoutError):
            return {"redis": False}
        return {"redis": True}

    async def _listen_for_stops(self) -> None:
        while not self._closing:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    while not self._closing:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message and (answer := self._by_id.get(message["data"])) is not None:
                            answer.stop()
            except (RedisError, OSError) as exc:
                self._redis_failed("stop_channel_lost", exc)
                await asyncio.sleep(1)

    async def _keep_leases(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self._renew()
                for answer_id, answer in list(self._unreleased.items()):
                    if await self._finish(answer):
                        del self._unreleased[answer_id]
                await self._sweep()
                self._redis_down = False
            except RedisError as exc:
                self._redis_failed("answer_leases_not_renewed", exc)
            except Exception:
                log.exception("answer_sweep_failed")

    def _redis_failed(self, event: str, exc: Exception) -> None:
        """Log a failure of the background work once per outage."""
        if not self._redis_down:
            log.warning(event, error=type(exc).__name__)
        self._redis_down = True

    async def _renew(self) -> None:
        owned = [*self._by_id, *self._unreleased]
        if not owned:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for answer_id in owned:
                pipe.set(self._key("lease", answer_id), self._process, px=self._lease_ms, xx=True)
                pipe.exists(self._key("stop", answer_id))
            replies = await pipe.execute()
        for answer_id, renewed, stop in zip(owned, replies[::2], replies[1::2]):
            if not renewed:
                log.warning("answer_lease_lost", answer_id=answer_id)
            if stop and (answer := self._by_id.get(answer_id)) is not None:
                answer.stop()

    async def _sweep(self) -> None:
        """Store and end the answers whose process stopped renewing their lease."""
        candidates = await self._redis.smembers(f"{self._prefix}running")
        candidates = [a for a in candidates if a not in self._by_id and a not in self._unreleased]
        if not candidates:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for answer_id in candidates:
                pipe.exists(self._key("lease", answer_id))
            leased = await pipe.execute()
        for answer_id, alive in zip(candidates, leased):
            if not alive:
                await self._salvage(answer_id)

    async def _salvage(self, answer_id: str) -> None:
        if not await self._redis.set(self._key("salvage", answer_id), self._process, nx=True, px=SALVAGE_LOCK_MS):
            return  # another process is on it
        meta = await self._redis.hgetall(self._key("meta", answer_id))
        if not meta:
            await self._redis.srem(f"{self._prefix}running", answer_id)
            return
        entries = await self._redis.xrange(self._key("events", answer_id))
        if any("end" in fields for _, fields in entries):  # finished, only the release was missed
            events, final = [], []
        else:
            events, final = [f["d"] for _, f in entries], [INTERRUPTED, DONE]
            if meta.get("started") == "1" and meta.get("record"):
                elapsed_ms = round((time.time() - float(meta["started_at"])) * 1000)
                await self._salvage_answer(json.loads(meta["record"]), events, elapsed_ms)
        dead = Answer(UUID(meta["conversation_id"]), UUID(meta["user_id"]), 0)
        dead.id, dead.events = answer_id, [*events, *final]
        await self._finish(dead)
        log.warning("answer_salvaged", conversation_id=meta["conversation_id"], events=len(events))
