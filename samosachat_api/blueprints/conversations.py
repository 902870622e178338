from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, Request, empty
from sanic.response import HTTPResponse
from sanic_ext import openapi, validate

from ..clients import AuthenticatedUser
from ..generations import Generations
from ..models import Conversation
from ..schemas import (
    ConversationDetailOut,
    ConversationOut,
    ConversationPageOut,
    CreateConversation,
    ListQuery,
    RenameConversation,
)
from ..services import conversations
from ._docs import BEARER, json_body, query_parameters, render, responses

bp = Blueprint("conversations", url_prefix="/conversations")


@bp.get("")
@openapi.definition(
    summary="List the user's conversations, newest activity first",
    parameter=query_parameters(ListQuery),
    response=responses({200: ConversationPageOut}, 400),
    secured=BEARER,
)
async def list_conversations(request: Request, user: AuthenticatedUser) -> HTTPResponse:
    query = _list_query(request)
    page = await conversations.list_page(user.id, query.limit, query.offset)
    grouped = conversations.group_by_day(page)
    return render(ConversationPageOut(items=page, grouped=grouped, limit=query.limit, offset=query.offset))


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
async def create_conversation(request: Request, body: CreateConversation, user: AuthenticatedUser) -> HTTPResponse:
    conversation = await conversations.create(user.id, body.title, body.model_tag)
    return render(ConversationOut.model_validate(conversation), status=201)


@bp.get("/<conversation_id:uuid>")
@openapi.definition(
    summary="A conversation with its messages, oldest first",
    response=responses({200: ConversationDetailOut}, 404),
    secured=BEARER,
)
async def get_conversation(request: Request, conversation_id: UUID, conversation: Conversation) -> HTTPResponse:
    history = await conversations.messages_of(conversation)
    return render(ConversationDetailOut(**dict(ConversationOut.model_validate(conversation)), messages=history))


@bp.put("/<conversation_id:uuid>")
@openapi.definition(
    summary="Rename a conversation",
    body=json_body(RenameConversation),
    response=responses({200: ConversationOut}, 400, 404),
    secured=BEARER,
)
@validate(json=RenameConversation, strict=True)
async def rename_conversation(
    request: Request, conversation_id: UUID, body: RenameConversation, conversation: Conversation
) -> HTTPResponse:
    await conversations.rename(conversation, body.title)
    return render(ConversationOut.model_validate(conversation))


@bp.delete("/<conversation_id:uuid>")
@openapi.definition(
    summary="Delete a conversation and its messages",
    response=responses({204: None}, 404),
    secured=BEARER,
)
async def delete_conversation(
    request: Request, conversation_id: UUID, conversation: Conversation, generations: Generations
) -> HTTPResponse:
    await conversations.delete(conversation)
    generations.stop(conversation.id)  # an answer being generated has nowhere to go
    return empty()
