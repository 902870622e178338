"""The admin dashboard: every user, with how much they use the chat."""

from __future__ import annotations

from sanic import Sanic

from .routes import bp
from .schemas import AdminUsersQuery

__all__ = ["bp", "register"]


def register(app: Sanic) -> None:
    app.ext.add_dependency(AdminUsersQuery, AdminUsersQuery.from_request)
