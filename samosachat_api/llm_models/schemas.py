"""What the model routes read."""

from __future__ import annotations

from sanic_ext import openapi

from ..web.schemas import Model, Text


@openapi.component
class SwapModel(Model):
    model_tag: Text(1, 100)
