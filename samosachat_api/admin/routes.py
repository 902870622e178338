"""The admin dashboard's routes (administrators only)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from ..web.auth import Administrator
from ..web.routes import api_route, query_parameters, render, responses
from . import store
from .schemas import AdminUsersOut, AdminUsersQuery

bp = Blueprint("admin", url_prefix="/admin")


@bp.get("/users")
@api_route(
    "Users, most recent login first, with their conversation and message counts (administrators only)",
    responses({200: AdminUsersOut}, 400, 403),
    parameter=query_parameters(AdminUsersQuery),
)
async def list_users(request: Request, admin_user: Administrator, query: AdminUsersQuery) -> HTTPResponse:
    items, totals = await store.users_page(query.limit, query.offset)
    return render(AdminUsersOut(items=items, totals=totals))
