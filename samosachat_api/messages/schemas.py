"""What the answer routes read and answer."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field
from sanic_ext import openapi

from ..web.schemas import EmptyIfNull, Model, Out, Text, Timestamp, ZeroIfNull


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
class StoppedOut(Model):
    stopped: bool
