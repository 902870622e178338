"""An answer's generation (upstream tokens -> events -> stored message) and its SSE relay."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog
from sanic import Request

from . import metrics
from .clients import InferenceClient
from .errors import UpstreamError
from .generations import Answer
from .services import messages

log = structlog.get_logger(__name__)

DONE = json.dumps({"done": True})
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class AnswerJob:
    conversation_id: UUID
    model_tag: str
    request: dict[str, Any]  # the body of POST /generate
    replaces: UUID | None = None  # the assistant answer a regenerated one takes the place of


@dataclass
class _Received:
    started: float = field(default_factory=time.perf_counter)
    tokens: list[str] = field(default_factory=list)
    done_event: str | None = None  # the upstream's own `done` event, held back until stored
    first_token_ms: int | None = None
    elapsed_ms: int = 0

    def since_start_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


async def generate(answer: Answer, job: AnswerJob, inference: InferenceClient) -> None:
    """Relay the upstream's events, store the answer, then send `done`; report failures as events."""
    received = _Received()
    metrics.ANSWERS.labels("started").inc()
    metrics.ANSWERS_RUNNING.inc()
    try:
        await answer.read_upstream(_read(answer, job, inference, received))
        received.elapsed_ms = received.since_start_ms()
        await _store(job, received)
        metrics.ANSWERS.labels("stopped" if received.done_event is None else "completed").inc()
        metrics.ANSWER_SECONDS.observe(received.elapsed_ms / 1000)
    except UpstreamError as exc:
        log.warning("answer_failed", reason=exc.message, tokens=len(received.tokens))
        _failed(answer, received, exc.message)
    except Exception:  # e.g. the database went away: tell the client rather than go silent
        log.exception("answer_not_stored", tokens=len(received.tokens))
        _failed(answer, received, "The answer could not be stored")
    finally:
        metrics.ANSWERS_RUNNING.dec()
        metrics.TOKENS_RELAYED.inc(len(received.tokens))
    answer.publish(received.done_event or DONE)


def _failed(answer: Answer, received: _Received, reason: str) -> None:
    metrics.ANSWERS.labels("failed").inc()
    answer.publish(json.dumps({"error": reason}))
    received.done_event = None


async def _read(answer: Answer, job: AnswerJob, inference: InferenceClient, received: _Received) -> None:
    async for data, event in inference.generate(job.request):
        if event.get("done") is True:
            received.done_event = data  # the stream ends here; reading on lets httpx reuse the connection
            continue
        if "error" in event:
            raise UpstreamError(f"Inference service failed: {event['error']}")
        if "token" in event:
            if received.first_token_ms is None:
                received.first_token_ms = received.since_start_ms()
                metrics.TIME_TO_FIRST_TOKEN.observe(received.first_token_ms / 1000)
            received.tokens.append(str(event["token"]))
        answer.publish(data)
    if received.done_event is None:
        raise UpstreamError("Inference stream ended before it was done")


async def _store(job: AnswerJob, received: _Received) -> None:
    stopped = received.done_event is None
    if stopped and not received.tokens:
        log.info("answer_stopped_before_first_token")
        return
    stored = await messages.store_answer(
        job.conversation_id,
        "".join(received.tokens),
        token_count=len(received.tokens),
        inference_time_ms=received.elapsed_ms,
        time_to_first_token_ms=received.first_token_ms,
        model_tag=job.model_tag,
        replaces=job.replaces,
    )
    log.info(
        "answer_stored" if stored else "answer_discarded",
        stopped=stopped,
        tokens=len(received.tokens),
        inference_time_ms=received.elapsed_ms,
    )


async def relay(request: Request, answer: Answer, after: int, heartbeat: float) -> None:
    """Send the answer's events from `after` on as Server-Sent Events, with `: ping` when idle."""
    response = await request.respond(content_type="text/event-stream", headers=SSE_HEADERS)
    async for first_id, events in answer.follow(after, heartbeat):
        if not events:
            await response.send(": ping\n\n")
        else:  # all the events that arrived since the last send, in one write
            await response.send("".join(f"id: {i}\ndata: {data}\n\n" for i, data in enumerate(events, first_id)))
    await response.eof()
