"""Liveness and readiness (public: outside the authenticated API)."""

from .routes import bp

__all__ = ["bp"]
