"""Request input, read one way on every route: a JSON body or the query string, validated by a
model of schemas.py, or refused with a 400 that says, per field, what to change.

Unknown body fields and unknown query parameters are ignored (a cache-buster such as `?_=123`
is not an error); a blank value of a known parameter (`?limit=`) is.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import pydantic
from sanic import Request
from sanic.exceptions import BadRequest

Model = TypeVar("Model", bound=pydantic.BaseModel)

# PostgreSQL text cannot hold NUL characters; the schemas say so, which keeps the contract exact.
NO_NUL = r"^[^\x00]*$"

# pydantic's messages for these name the Python class ("...instance of SendMessage").
_OBJECT_EXPECTED = {"model_type", "model_attributes_type", "dict_type", "dataclass_type"}
_JSON_POSITION = re.compile(r" at line \d+ column \d+$")


class InvalidInput(BadRequest):
    message = "Invalid request"


def parse_body(model: type[Model], body: bytes, *, required: bool = True) -> Model:
    """The JSON body, validated strictly ("5" is not a number, true is not 1). A body that is not
    `required` may be left out: the model's defaults."""
    if not body:
        if required:
            raise InvalidInput("Invalid request: body: a JSON object is required")
        return model()
    return _validated(model.model_validate_json, body, strict=True)


def parse_query(model: type[Model], request: Request) -> Model:
    """The query string, blank values kept (unlike `request.args`): `?limit=` is an error, not 50."""
    return _validated(model.model_validate, dict(request.get_query_args(keep_blank_values=True)))


def _validated(validate, data: Any, **options: Any) -> Any:
    try:
        return validate(data, **options)
    except pydantic.ValidationError as exc:
        problems = [f"{_where(error)}: {_message(error)}" for error in exc.errors(include_url=False)]
        raise InvalidInput("Invalid request: " + "; ".join(problems)) from None


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def _message(error: Any) -> str:
    kind, message = error["type"], error["msg"]
    if kind in _OBJECT_EXPECTED:
        return "Input should be a JSON object"
    if kind == "string_pattern_mismatch" and error["ctx"]["pattern"] == NO_NUL:
        return "must not contain NUL characters (\\u0000)"
    if kind == "json_invalid":
        return _json_message(message)
    return message


def _json_message(message: str) -> str:
    """jiter's account of unreadable JSON, in words for the two that only a Unicode expert reads."""
    position = _JSON_POSITION.search(message)
    at = position.group() if position else ""
    if "surrogate" in message or "end of hex escape" in message:  # the latter: \ud800 unpaired
        return f"Invalid JSON: a lone surrogate escape (\\ud800 to \\udfff without its pair) is not a character{at}"
    if "unicode code point" in message:
        return f"Invalid JSON: the body must be UTF-8 text{at}"
    return message
