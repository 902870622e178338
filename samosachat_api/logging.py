"""JSON logs on stdout with the request's trace_id and user_id on every line."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import orjson
import structlog
from sanic import Request
from sanic.response import HTTPResponse

SERVICE = "chat-api"
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # whole value: fullmatch, never match()


def _add_service(_logger, _method, event_dict):
    event_dict["service"] = SERVICE
    return event_dict


def _render(event_dict, **kwargs) -> str:
    return orjson.dumps(event_dict, **kwargs).decode()


class _StdoutLogger:
    """structlog's output: one line to sys.stdout as it is when the line is logged, not as it was
    at set-up (test runners swap it between set-up and test)."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # for add_logger_name

    def msg(self, line: str) -> None:
        sys.stdout.write(line + "\n")

    debug = info = warning = error = critical = exception = msg


class _StdoutHandler(logging.StreamHandler):
    """The standard library's output (sanic, tortoise, asyncpg): sys.stdout as it is, as above."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str) -> None:
    """One JSON line per event, from structlog (the service) and the standard library (sanic,
    tortoise, asyncpg) alike. structlog's lines skip the standard library's logging machinery."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service,
    ]
    renderer = structlog.processors.JSONRenderer(serializer=_render)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_StdoutLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    # At DEBUG, Tortoise logs every query with its parameters: message contents.
    logging.getLogger("tortoise.db_client").setLevel(max(logging.getLevelName(level), logging.INFO))
    for name in ("sanic.root", "sanic.error", "sanic.server", "tortoise", "asyncpg"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # log_access writes the access line; `sanic --dev` turns Sanic's own (empty here) back on.
    logging.getLogger("sanic.access").disabled = True


log = structlog.get_logger("samosachat_api.access")


def trace_id_of(request: Request) -> str:
    for header in ("x-trace-id", "x-request-id"):
        value = request.headers.get(header, "")
        if _TRACE_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


async def bind_request_context(request: Request) -> None:
    # Keep-alive requests share a connection task, so the context is reset per request.
    structlog.contextvars.clear_contextvars()
    request.ctx.trace_id = trace_id_of(request)
    request.ctx.started = time.perf_counter()
    structlog.contextvars.bind_contextvars(trace_id=request.ctx.trace_id)


async def log_access(request: Request, response: HTTPResponse) -> None:
    if not hasattr(request.ctx, "trace_id"):  # failed before request middleware (e.g. 404, 413)
        await bind_request_context(request)
    response.headers["X-Trace-Id"] = request.ctx.trace_id
    log.info(
        "request",
        method=request.method,
        path=request.path,
        status=response.status,
        duration_ms=round((time.perf_counter() - request.ctx.started) * 1000, 1),
    )
