"""What the admin routes read and answer."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field
from sanic_ext import openapi

from ..web.schemas import ListQuery, Model, Out, Timestamp


class AdminUsersQuery(ListQuery):
    limit: int = Field(100, ge=1, le=1000)


@openapi.component
class AdminUserOut(Out):
    id: UUID
    email: str | None
    name: str | None
    provider: str | None
    created_at: Timestamp | None
    last_login_at: Timestamp | None
    conversation_count: int
    message_count: int


@openapi.component
class AdminTotalsOut(Model):
    users: int
    conversations: int
    messages: int


@openapi.component
class AdminUsersOut(Model):
    items: list[AdminUserOut]
    totals: AdminTotalsOut
