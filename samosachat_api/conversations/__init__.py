"""Conversations: a user's list of them, and each one with its title and messages."""

from __future__ import annotations

from uuid import UUID

from sanic import Request, Sanic

from ..models import Conversation
from . import store
from .routes import bp

__all__ = ["bp", "register"]


async def owned_conversation(request: Request, conversation_id: UUID) -> Conversation:
    """The route's conversation if it is the user's; another user's or a missing one is a 404."""
    return await store.get(request.ctx.user.id, conversation_id)


def register(app: Sanic) -> None:
    """`conversation: Conversation` in a handler's arguments: the route's conversation."""
    app.ext.add_dependency(Conversation, owned_conversation)
