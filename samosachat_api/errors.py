"""Errors the service answers with, and the one handler that renders them as JSON.

SanicException
 ├── BadRequest (400)              sanic: a malformed request; a bad header value
 │    ├── InvalidInput             inputs.py: a body or query string its model refuses
 │    └── NothingToAnswer          regenerate without a user message
 ├── Unauthorized (401)            missing, malformed or rejected bearer token
 ├── Forbidden (403)               non-admin asking for an admin route
 ├── NotFound (404)                unknown route or id
 │    └── ConversationNotFound     not a conversation of this user
 ├── PayloadTooLarge (413)         sanic: body over REQUEST_MAX_SIZE
 ├── AnswerInProgress (409)        an answer is already being generated
 ├── AlreadyAnswered (409)         an ask retried with the Idempotency-Key of an answered question
 ├── TooManyAnswers (429)          the user has MAX_RUNNING_ANSWERS_PER_USER answers running
 ├── ShuttingDown (503)            no new answers while the worker drains on SIGTERM
 ├── AnswersUnavailable (503)      Redis, which shares the running answers, cannot be reached
 ├── UpstreamError (502)           auth or inference service answered wrongly
 │    └── UpstreamUnavailable (503) auth or inference service unreachable
 └── DatabaseUnavailable (503)     rendered for DATABASE_ERRORS (the database cannot be reached)
"""

from __future__ import annotations

import asyncpg
import structlog
from sanic import Request, json
from sanic.constants import HTTP_METHODS
from sanic.exceptions import BadRequest, MethodNotAllowed, NotFound, RequestCancelled, SanicException
from sanic.response import HTTPResponse

log = structlog.get_logger(__name__)


class NothingToAnswer(BadRequest):
    message = "The conversation has no user message to answer"


class ConversationNotFound(NotFound):
    message = "Conversation not found"


class AnswerInProgress(SanicException):
    status_code = 409
    message = "An answer is already being generated for this conversation"


class TooManyAnswers(SanicException):
    status_code = 429
    message = "Too many answers are being generated for you at once; try again when one has finished"
    headers = {"Retry-After": "5"}


class AnswersUnavailable(SanicException):
    status_code = 503
    message = "Running answers are unavailable (redis cannot be reached); try again in a moment"
    headers = {"Retry-After": "5"}


class AlreadyAnswered(SanicException):
    status_code = 409
    message = "This question (Idempotency-Key) was already answered"


class ShuttingDown(SanicException):
    status_code = 503
    message = "The service is restarting; try again in a moment"


class UpstreamError(SanicException):
    status_code = 502
    message = "Upstream service error"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    message = "Upstream service unavailable"


class DatabaseUnavailable(SanicException):
    status_code = 503
    message = "Database unavailable"


# What a query raises when PostgreSQL is down, restarting or unreachable, or cancels it.
DATABASE_ERRORS = (
    OSError,  # refused, reset, unresolvable, timed out; Tortoise's DBConnectionError is one too
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,  # the server's limit: Tortoise does not wrap it
    asyncpg.QueryCanceledError,  # statement_timeout, or an operator's pg_cancel_backend
)


def _allowed_methods(request: Request) -> str:
    """The Allow header sanic-routing leaves out of 405s on routes with path parameters."""
    allowed = []
    for method in HTTP_METHODS:
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
            allowed.append(method)
        except SanicException:
            pass
    return ", ".join(allowed)


# nginx's status for a request whose client left before the answer: neither the service's fault
# nor a response anyone reads. The access line logs it, at info.
CLIENT_CLOSED_REQUEST = 499


def render_error(request: Request, exc: BaseException) -> HTTPResponse:
    if isinstance(exc, RequestCancelled):
        return HTTPResponse(status=CLIENT_CLOSED_REQUEST)
    cause = {}
    if isinstance(exc, DATABASE_ERRORS):
        cause, exc = {"cause": type(exc).__name__}, DatabaseUnavailable()
    if not isinstance(exc, SanicException):
        log.exception("unhandled_error", error=type(exc).__name__)
        return json({"detail": "Internal server error"}, status=500)
    # The router's own 404 leaves the path out when it is "/".
    detail = f"Requested URL {request.path} not found" if type(exc) is NotFound else str(exc) or exc.message
    level = log.error if cause else log.warning
    level("request_failed", status=exc.status_code, error=type(exc).__name__, detail=detail, **cause)
    headers = dict(exc.headers or {})
    if isinstance(exc, MethodNotAllowed) and "Allow" not in headers:
        headers["Allow"] = _allowed_methods(request)
    return json({"detail": detail}, status=exc.status_code, headers=headers)
