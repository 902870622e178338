"""What the conversation routes read and answer."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field
from sanic_ext import openapi

from ..messages.schemas import MessageOut
from ..web.schemas import Model, Out, Text, Timestamp


@openapi.component
class CreateConversation(Model):
    """All optional, the body too. A title given here is a placeholder: the first question
    replaces it (a rename does not)."""

    title: Text(1, 500) | None = None
    model_tag: Text(1, 100) | None = None


@openapi.component
class RenameConversation(Model):
    title: Text(1, 500)


@openapi.component
class ConversationOut(Out):
    id: UUID
    user_id: UUID
    title: str
    model_tag: str
    is_favorited: bool
    created_at: Timestamp
    updated_at: Timestamp


@openapi.component
class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


@openapi.component
class ConversationPageOut(Out):
    items: list[ConversationOut]
    grouped: dict[str, list[ConversationOut]] = Field(description="items keyed by the UTC date of updated_at")
    limit: int
    offset: int
