"""The inference service's models, listed and swapped."""

from __future__ import annotations

from sanic import Sanic

from .routes import bp

__all__ = ["bp", "register"]


def register(app: Sanic) -> None:
    """Nothing of its own to inject: its handlers use the shared inference client."""
