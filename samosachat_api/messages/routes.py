"""Answers: ask (messages), ask again (regenerate), re-attach (stream) and stop."""

from __future__ import annotations

import re
from uuid import UUID

from sanic import Blueprint, Request, empty
from sanic.exceptions import BadRequest
from sanic.response import HTTPResponse
from sanic_ext.extensions.openapi.definitions import Parameter
from sanic_ext.extensions.openapi.types import Schema

from ..answers import Answers
from ..models import Conversation
from ..web.routes import EVENT_STREAM, api_route, render, responses
from ..web.sse import relay
from .generation import Answering
from .schemas import GenerationParams, SendMessage, StoppedOut

bp = Blueprint("messages", url_prefix="/conversations/<conversation_id:uuid>")

EVENT_ID = re.compile(r"[0-9]{1,9}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
EVENT_ID_SCHEMA = Schema(type="integer", minimum=0, maximum=999_999_999)


@bp.post("/messages")
@api_route(
    "Ask: store the message and stream the answer",
    responses({200: EVENT_STREAM}, 400, 404, 409, 429),
    body=SendMessage,
    parameter=[Parameter("Idempotency-Key", Schema(type="string", minLength=1, maxLength=200), "header")],
)
async def send_message(
    request: Request, conversation_id: UUID, body: SendMessage, conversation: Conversation, answering: Answering
) -> None:
    await relay(request, await answering.ask(conversation, body, _idempotency_key(request)))


@bp.post("/regenerate")
@api_route(
    "Answer the newest question again; the new answer replaces the old one once stored",
    responses({200: EVENT_STREAM}, 400, 404, 409, 429),
    optional_body=GenerationParams,
)
async def regenerate(
    request: Request, conversation_id: UUID, body: GenerationParams, conversation: Conversation, answering: Answering
) -> None:
    await relay(request, await answering.regenerate(conversation, body))


@bp.get("/stream")
@api_route(
    "Re-attach to the answer being generated, after Last-Event-ID",
    responses({200: EVENT_STREAM, 204: None}, 400, 404),
    parameter=[
        Parameter("Last-Event-ID", EVENT_ID_SCHEMA, "header"),
        Parameter("last_event_id", EVENT_ID_SCHEMA, "query"),
    ],
)
async def resume(
    request: Request, conversation_id: UUID, conversation: Conversation, answers: Answers
) -> HTTPResponse | None:
    events = await answers.follow(conversation.id, _last_event_id(request))
    if events is None:
        return empty()
    await relay(request, events)
    return None


@bp.post("/stop")
@api_route("Stop the answer being generated, keeping what it has so far", responses({200: StoppedOut}, 404))
async def stop(request: Request, conversation_id: UUID, conversation: Conversation, answers: Answers) -> HTTPResponse:
    return render(StoppedOut(stopped=await answers.stop(conversation.id)))


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 200 printable ASCII characters")
    return key


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.args.get("last_event_id") or "0"
    if not EVENT_ID.fullmatch(raw):
        raise BadRequest("Last-Event-ID must be a whole number")
    return int(raw)
