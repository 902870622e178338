"""Request bodies and query parameters: validated by sanic-ext, described in the OpenAPI spec.

Bodies are validated strictly (`@validate(..., strict=True)`): "5" is not a number, true is not 1.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)


class CreateConversation(BaseModel):
    title: str | None = Field(None, max_length=500)
    model_tag: str | None = Field(None, max_length=100)


class RenameConversation(BaseModel):
    title: str = Field(min_length=1, max_length=500)


class GenerationParams(BaseModel):
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    top_k: int | None = Field(None, ge=0, le=200)


class SendMessage(GenerationParams):
    content: str = Field(min_length=1, max_length=8000)


class SwapModel(BaseModel):
    model_tag: str = Field(min_length=1, max_length=100)
