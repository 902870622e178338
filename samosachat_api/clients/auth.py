from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import httpx

from .. import metrics
from ..errors import UpstreamError, UpstreamUnavailable
from ._http import upstream_failure


@dataclass(frozen=True)
class AuthenticatedUser:
    id: UUID
    email: str
    is_admin: bool
    expires_at: float | None  # the token's own `exp` claim, seconds since the epoch


class AuthClient:
    """`POST /auth/validate` on the auth service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def validate(self, token: str) -> AuthenticatedUser | None:
        """The token's user, or None when the auth service says the token is not valid."""
        try:
            with metrics.AUTH_CALL_SECONDS.time():
                response = await self._http.post("/auth/validate", json={"token": token})
        except httpx.TransportError as exc:
            error = UpstreamUnavailable("Auth service unavailable")
            raise _failure("unreachable", error, url=str(exc.request.url), cause=type(exc).__name__) from None
        if response.status_code == 401:
            return None
        if response.status_code == 403:
            raise _failure("rejected_key", UpstreamError("Auth service rejected this service's internal key"))
        if response.status_code != 200:
            status = response.status_code
            raise _failure("status", UpstreamError(f"Auth service answered {status}"), upstream_status=status)
        return _user_from(response)


def _failure(kind: str, error: UpstreamError, **fields: object) -> UpstreamError:
    return upstream_failure("auth", kind, error, **fields)


def _user_from(response: httpx.Response) -> AuthenticatedUser | None:
    try:
        body = response.json()
        if body.get("valid") is not True:
            return None
        user, claims = body["user"], body.get("claims") or {}
        exp = claims.get("exp")
        return AuthenticatedUser(
            id=UUID(str(user["id"])),
            email=str(user.get("email") or ""),
            is_admin=user.get("is_admin") is True,
            expires_at=float(exp) if exp is not None else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        raise _failure("malformed", UpstreamError("Auth service sent a malformed answer")) from None
