from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import UpstreamError, UpstreamUnavailable
from ._http import upstream_failure

END_OF_STREAM_SECONDS = 1.0  # how long to wait for the body to end after `done`


class InferenceClient:
    """`/generate` (a Server-Sent Events token stream) and `/models` on the inference service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[tuple[str, dict]]:
        """Yield each event as (its JSON text exactly as sent, the parsed object), up to `done`."""
        try:
            async with self._http.stream("POST", "/generate", json=payload) as response:
                if response.status_code >= 400:
                    status = response.status_code
                    raise _failure("status", UpstreamError(f"Inference service answered {status}"), upstream_status=status)
                events = _sse_data(response.aiter_raw())
                async for data in events:
                    event = _parse_event(data)
                    yield data, event
                    if event.get("done") is True:
                        await _read_to_end(events)
                        return
        except httpx.TimeoutException:
            raise _failure("timeout", UpstreamUnavailable("Inference service timed out")) from None
        except httpx.ConnectError:
            raise _failure("unreachable", UpstreamUnavailable("Inference service unavailable")) from None
        except httpx.TransportError as exc:
            raise _failure("broken_stream", UpstreamError("Inference stream broke off"), cause=type(exc).__name__) from None

    async def models(self) -> tuple[int, Any]:
        return await self._call("GET", "/models")

    async def swap_model(self, model_tag: str) -> tuple[int, Any]:
        return await self._call("POST", "/models/swap", json={"model_tag": model_tag})

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """The upstream's status and JSON; failures as UpstreamError (502) / UpstreamUnavailable (503)."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            error = UpstreamUnavailable("Inference service unavailable")
            raise _failure("unreachable", error, path=path, cause=type(exc).__name__) from None
        status = response.status_code
        if status >= 500:
            raise _failure("status", UpstreamError(f"Inference service answered {status}"), path=path, upstream_status=status)
        try:
            return status, response.json()
        except ValueError:
            raise _failure("malformed", UpstreamError("Inference service sent a malformed answer"), path=path) from None


async def _read_to_end(events: AsyncIterator[str]) -> None:
    """Read what follows `done` (the end of the body), so that httpx can reuse the connection."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(END_OF_STREAM_SECONDS):
            async for _ in events:
                pass


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event, whatever the chunking (multi-line data joined,
    comments and other fields skipped, LF, CRLF or CR line ends)."""
    pending = b""
    data: list[str] = []
    async for chunk in chunks:
        pending += chunk
        # A trailing CR may be the first half of a CRLF: keep it for the next chunk.
        text, pending = (pending[:-1], b"\r") if pending.endswith(b"\r") else (pending, b"")
        lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        pending = lines.pop() + pending
        for line in lines:  # whole lines: a multi-byte character is never split here
            if line.startswith(b"data:"):
                value = _decode(line[5:])
                data.append(value[1:] if value.startswith(" ") else value)
            elif not line and data:
                yield "\n".join(data)
                data = []
    if data:
        yield "\n".join(data)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _failure("malformed", UpstreamError("Inference service sent a malformed event")) from None


def _parse_event(data: str) -> dict:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise _failure("malformed", UpstreamError("Inference service sent a malformed event"))
    return event


def _failure(kind: str, error: UpstreamError, **fields: object) -> UpstreamError:
    return upstream_failure("inference", kind, error, **fields)
