"""Answers: ask (messages), ask again (regenerate), re-attach (stream) and stop."""

from __future__ import annotations

import re
from uuid import UUID

from sanic import Blueprint, Request, empty
from sanic.exceptions import BadRequest
from sanic.response import HTTPResponse
from sanic_ext import openapi, validate
from sanic_ext.extensions.openapi.definitions import Parameter
from sanic_ext.extensions.openapi.types import Schema

from ..clients import InferenceClient
from ..generations import Generations
from ..schemas import GenerationParams, SendMessage, StoppedOut
from ..models import Conversation
from ..services import messages
from ..settings import Settings
from ..streaming import AnswerJob, generate, relay
from ._docs import BEARER, EVENT_STREAM, json_body, render, responses

bp = Blueprint("messages", url_prefix="/conversations/<conversation_id:uuid>")

EVENT_ID = re.compile(r"[0-9]{1,9}")
EVENT_ID_SCHEMA = Schema(type="integer", minimum=0, maximum=999_999_999)


@bp.post("/messages")
@openapi.definition(
    summary="Ask: store the message and stream the answer",
    body=json_body(SendMessage),
    response=responses({200: EVENT_STREAM}, 400, 404, 409),
    secured=BEARER,
)
@validate(json=SendMessage, strict=True)
async def send_message(
    request: Request,
    conversation_id: UUID,
    body: SendMessage,
    conversation: Conversation,
    settings: Settings,
    generations: Generations,
    inference: InferenceClient,
) -> None:
    async def prepare() -> AnswerJob:
        await messages.add_user_message(conversation, body.content)
        history = await messages.recent(conversation, settings.max_conversation_history)
        return AnswerJob.build(conversation, history, body, settings)

    events = await generations.start(conversation.id, prepare, lambda answer, job: generate(answer, job, inference))
    await relay(request, events)


@bp.post("/regenerate")
@openapi.definition(
    summary="Answer the newest question again; the new answer replaces the old one once stored",
    body=json_body(GenerationParams, required=False),
    response=responses({200: EVENT_STREAM}, 400, 404, 409),
    secured=BEARER,
)
async def regenerate(
    request: Request,
    conversation_id: UUID,
    conversation: Conversation,
    settings: Settings,
    generations: Generations,
    inference: InferenceClient,
) -> None:
    params = _optional_params(request)

    async def prepare() -> AnswerJob:
        limit = settings.max_conversation_history
        history, replaces = await messages.history_for_regenerate(conversation, limit)
        return AnswerJob.build(conversation, history, params, settings, replaces)

    events = await generations.start(conversation.id, prepare, lambda answer, job: generate(answer, job, inference))
    await relay(request, events)


@bp.get("/stream")
@openapi.definition(
    summary="Re-attach to the answer being generated, after Last-Event-ID",
    parameter=[
        Parameter("Last-Event-ID", EVENT_ID_SCHEMA, "header"),
        Parameter("last_event_id", EVENT_ID_SCHEMA, "query"),
    ],
    response=responses({200: EVENT_STREAM, 204: None}, 400, 404),
    secured=BEARER,
)
async def resume(
    request: Request, conversation_id: UUID, conversation: Conversation, generations: Generations
) -> HTTPResponse | None:
    events = generations.follow(conversation.id, _last_event_id(request))
    if events is None:
        return empty()
    await relay(request, events)
    return None


@bp.post("/stop")
@openapi.definition(
    summary="Stop the answer being generated, keeping what it has so far",
    response=responses({200: StoppedOut}, 404),
    secured=BEARER,
)
async def stop(
    request: Request, conversation_id: UUID, conversation: Conversation, generations: Generations
) -> HTTPResponse:
    return render(StoppedOut(stopped=generations.stop(conversation.id)))


def _optional_params(request: Request) -> GenerationParams:
    """Regenerate's body is optional: no body means the defaults."""
    if not request.body:
        return GenerationParams()
    return GenerationParams.model_validate(request.json, strict=True)


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.args.get("last_event_id") or "0"
    if not EVENT_ID.fullmatch(raw):
        raise BadRequest("Last-Event-ID must be a whole number")
    return int(raw)
