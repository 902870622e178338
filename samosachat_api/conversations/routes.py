"""The conversation routes: list, create, read, rename, delete."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, Request, empty
from sanic.response import HTTPResponse

from ..answers import Answers
from ..clients import AuthenticatedUser
from ..models import Conversation
from ..web.routes import api_route, query_parameters, render, responses
from ..web.schemas import ListQuery
from . import store
from .schemas import ConversationDetailOut, ConversationOut, ConversationPageOut, CreateConversation, RenameConversation

bp = Blueprint("conversations", url_prefix="/conversations")


@bp.get("")
@api_route(
    "List the user's conversations, newest activity first",
    responses({200: ConversationPageOut}, 400),
    parameter=query_parameters(ListQuery),
)
async def list_conversations(request: Request, user: AuthenticatedUser, query: ListQuery) -> HTTPResponse:
    page = await store.list_page(user.id, query.limit, query.offset)
    grouped = store.group_by_day(page)
    return render({"items": page, "grouped": grouped, "limit": query.limit, "offset": query.offset})


@bp.post("")
@api_route("Create a conversation", responses({201: ConversationOut}, 400), optional_body=CreateConversation)
async def create_conversation(request: Request, body: CreateConversation, user: AuthenticatedUser) -> HTTPResponse:
    conversation = await store.create(user.id, body.title, body.model_tag)
    return render(ConversationOut.model_validate(conversation), status=201)


@bp.get("/<conversation_id:uuid>")
@api_route(
    "A conversation with its messages, oldest first; the answer being generated last, as it stands",
    responses({200: ConversationDetailOut}, 404),
)
async def get_conversation(request: Request, conversation_id: UUID, conversation: Conversation, answers: Answers) -> HTTPResponse:
    history = await store.messages_of(conversation, running=await answers.running(conversation.id))
    return render({**ConversationOut.model_validate(conversation).model_dump(), "messages": history})


@bp.put("/<conversation_id:uuid>")
@api_route("Rename a conversation", responses({200: ConversationOut}, 400, 404), body=RenameConversation)
async def rename_conversation(
    request: Request, conversation_id: UUID, body: RenameConversation, conversation: Conversation
) -> HTTPResponse:
    await store.rename(conversation, body.title)
    return render(ConversationOut.model_validate(conversation))


@bp.delete("/<conversation_id:uuid>")
@api_route("Delete a conversation and its messages", responses({204: None}, 404))
async def delete_conversation(
    request: Request, conversation_id: UUID, conversation: Conversation, answers: Answers
) -> HTTPResponse:
    await store.delete(conversation)
    await answers.stop(conversation.id)  # an answer being generated has nowhere to go
    return empty()
