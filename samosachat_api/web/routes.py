"""What every capability's routes share: the route decorator (its OpenAPI description and its
body read), the documented responses, and rendering one."""

from __future__ import annotations

import functools
from typing import Any

import orjson
from pydantic import BaseModel
from sanic import Request
from sanic.response import HTTPResponse
from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import (
    Component,
    Parameter,
    RequestBody,
    Response,
)
from sanic_ext.extensions.openapi.types import Schema

from .inputs import parse_body
from .schemas import ErrorOut

BEARER = {"bearer": []}

_ERRORS = {
    400: "Invalid input",
    401: "Missing, malformed or rejected bearer token",
    403: "Not allowed for this user",
    404: "Not found (also another user's conversation, or an id that is not a UUID)",
    409: "An answer is already being generated for this conversation",
    413: "Request body over 1 MiB",
    429: "Too many answers being generated for this user at once (see Retry-After)",
    502: "An upstream service answered wrongly",
    503: "The database, Redis or an upstream service is unavailable",
}
# Every authenticated route can answer these.
AUTHENTICATED = (401, 413, 502, 503)

EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": "Server-Sent Events: `id: N` and `data: <the inference service's JSON>` per event, "
            '`: ping` comments while idle, ending with `data: {"done": true}`',
        }
    }
}


def responses(ok: dict[int, Any], *errors: int, authenticated: bool = True) -> list[Response]:
    """`ok` maps statuses to a response model, a content dict, or None for no body."""
    documented = [Response(_content(body), status=status, description="Success") for status, body in ok.items()]
    for status in sorted(set(errors) | set(AUTHENTICATED if authenticated else ())):
        documented.append(Response(_content(ErrorOut), status=status, description=_ERRORS[status]))
    return documented


def query_parameters(model: type[BaseModel]) -> list[Parameter]:
    """The query parameters, described by the same model that validates them."""
    properties = model.model_json_schema()["properties"]
    return [Parameter(name, Schema(**prop), "query") for name, prop in properties.items()]


def json_body(model: type[BaseModel], required: bool = True) -> RequestBody:
    """The request body, described by the same model that validates it."""
    return RequestBody(_content(model), required=required)


def api_route(
    summary: str,
    response: list[Response],
    body: type[BaseModel] | None = None,
    optional_body: type[BaseModel] | None = None,
    **definition: Any,
):
    """An API route's OpenAPI description (bearer-secured), and its JSON body read by the model
    the description shows, passed to the handler as `body`. An `optional_body` may also be left
    out: the handler then gets the model's defaults."""

    def decorate(handler):
        described = None
        if body is not None:
            handler, described = _reads_body(body, handler, required=True), json_body(body)
        if optional_body is not None:
            handler, described = _reads_body(optional_body, handler, required=False), json_body(optional_body, required=False)
        return openapi.definition(summary=summary, body=described, response=response, secured=BEARER, **definition)(handler)

    return decorate


def _reads_body(model: type[BaseModel], handler, required: bool):
    @functools.wraps(handler)
    async def with_body(request: Request, *args: Any, **kwargs: Any):
        body = parse_body(model, request.body, required=required)
        return await handler(request, *args, body=body, **kwargs)

    return with_body


def _content(body: Any) -> Any:
    if body is None or isinstance(body, dict):
        return body
    return {"application/json": {"schema": Component(body)}}


def render(out: BaseModel | dict[str, Any], status: int = 200) -> HTTPResponse:
    """A response model as the JSON body: the same schema the description shows. The hot reads
    pass rows (plain dicts) instead, in the shape of their model; orjson writes them (asyncpg's own
    UUID type through `str`)."""
    body = out.model_dump_json() if isinstance(out, BaseModel) else orjson.dumps(out, default=str)
    return HTTPResponse(body, status=status, content_type="application/json")
