from __future__ import annotations

import itertools

import httpx
import structlog

from .. import metrics
from ..errors import UpstreamError
from ._network import AsyncioTransport

log = structlog.get_logger(__name__)

# Connect fast; a token stream may legitimately pause, but not for more than a minute.
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


async def _forward_trace_id(request: httpx.Request) -> None:
    trace_id = structlog.contextvars.get_contextvars().get("trace_id")
    if trace_id:
        request.headers["X-Trace-Id"] = trace_id


POOLS = 16
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=8)


class PoolsTransport(httpx.AsyncBaseTransport):
    """Requests spread over several connection pools in turn.

    httpcore looks at every connection of a pool at each request's start and end, and at every
    idle one once per idle connection (encode/httpcore#1035): with hundreds of token streams
    open, one pool cost more CPU than relaying the tokens (bench/README.md).
    """

    def __init__(self, transports: list[httpx.AsyncBaseTransport]) -> None:
        self._transports = transports
        self._turns = itertools.cycle(transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turns).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def upstream_transport() -> PoolsTransport:
    ssl_context = httpx.create_ssl_context()  # as httpx's default: SSL_CERT_FILE, else certifi
    return PoolsTransport([AsyncioTransport(POOL_LIMITS, ssl_context) for _ in range(POOLS)])


def new_http_client(base_url: str, internal_api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"X-Internal-API-Key": internal_api_key},
        timeout=TIMEOUT,
        transport=upstream_transport(),
        event_hooks={"request": [_forward_trace_id]},
    )


def upstream_failure(service: str, kind: str, error: UpstreamError, **fields: object) -> UpstreamError:
    """Log and count a failed upstream call; returns the error to raise."""
    log.error("upstream_failed", service=service, kind=kind, **fields)
    metrics.UPSTREAM_ERRORS.labels(service, kind).inc()
    return error
