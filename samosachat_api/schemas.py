"""Request bodies and query parameters: validated by sanic-ext, described in the OpenAPI spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class CreateConversation(_Body):
    title: str | None = Field(None, max_length=500)
    model_tag: str | None = Field(None, max_length=100)


class RenameConversation(_Body):
    title: str = Field(min_length=1, max_length=500)


class GenerationParams(_Body):
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    top_k: int | None = Field(None, ge=0, le=200)


class SendMessage(GenerationParams):
    content: str = Field(min_length=1, max_length=8000)


class SwapModel(_Body):
    model_tag: str = Field(min_length=1, max_length=100)
