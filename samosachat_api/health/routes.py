"""Liveness and readiness, outside the authenticated API."""

from __future__ import annotations

import structlog
from sanic import Blueprint, Request, json
from sanic.response import JSONResponse
from sanic_ext import openapi

from ..answers import Answers
from ..web.routes import responses
from .checks import database_problem
from .schemas import HealthOut, ReadinessOut

bp = Blueprint("health", url_prefix="/api/health")
log = structlog.get_logger(__name__)


@bp.get("")
@openapi.definition(response=responses({200: HealthOut}, authenticated=False))
async def liveness(request: Request) -> JSONResponse:
    """Liveness: the process answers; checks neither the database nor the upstreams."""
    return json({"status": "ok", "ready": True, "service": "chat-api"})


@bp.get("/ready")
@openapi.definition(response=responses({200: ReadinessOut, 503: ReadinessOut}, authenticated=False))
async def readiness(request: Request, answers: Answers) -> JSONResponse:
    """Readiness: the database answers a trivial query within 2 s (and Redis a ping, when used)."""
    problem = await database_problem()
    checks = {"database": problem is None, **await answers.checks()}
    shown = {name: "ok" if ok else "unavailable" for name, ok in checks.items()}
    if all(checks.values()):
        return json({"status": "ok", "ready": True, "checks": shown})
    log.warning("not_ready", database_error=problem, **{name: state for name, state in shown.items() if state != "ok"})
    return json({"status": "unavailable", "ready": False, "checks": shown}, status=503)
