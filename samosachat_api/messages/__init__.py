"""Answers: ask, ask again, re-attach, stop; the generation and storing of each answer."""

from __future__ import annotations

from sanic import Sanic

from .generation import Answering
from .routes import bp

__all__ = ["bp", "register"]


def register(app: Sanic) -> None:
    """`answering: Answering` in a handler's arguments: what starts answers."""
    app.ext.dependency(Answering(app.ctx.answers, app.ctx.inference, app.ctx.settings))
