"""What every capability's schemas are built from: OpenAPI 3.0 models, text fields PostgreSQL
can hold, the error body, and how timestamps and the old service's nullable columns are shown.

Request models are validated strictly (web/inputs.py): "5" is not a number, true is not 1, NaN is
not a number at all. Optional fields also accept null, as the old service did; the spec says so
with OpenAPI 3.0's `nullable` (sanic-ext publishes 3.0, where JSON Schema's `{"type": "null"}`
does not exist).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from sanic import Request
from sanic_ext import openapi

from .inputs import NO_NUL, parse_query


class _OpenAPI30(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return {**self.generate_inner(schema["schema"]), "nullable": True}


class Model(BaseModel):
    """Models whose JSON schema is OpenAPI 3.0."""

    model_config = ConfigDict(allow_inf_nan=False)

    @classmethod
    def model_json_schema(cls, *args, schema_generator=_OpenAPI30, **kwargs):
        return super().model_json_schema(*args, schema_generator=schema_generator, **kwargs)


def Text(min_length: int = 0, max_length: int | None = None):  # noqa: N802 - used like a type
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=NO_NUL)]


class ListQuery(Model):
    """A page of a list: `query: ListQuery` in a handler's arguments."""

    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=2**31 - 1)

    @classmethod
    def from_request(cls, request: Request) -> ListQuery:
        """The sanic-ext dependency behind a `query: ListQuery` argument (or a subclass's)."""
        return parse_query(cls, request)


# Responses: the handlers render them, the OpenAPI description shows them, schemathesis checks both.

# Columns the old service left nullable are shown as 0 / "" rather than null.
ZeroIfNull = Annotated[int, BeforeValidator(lambda value: value or 0)]
EmptyIfNull = Annotated[str, BeforeValidator(lambda value: value or "")]
# As the old service wrote them: "2026-11-26T09:12:03.120511+00:00" (pydantic would end in "Z").
Timestamp = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str)]


class Out(Model):
    """A response read straight from a Tortoise model (or any object with these attributes)."""

    model_config = ConfigDict(from_attributes=True)


@openapi.component
class ErrorOut(Model):
    detail: str
