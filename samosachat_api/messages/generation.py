"""An answer's generation: the upstream's tokens become events, then the stored message."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import structlog

from .. import metrics
from ..answers import Answer, Answers, Batch
from ..clients import InferenceClient
from ..errors import DATABASE_ERRORS, UpstreamError
from ..models import Conversation, Message, MessageStatus
from ..settings import Settings
from . import prompt, store
from .schemas import GenerationParams, SendMessage

log = structlog.get_logger(__name__)

DONE = json.dumps({"done": True})
STORE_RETRY_PAUSES = (1.5, 3.5)  # three tries over about 5 s


@dataclass(frozen=True)
class AnswerJob:
    conversation_id: UUID
    user_id: UUID
    model_tag: str
    payload: dict[str, Any]  # the body of POST /generate
    replaces: UUID | None = None  # the assistant answer a regenerated one takes the place of
    message_id: UUID = field(default_factory=uuid4)  # the id the answer is shown and stored under

    @classmethod
    def build(
        cls,
        conversation: Conversation,
        history: list[Message],
        params: GenerationParams,
        settings: Settings,
        replaces: UUID | None = None,
    ) -> AnswerJob:
        def chosen(value, default):
            return default if value is None else value

        system = settings.thinking_system_prompt if params.thinking_mode else settings.system_prompt
        payload = {
            "messages": prompt.with_system_prompt(prompt.history_for_model(history, settings.max_token_budget), system),
            "temperature": chosen(params.temperature, settings.inference_default_temperature),
            "max_tokens": chosen(params.max_tokens, settings.inference_default_max_tokens),
            "top_k": chosen(params.top_k, settings.inference_default_top_k),
            "force_web_search": bool(params.force_web_search),
        }
        return cls(conversation.id, conversation.user_id, conversation.model_tag, payload, replaces)

    def to_record(self) -> dict[str, Any]:
        """What storing the answer needs, should another process have to (the payload is left out)."""
        return {
            "conversation_id": str(self.conversation_id),
            "user_id": str(self.user_id),
            "model_tag": self.model_tag,
            "replaces": str(self.replaces) if self.replaces else None,
            "message_id": str(self.message_id),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AnswerJob:
        replaces, message_id = record.get("replaces"), record.get("message_id")
        return cls(
            UUID(record["conversation_id"]), UUID(record["user_id"]), record["model_tag"], {},
            UUID(replaces) if replaces else None, UUID(message_id) if message_id else uuid4(),
        )


@dataclass(frozen=True)
class Answering:
    """Starts answers: what the routes that ask (or ask again) call. Each returns the answer's
    events, for the route to relay."""

    answers: Answers
    inference: InferenceClient
    settings: Settings

    async def ask(
        self, conversation: Conversation, question: SendMessage, idempotency_key: str | None = None
    ) -> AsyncIterator[Batch]:
        async def prepare() -> AnswerJob:
            limit = self.settings.max_conversation_history
            history = await store.add_user_message(conversation, question.content, limit, idempotency_key)
            return AnswerJob.build(conversation, history, question, self.settings)

        return await self._answer(conversation, prepare)

    async def regenerate(self, conversation: Conversation, params: GenerationParams) -> AsyncIterator[Batch]:
        async def prepare() -> AnswerJob:
            limit = self.settings.max_conversation_history
            history, replaces = await store.history_for_regenerate(conversation, limit)
            return AnswerJob.build(conversation, history, params, self.settings, replaces)

        return await self._answer(conversation, prepare)

    async def _answer(self, conversation: Conversation, prepare) -> AsyncIterator[Batch]:
        generating = functools.partial(generate, inference=self.inference, timeout=self.settings.answer_timeout_seconds)
        return await self.answers.start(conversation.id, conversation.user_id, prepare, generating)


@dataclass
class _Received:
    started: float = field(default_factory=time.perf_counter)
    tokens: list[str] = field(default_factory=list)
    done_event: str | None = None  # the upstream's own `done` event, held back until stored
    first_token_ms: int | None = None

    def since_start_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


async def generate(answer: Answer, job: AnswerJob, inference: InferenceClient, timeout: float) -> None:
    """Relay the upstream's events, store the answer, then send `done`; report failures as events.
    An answer still running after `timeout` seconds is stopped there and kept as it stands."""
    received = _Received()
    failure = None
    metrics.ANSWERS.labels("started").inc()
    with metrics.ANSWERS_RUNNING.track_inprogress():
        try:
            try:
                async with asyncio.timeout(timeout):
                    await answer.read_upstream(_read(answer, job, inference, received))
            except TimeoutError:
                log.warning("answer_timed_out", conversation_id=str(job.conversation_id), tokens=len(received.tokens))
                failure = f"The answer took longer than {timeout:g} s and was stopped"
            elapsed_ms = received.since_start_ms()
            await _store(job, received, elapsed_ms)
            outcome = "completed" if received.done_event else "stopped"
            metrics.ANSWER_SECONDS.observe(elapsed_ms / 1000)
        except UpstreamError as exc:  # logged where it was raised; its text may quote the upstream
            log.warning("answer_failed", tokens=len(received.tokens))
            outcome, failure = "failed", exc.message
        except Exception:  # e.g. the database stayed away: tell the client rather than go silent
            log.exception("answer_not_stored", conversation_id=str(job.conversation_id), tokens=len(received.tokens))
            outcome, failure = "failed", "The answer could not be stored"
    metrics.ANSWERS.labels(outcome).inc()
    metrics.TOKENS_RELAYED.inc(len(received.tokens))
    if failure is not None:
        answer.publish(json.dumps({"error": failure}))
    answer.publish(received.done_event if outcome == "completed" else DONE)


async def _read(answer: Answer, job: AnswerJob, inference: InferenceClient, received: _Received) -> None:
    async with contextlib.aclosing(inference.generate(job.payload)) as events:
        async for data, event in events:
            if event.get("done") is True:
                received.done_event = data  # the last event; going on lets the client read the body's end
                continue
            if "token" in event:
                if received.first_token_ms is None:
                    received.first_token_ms = received.since_start_ms()
                    metrics.TIME_TO_FIRST_TOKEN.observe(received.first_token_ms / 1000)
                received.tokens.append(str(event["token"]))
            answer.publish(data)


async def _store(job: AnswerJob, received: _Received, elapsed_ms: int) -> None:
    stopped = received.done_event is None
    if stopped and not received.tokens:
        log.info("answer_stopped_before_first_token")
        return
    stored = await _store_with_retries(
        store.StoredAnswer(
            job.message_id,
            MessageStatus.STOPPED if stopped else MessageStatus.COMPLETE,
            job.user_id,
            job.conversation_id,
            "".join(received.tokens),
            token_count=len(received.tokens),
            inference_time_ms=elapsed_ms,
            time_to_first_token_ms=received.first_token_ms,
            model_tag=job.model_tag,
            replaces=job.replaces,
        )
    )
    log.info(
        "answer_stored" if stored else "answer_discarded_conversation_deleted_or_stored_already",
        conversation_id=str(job.conversation_id),
        stopped=stopped,
        tokens=len(received.tokens),
        inference_time_ms=elapsed_ms,
    )


async def _store_with_retries(answer: store.StoredAnswer) -> bool:
    """Store the answer, trying again while the database is briefly away (a restart, a full pool)."""
    for pause in (*STORE_RETRY_PAUSES, None):
        try:
            return await store.store_answer(answer)
        except DATABASE_ERRORS as exc:
            if pause is None:
                raise
            log.warning("answer_store_retried", conversation_id=str(answer.conversation_id), error=type(exc).__name__)
            await asyncio.sleep(pause)


async def store_salvaged(record: dict[str, Any], events: list[str], elapsed_ms: int) -> None:
    """Store the tokens of an answer whose process died, as a stopped answer."""
    received = _Received()
    for data in events:
        event = json.loads(data)
        if isinstance(event, dict) and "token" in event:
            received.tokens.append(str(event["token"]))
    await _store(AnswerJob.from_record(record), received, elapsed_ms)
