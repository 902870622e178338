"""Answers: ask (messages), ask again (regenerate), re-attach (stream) and stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from sanic import Blueprint, Request, empty, json
from sanic.exceptions import BadRequest
from sanic.response import HTTPResponse, JSONResponse
from sanic_ext import openapi, validate
from sanic_ext.extensions.openapi.definitions import Parameter
from sanic_ext.extensions.openapi.types import Schema

from ..clients import AuthenticatedUser, InferenceClient
from ..generations import Generations
from ..models import Conversation, Message
from ..schemas import GenerationParams, SendMessage, StoppedOut
from ..services import conversations, messages
from ..settings import Settings
from ..streaming import AnswerJob, generate, relay
from ._docs import BEARER, EVENT_STREAM, json_body, responses

bp = Blueprint("messages", url_prefix="/api/conversations/<conversation_id:uuid>")

# Prepares an answer once the conversation is reserved: the history to send, the answer it replaces.
Prepare = Callable[[], Awaitable[tuple[list[Message], UUID | None]]]


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
    user: AuthenticatedUser,
    settings: Settings,
    generations: Generations,
    inference: InferenceClient,
) -> None:
    conversation = await conversations.get(user.id, conversation_id)

    async def prepare() -> tuple[list[Message], UUID | None]:
        await messages.add_user_message(conversation, body.content)
        return await messages.recent(conversation.id, settings.max_conversation_history), None

    await _answer(request, conversation, body, prepare, settings, generations, inference)


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
    user: AuthenticatedUser,
    settings: Settings,
    generations: Generations,
    inference: InferenceClient,
) -> None:
    params = _optional_params(request)
    conversation = await conversations.get(user.id, conversation_id)

    async def prepare() -> tuple[list[Message], UUID | None]:
        return await messages.history_for_regenerate(conversation.id, settings.max_conversation_history)

    await _answer(request, conversation, params, prepare, settings, generations, inference)


@bp.get("/stream")
@openapi.definition(
    summary="Re-attach to the answer being generated, after Last-Event-ID",
    parameter=[
        Parameter("Last-Event-ID", Schema(type="integer", minimum=0), "header"),
        Parameter("last_event_id", Schema(type="integer", minimum=0), "query"),
    ],
    response=responses({200: EVENT_STREAM, 204: None}, 400, 404),
    secured=BEARER,
)
async def resume(
    request: Request, conversation_id: UUID, user: AuthenticatedUser, settings: Settings, generations: Generations
) -> HTTPResponse | None:
    after = _last_event_id(request)
    await conversations.get(user.id, conversation_id)
    answer = generations.attach(conversation_id)
    if answer is None:
        return empty()
    await relay(request, answer, after, settings.sse_heartbeat_seconds)
    return None


@bp.post("/stop")
@openapi.definition(
    summary="Stop the answer being generated, keeping what it has so far",
    response=responses({200: StoppedOut}, 404),
    secured=BEARER,
)
async def stop(request: Request, conversation_id: UUID, user: AuthenticatedUser, generations: Generations) -> JSONResponse:
    await conversations.get(user.id, conversation_id)
    return json({"stopped": generations.stop(conversation_id)})


async def _answer(
    request: Request,
    conversation: Conversation,
    params: GenerationParams,
    prepare: Prepare,
    settings: Settings,
    generations: Generations,
    inference: InferenceClient,
) -> None:
    """Reserve the conversation, prepare the history, start the generation and relay it."""
    answer = generations.reserve(conversation.id)
    try:
        history, replaces = await prepare()
    except BaseException:
        generations.release(answer)
        raise
    window = messages.HistoryWindow(settings.max_conversation_history, settings.max_token_budget)
    job = AnswerJob(
        conversation_id=conversation.id,
        model_tag=conversation.model_tag,
        request={
            "messages": window.apply(history),
            "temperature": _or(params.temperature, settings.inference_default_temperature),
            "max_tokens": _or(params.max_tokens, settings.inference_default_max_tokens),
            "top_k": _or(params.top_k, settings.inference_default_top_k),
        },
        replaces=replaces,
    )
    generations.start(answer, lambda a: generate(a, job, inference))
    await relay(request, answer, 0, settings.sse_heartbeat_seconds)


def _or(value, default):
    return default if value is None else value


def _optional_params(request: Request) -> GenerationParams:
    """Regenerate's body is optional: no body means the defaults."""
    if not request.body:
        return GenerationParams()
    return GenerationParams.model_validate(request.json, strict=True)


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.args.get("last_event_id") or "0"
    if not raw.isdigit():
        raise BadRequest("Last-Event-ID must be a whole number")
    return int(raw)
