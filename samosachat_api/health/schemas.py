"""What the health routes answer."""

from __future__ import annotations

from sanic_ext import openapi

from ..web.schemas import Model


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
