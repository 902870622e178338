from __future__ import annotations

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

bp = Blueprint("health", url_prefix="/api/health")


@bp.get("")
async def liveness(request: Request) -> JSONResponse:
    """Liveness: the process answers; checks neither the database nor the upstreams."""
    return json({"status": "ok", "ready": True, "service": "chat-api"})
