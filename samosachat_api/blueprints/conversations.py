from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, Request, empty, json
from sanic.response import HTTPResponse, JSONResponse
from sanic_ext import openapi, validate

from ..clients import AuthenticatedUser
from ..answers import Answers
from ..schemas import (
    ConversationDetailOut,
    ConversationOut,
    ConversationPageOut,
    CreateConversation,
    ListQuery,
    RenameConversation,
)
from ..services import conversations
from ._docs import BEARER, json_body, query_parameters, responses

bp = Blueprint("conversations", url_prefix="/api/conversations")


@bp.get("")
@openapi.definition(
    summary="List the user's conversations, newest activity first",
    parameter=query_parameters(ListQuery),
    response=responses({200: ConversationPageOut}, 400),
    secured=BEARER,
)
async def list_conversations(request: Request, user: AuthenticatedUser) -> JSONResponse:
    query = _list_query(request)
    page = await conversations.list_page(user.id, query.limit, query.offset)
    as_json = {c.id: c.to_json() for c in page}  # each one serialised once, shared by both views
    grouped = {day: [as_json[c.id] for c in group] for day, group in conversations.group_by_day(page).items()}
    return json({"items": list(as_json.values()), "grouped": grouped, "limit": query.limit, "offset": query.offset})


def _list_query(request: Request) -> ListQuery:
    """Unlike `request.args` (and so @validate), keeps blank values: `?limit=` is an error, not 50."""
    return ListQuery.model_validate(dict(request.get_query_args(keep_blank_values=True)))


@bp.post("")
@openapi.definition(
    summary="Create a conversation",
    body=json_body(CreateConversation),
    response=responses({201: ConversationOut}, 400),
    secured=BEARER,
)
@validate(json=CreateConversation, strict=True)
async def create_conversation(request: Request, body: CreateConversation, user: AuthenticatedUser) -> JSONResponse:
    conversation = await conversations.create(user.id, body.title, body.model_tag)
    return json(conversation.to_json(), status=201)


@bp.get("/<conversation_id:uuid>")
@openapi.definition(
    summary="A conversation with its messages, oldest first",
    response=responses({200: ConversationDetailOut}, 404),
    secured=BEARER,
)
async def get_conversation(request: Request, conversation_id: UUID, user: AuthenticatedUser) -> JSONResponse:
    conversation = await conversations.get(user.id, conversation_id)
    history = await conversations.messages_of(conversation)
    return json({**conversation.to_json(), "messages": [m.to_json() for m in history]})


@bp.put("/<conversation_id:uuid>")
@openapi.definition(
    summary="Rename a conversation",
    body=json_body(RenameConversation),
    response=responses({200: ConversationOut}, 400, 404),
    secured=BEARER,
)
@validate(json=RenameConversation, strict=True)
async def rename_conversation(
    request: Request, conversation_id: UUID, body: RenameConversation, user: AuthenticatedUser
) -> JSONResponse:
    conversation = await conversations.rename(user.id, conversation_id, body.title)
    return json(conversation.to_json())


@bp.delete("/<conversation_id:uuid>")
@openapi.definition(
    summary="Delete a conversation and its messages",
    response=responses({204: None}, 404),
    secured=BEARER,
)
async def delete_conversation(
    request: Request, conversation_id: UUID, user: AuthenticatedUser, answers: Answers
) -> HTTPResponse:
    await conversations.delete(user.id, conversation_id)
    await answers.stop(conversation_id)  # an answer being generated has nowhere to go
    return empty()
