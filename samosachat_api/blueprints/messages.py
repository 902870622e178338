"""Answers: ask (messages), ask again (regenerate), re-attach (stream) and stop."""

from __future__ import annotations

import re
from uuid import UUID

from sanic import Blueprint, Request, empty, json
from sanic.exceptions import BadRequest
from sanic.response import HTTPResponse, JSONResponse
from sanic_ext import openapi, validate
from sanic_ext.extensions.openapi.definitions import Parameter
from sanic_ext.extensions.openapi.types import Schema

from ..clients import AuthenticatedUser, InferenceClient
from ..answers import Answers
from ..schemas import GenerationParams, SendMessage, StoppedOut
from ..services import conversations, messages
from ..settings import Settings
from ..streaming import AnswerJob, generate, relay
from ._docs import BEARER, EVENT_STREAM, json_body, responses

bp = Blueprint("messages", url_prefix="/api/conversations/<conversation_id:uuid>")

EVENT_ID = re.compile(r"[0-9]{1,9}")
EVENT_ID_SCHEMA = Schema(type="integer", minimum=0, maximum=999_999_999)


@bp.post("/messages")
@openapi.definition(
    summary="Ask: store the message and stream the answer",
    body=json_body(SendMessage),
    response=responses({200: EVENT_STREAM}, 400, 404, 409, 429),
    secured=BEARER,
)
@validate(json=SendMessage, strict=True)
async def send_message(
    request: Request,
    conversation_id: UUID,
    body: SendMessage,
    user: AuthenticatedUser,
    settings: Settings,
    answers: Answers,
    inference: InferenceClient,
) -> None:
    conversation = await conversations.get(user.id, conversation_id)

    async def prepare() -> AnswerJob:
        await messages.add_user_message(conversation, body.content)
        history = await messages.recent(user.id, conversation.id, settings.max_conversation_history)
        return AnswerJob.build(conversation, history, body, settings)

    events = await answers.start(conversation.id, user.id, prepare, lambda answer, job: generate(answer, job, inference))
    await relay(request, events)


@bp.post("/regenerate")
@openapi.definition(
    summary="Answer the newest question again; the new answer replaces the old one once stored",
    body=json_body(GenerationParams, required=False),
    response=responses({200: EVENT_STREAM}, 400, 404, 409, 429),
    secured=BEARER,
)
async def regenerate(
    request: Request,
    conversation_id: UUID,
    user: AuthenticatedUser,
    settings: Settings,
    answers: Answers,
    inference: InferenceClient,
) -> None:
    params = _optional_params(request)
    conversation = await conversations.get(user.id, conversation_id)

    async def prepare() -> AnswerJob:
        limit = settings.max_conversation_history
        history, replaces = await messages.history_for_regenerate(user.id, conversation.id, limit)
        return AnswerJob.build(conversation, history, params, settings, replaces)

    events = await answers.start(conversation.id, user.id, prepare, lambda answer, job: generate(answer, job, inference))
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
    request: Request, conversation_id: UUID, user: AuthenticatedUser, answers: Answers
) -> HTTPResponse | None:
    after = _last_event_id(request)
    await conversations.get(user.id, conversation_id)
    events = await answers.follow(conversation_id, after)
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
async def stop(request: Request, conversation_id: UUID, user: AuthenticatedUser, answers: Answers) -> JSONResponse:
    await conversations.get(user.id, conversation_id)
    return json({"stopped": await answers.stop(conversation_id)})


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
