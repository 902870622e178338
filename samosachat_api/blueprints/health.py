from __future__ import annotations

import structlog
from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from ..services.health import database_ready

bp = Blueprint("health", url_prefix="/api/health")
log = structlog.get_logger(__name__)


@bp.get("")
async def liveness(request: Request) -> JSONResponse:
    """Liveness: the process answers; checks neither the database nor the upstreams."""
    return json({"status": "ok", "ready": True, "service": "chat-api"})


@bp.get("/ready")
async def readiness(request: Request) -> JSONResponse:
    """Readiness: the database answers a trivial query within 2 s."""
    if await database_ready():
        return json({"status": "ok", "ready": True, "checks": {"database": "ok"}})
    log.warning("not_ready", database="unavailable")
    return json({"status": "unavailable", "ready": False, "checks": {"database": "unavailable"}}, status=503)
