"""GET /metrics, and the response middleware that counts every request."""

from __future__ import annotations

import hmac
import time

from sanic import Blueprint, Request, Sanic, raw
from sanic.constants import HTTP_METHODS
from sanic.exceptions import Unauthorized
from sanic.response import HTTPResponse
from sanic_ext import openapi

from .. import metrics

bp = Blueprint("metrics")


@bp.get("/metrics")
@openapi.definition(response=[openapi.definitions.Response({"text/plain": str}, status=200)])
async def exposition(request: Request) -> HTTPResponse:
    """Prometheus metrics of every worker (METRICS_ENABLED=false removes it; with METRICS_TOKEN set,
    a scraper sends it as a bearer token)."""
    expected = request.app.ctx.settings.metrics_token
    if expected and not hmac.compare_digest(request.headers.get("authorization", "").encode(errors="surrogateescape"), f"Bearer {expected}".encode()):
        raise Unauthorized("Missing or wrong metrics token", scheme="Bearer")
    body, content_type = metrics.exposition()
    return raw(body, content_type=content_type)


async def record_request(request: Request, response: HTTPResponse) -> None:
    route = request.uri_template or "unmatched"
    method = request.method if request.method in HTTP_METHODS else "OTHER"  # clients may send any token
    metrics.REQUESTS.labels(route, method, str(response.status)).inc()
    started = getattr(request.ctx, "started", None)
    if started is not None:
        metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


def register(app: Sanic) -> None:
    """GET /metrics, and every request counted (METRICS_ENABLED=false leaves both out)."""
    app.blueprint(bp)
    app.register_middleware(record_request, "response")
