"""Request bodies and query parameters: validated by sanic-ext, described in the OpenAPI spec.

Bodies are validated strictly (inputs.parse_body): "5" is not a number, true is not 1, NaN is not a
number at all.
Optional fields also accept null, as the old service did; the spec says so with OpenAPI 3.0's
`nullable` (sanic-ext publishes 3.0, where JSON Schema's `{"type": "null"}` does not exist).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

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
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=2**31 - 1)

    @classmethod
    def from_request(cls, request: Request) -> ListQuery:
        """The sanic-ext dependency behind a `query: ListQuery` argument."""
        return parse_query(cls, request)


@openapi.component
class CreateConversation(Model):
    """All optional, the body too. A title given here is a placeholder: the first question
    replaces it (a rename does not)."""

    title: Text(1, 500) | None = None
    model_tag: Text(1, 100) | None = None


@openapi.component
class RenameConversation(Model):
    title: Text(1, 500)


@openapi.component
class GenerationParams(Model):
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=4096)] | None = None
    top_k: Annotated[int, Field(ge=0, le=200)] | None = None
    thinking_mode: bool | None = Field(None, description="ask the model to reason inside <think>…</think> first")
    force_web_search: bool | None = Field(None, description="passed to the inference service as is")


@openapi.component
class SendMessage(GenerationParams):
    content: Text(1, 8000)


@openapi.component
class SwapModel(Model):
    model_tag: Text(1, 100)


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


@openapi.component
class ConversationOut(Out):
    id: UUID
    user_id: UUID
    title: str
    model_tag: str
    is_favorited: bool
    created_at: Timestamp
    updated_at: Timestamp


@openapi.component
class MessageOut(Out):
    id: UUID
    conversation_id: UUID
    role: Literal["user", "assistant", "system"]
    content: str
    token_count: ZeroIfNull = 0
    model_tag: EmptyIfNull
    inference_time_ms: ZeroIfNull = 0
    time_to_first_token_ms: ZeroIfNull = 0
    status: Literal["complete", "stopped", "generating"] = Field(
        description='"generating": the answer being generated, as it stands (the last message)'
    )
    created_at: Timestamp


@openapi.component
class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


@openapi.component
class ConversationPageOut(Out):
    items: list[ConversationOut]
    grouped: dict[str, list[ConversationOut]] = Field(description="items keyed by the UTC date of updated_at")
    limit: int
    offset: int


class AdminUsersQuery(ListQuery):
    limit: int = Field(100, ge=1, le=1000)


@openapi.component
class AdminUserOut(Out):
    id: UUID
    email: str | None
    name: str | None
    provider: str | None
    created_at: Timestamp | None
    last_login_at: Timestamp | None
    conversation_count: int
    message_count: int


@openapi.component
class AdminTotalsOut(Model):
    users: int
    conversations: int
    messages: int


@openapi.component
class AdminUsersOut(Model):
    items: list[AdminUserOut]
    totals: AdminTotalsOut


@openapi.component
class StoppedOut(Model):
    stopped: bool


@openapi.component
class HealthOut(Model):
    status: str
    ready: bool
    service: str


@openapi.component
class ReadinessOut(Model):
    status: str
    ready: bool
    checks: dict[str, str]
