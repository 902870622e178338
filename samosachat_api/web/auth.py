"""Bearer token -> user (validated by the auth service, cached briefly, one call per token at a
time): the API group's middleware, and the user and the administrator as dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import structlog
from cachetools import TLRUCache, TTLCache
from sanic import Request
from sanic.exceptions import Forbidden, Unauthorized

from .. import metrics
from ..clients import AuthClient, AuthenticatedUser

log = structlog.get_logger(__name__)

REJECTION_TTL_SECONDS = 30


class Authenticator:
    def __init__(self, client: AuthClient, ttl_seconds: float, max_size: int) -> None:
        self._client = client
        self._ttl = ttl_seconds
        # Keyed by the token's SHA-256, never the token; an entry lives until the TTL or the
        # token's own expiry, whichever comes first.
        self._cache: TLRUCache[str, AuthenticatedUser] = TLRUCache(
            maxsize=max_size, ttu=self._expires_at, timer=time.time
        )
        # Rejected tokens too, briefly: a client retrying a bad token must not cost an auth call each time.
        self._rejected: TTLCache[str, bool] = TTLCache(maxsize=max_size, ttl=REJECTION_TTL_SECONDS, timer=time.time)
        self._in_flight: dict[str, asyncio.Future[AuthenticatedUser | None]] = {}

    def _expires_at(self, _key: str, user: AuthenticatedUser, now: float) -> float:
        return min(now + self._ttl, user.expires_at or float("inf"))

    async def user_for(self, token: str) -> AuthenticatedUser:
        key = hashlib.sha256(token.encode()).hexdigest()
        if (user := self._cache.get(key)) is not None:
            metrics.AUTH_CACHE.labels("hit").inc()
            return user
        if key in self._rejected:
            metrics.AUTH_CACHE.labels("hit").inc()
            raise Unauthorized("Invalid or expired token", scheme="Bearer")
        metrics.AUTH_CACHE.labels("miss").inc()
        call = self._in_flight.get(key)
        if call is None:
            # Concurrent requests with the same token share this one call to the auth service.
            call = asyncio.ensure_future(self._client.validate(token))
            self._in_flight[key] = call
            call.add_done_callback(lambda _: self._in_flight.pop(key, None))
        user = await asyncio.shield(call)
        if user is None:
            self._rejected[key] = True
            raise Unauthorized("Invalid or expired token", scheme="Bearer")
        if user.expires_at is None or user.expires_at > time.time():
            self._cache[key] = user
        return user


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    # A bearer token is printable ASCII (RFC 6750); anything else is refused before it is hashed or sent on.
    if scheme.lower() != "bearer" or not token or not (token.isascii() and token.isprintable()):
        raise Unauthorized("Missing or malformed bearer token", scheme="Bearer")
    return token


async def authenticate(request: Request) -> None:
    """Request middleware of the API group: every route under it needs a valid bearer token."""
    authenticator: Authenticator = request.app.ctx.authenticator
    request.ctx.user = await authenticator.user_for(bearer_token(request))
    structlog.contextvars.bind_contextvars(user_id=str(request.ctx.user.id))


def current_user(request: Request) -> AuthenticatedUser:
    """The sanic-ext dependency behind a `user: AuthenticatedUser` handler argument."""
    return request.ctx.user


@dataclass(frozen=True)
class Administrator:
    user: AuthenticatedUser


def current_administrator(request: Request) -> Administrator:
    """The sanic-ext dependency behind an `admin: Administrator` handler argument: 403 for others."""
    user: AuthenticatedUser = request.ctx.user
    if not request.app.ctx.settings.is_admin(user.email, user.is_admin):
        raise Forbidden("Only administrators can do this")
    return Administrator(user)
