from __future__ import annotations

import time

from sanic import Blueprint, Request, raw
from sanic.constants import HTTP_METHODS
from sanic.response import HTTPResponse
from sanic_ext import openapi

from .. import metrics

bp = Blueprint("metrics")


@bp.get("/metrics")
@openapi.definition(response=[openapi.definitions.Response({"text/plain": str}, status=200)])
async def exposition(request: Request) -> HTTPResponse:
    """Prometheus metrics of every worker (unauthenticated; METRICS_ENABLED=false removes it)."""
    body, content_type = metrics.exposition()
    return raw(body, content_type=content_type)


async def record_request(request: Request, response: HTTPResponse) -> None:
    route = request.uri_template or "unmatched"
    method = request.method if request.method in HTTP_METHODS else "OTHER"  # clients may send any token
    metrics.REQUESTS.labels(route, method, str(response.status)).inc()
    started = getattr(request.ctx, "started", None)
    if started is not None:
        metrics.REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
