"""Driving the running service over HTTP as the web client does, and reading what it stored."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from dev.processes import INTERNAL_KEY

from ..sse import Event, parse


@dataclass(frozen=True)
class Service:
    """One running server (the Procfile's `web:` command) and the stand-ins it talks to."""

    base_url: str
    database_url: str
    log_path: Path
    auth_url: str
    inference_url: str
    process: subprocess.Popen

    async def auth_calls(self) -> int:
        """How many `POST /auth/validate` calls the auth stand-in has answered so far."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.auth_url}/stats", headers={"X-Internal-API-Key": INTERNAL_KEY})
        response.raise_for_status()
        return response.json()["validate_calls"]

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_id_of(token: str) -> str:
    """The user id the auth stand-in gives a `user-<uuid>` token."""
    return token.split("-", 1)[1]


async def create_conversation(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict:
    response = await client.post("/api/conversations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@dataclass
class Streamed:
    """One streamed answer as the client received it."""

    status: int
    content_type: str
    raw: str
    events: list[Event]

    @property
    def tokens(self) -> list[str]:
        return [e.data["token"] for e in self.events if "token" in e.data]

    @property
    def text(self) -> str:
        return "".join(self.tokens)


async def stream(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, path: str = "messages", body: Any = None
) -> Streamed:
    """POST to an answer route (messages, regenerate) and read the whole event stream."""
    async with client.stream("POST", f"/api/conversations/{cid}/{path}", json=body, headers=headers) as response:
        raw = (await response.aread()).decode("utf-8")
    events, _ = parse(raw)
    return Streamed(response.status_code, response.headers.get("content-type", ""), raw, events)


async def ask(client: httpx.AsyncClient, headers: dict[str, str], cid: str, content: str) -> Streamed:
    return await stream(client, headers, cid, "messages", {"content": content})


async def events_as_they_come(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an open event-stream response, each as soon as its `data:` line arrives."""
    event_id = None
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            yield Event(event_id, json.loads(line[6:]))


def canonical_uuid(value: str) -> bool:
    """A UUID in its canonical text form (lower case, hyphenated), as both databases must give it."""
    return str(uuid.UUID(value)) == value


def utc_iso(value: str) -> datetime:
    """An ISO timestamp that states the UTC offset +00:00, parsed."""
    assert value.endswith("+00:00"), value
    return datetime.fromisoformat(value)


def _normal(row: dict[str, Any]) -> dict[str, Any]:
    """Ids as canonical text, as the API sends them."""
    return {key: str(value) if key == "id" or key.endswith("_id") else value for key, value in row.items()}


CONVERSATIONS = "SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE user_id = $1::uuid ORDER BY updated_at DESC"
MESSAGES = (
    "SELECT id, conversation_id, role, content, token_count, model_tag, inference_time_ms, created_at"
    " FROM messages WHERE conversation_id = $1::uuid ORDER BY created_at"
)


class StoredRows:
    """What the service stored in PostgreSQL, read with asyncpg."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def conversations(self, user_id: str) -> list[dict[str, Any]]:
        rows = await self._connection.fetch(CONVERSATIONS, user_id)
        return [_normal(dict(r)) for r in rows]

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = await self._connection.fetch(MESSAGES, conversation_id)
        return [_normal(dict(r)) for r in rows]
