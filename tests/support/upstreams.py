"""respx stand-ins for the auth and inference services, as the tests script them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx

AUTH_URL = "http://auth.test"
INFERENCE_URL = "http://inference.test"


def sse(*events: dict) -> list[bytes]:
    """Each event as one well-formed SSE chunk."""
    return [f"data: {json.dumps(event)}\n\n".encode() for event in events]


def token_events(*tokens: str) -> list[dict]:
    return [{"token": token, "gpu": 0} for token in tokens] + [{"done": True}]


async def _body(chunks: Iterable[bytes | Exception], delay: float, on_closed) -> AsyncIterator[bytes]:
    sent = 0
    try:
        for chunk in chunks:
            if delay:
                await asyncio.sleep(delay)
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk
            sent += 1
    finally:
        on_closed(sent)


@dataclass
class Upstreams:
    router: respx.MockRouter
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth_delay: float = 0.0
    # What POST /generate answers next: a status, the chunks of its body, the delay between chunks.
    generate_status: int = 200
    generate_chunks: list[bytes | Exception] = field(default_factory=lambda: sse(*token_events("Hi", " there")))
    generate_delay: float = 0.0
    generate_requests: list[dict] = field(default_factory=list)
    on_body_closed: Callable[[int], None] = lambda sent: None  # the stream ended after `sent` chunks

    def add_user(self, *, email: str = "", is_admin: bool = False, exp: float | None = None) -> tuple[str, dict]:
        token = f"token-{uuid.uuid4().hex}"
        user = {"id": str(uuid.uuid4()), "email": email or f"{token}@example.com", "is_admin": is_admin}
        self.users[token] = {"user": user, "claims": {"sub": user["id"], "exp": exp or time.time() + 3600}}
        return token, user

    @property
    def auth_calls(self) -> int:
        return self.router.routes["auth"].call_count

    async def _validate(self, request: httpx.Request) -> httpx.Response:
        if self.auth_delay:
            await asyncio.sleep(self.auth_delay)
        token = json.loads(request.content)["token"]
        if token not in self.users:
            return httpx.Response(401, json={"valid": False, "reason": "unknown token"})
        return httpx.Response(200, json={"valid": True, **self.users[token]})

    def _generate(self, request: httpx.Request) -> httpx.Response:
        self.generate_requests.append(json.loads(request.content))
        return httpx.Response(
            self.generate_status,
            headers={"content-type": "text/event-stream"},
            content=_body(list(self.generate_chunks), self.generate_delay, self.on_body_closed),
        )

    def install(self) -> None:
        self.router.route(host="127.0.0.1").pass_through()
        self.router.post(f"{AUTH_URL}/auth/validate", name="auth").mock(side_effect=self._validate)
        self.router.post(f"{INFERENCE_URL}/generate", name="generate").mock(side_effect=self._generate)
        self.router.get(f"{INFERENCE_URL}/models", name="models").mock(
            return_value=httpx.Response(200, json={"models": ["default", "large"], "current": "default"})
        )
        self.router.post(f"{INFERENCE_URL}/models/swap", name="swap").mock(
            return_value=httpx.Response(200, json={"swapped": True, "current": "large"})
        )
