from __future__ import annotations

import httpx
import structlog

from .. import metrics
from ..errors import UpstreamError

log = structlog.get_logger(__name__)

# Connect fast; a token stream may legitimately pause, but not for more than a minute.
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


async def _forward_trace_id(request: httpx.Request) -> None:
    trace_id = structlog.contextvars.get_contextvars().get("trace_id")
    if trace_id:
        request.headers["X-Trace-Id"] = trace_id


def new_http_client(base_url: str, internal_api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"X-Internal-API-Key": internal_api_key},
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        event_hooks={"request": [_forward_trace_id]},
    )


def upstream_failure(service: str, kind: str, error: UpstreamError, **fields: object) -> UpstreamError:
    """Log and count a failed upstream call; returns the error to raise."""
    log.error("upstream_failed", service=service, kind=kind, **fields)
    metrics.UPSTREAM_ERRORS.labels(service, kind).inc()
    return error
