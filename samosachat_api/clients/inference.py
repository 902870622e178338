from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ..errors import UpstreamError, UpstreamUnavailable
from ._http import upstream_failure

END_OF_STREAM_SECONDS = 0.1  # a well-behaved upstream ends the body with `done`
MAX_LINE_BYTES = 1024 * 1024  # a longer line (or one that never ends) is a malformed event
# The upstream statuses a client may see as they are (an unknown model, a bad request); 401/403
# mean this service's key is wrong, which is ours to fix, not the browser's: 502.
CLIENT_STATUSES = {400, 404, 409, 422}


class InferenceClient:
    """`/generate` (a Server-Sent Events token stream) and `/models` on the inference service."""

    def __init__(self, http: httpx.AsyncClient, generate_url: str = "/generate") -> None:
        self._http = http
        self._generate_url = generate_url  # a full URL (a Modal-style endpoint) or a path

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[tuple[str, dict]]:
        """Yield each event as (its JSON text exactly as sent, the parsed object); the last one is
        `done`. An `error` event, or a stream that ends or breaks before `done`, is an UpstreamError."""
        try:
            async with self._http.stream("POST", self._generate_url, json=payload) as response:
                if response.status_code >= 400:
                    status = response.status_code
                    raise _failure("status", UpstreamError(f"Inference service answered {status}"), upstream_status=status)
                body = response.aiter_bytes()
                async for data in _sse_data(body):
                    event = _parse_event(data)
                    if "error" in event:
                        raise _failure("error_event", UpstreamError(f"Inference service failed: {event['error']}"))
                    yield data, event
                    if event.get("done") is True:
                        await _read_to_end(body)
                        return
                raise _failure("incomplete", UpstreamError("Inference stream ended before it was done"))
        except httpx.TimeoutException as exc:
            raise _failure("timeout", UpstreamUnavailable("Inference service timed out"), url=str(exc.request.url)) from None
        except httpx.ConnectError as exc:
            error = UpstreamUnavailable("Inference service unavailable")
            raise _failure("unreachable", error, url=str(exc.request.url), cause=type(exc).__name__) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
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
            raise _failure("unreachable", error, url=str(exc.request.url), cause=type(exc).__name__) from None
        status = response.status_code
        if status in (401, 403):
            error = UpstreamError("Inference service refused this service's credentials")
            raise _failure("rejected_key", error, path=path, upstream_status=status, check="INTERNAL_API_KEY")
        if status >= 400 and status not in CLIENT_STATUSES:
            raise _failure("status", UpstreamError(f"Inference service answered {status}"), path=path, upstream_status=status)
        try:
            return status, response.json()
        except ValueError:
            raise _failure("malformed", UpstreamError("Inference service sent a malformed answer"), path=path) from None


async def _read_to_end(body: AsyncIterator[bytes]) -> None:
    """Read the end of the body after `done`, so that httpx can reuse the connection. The answer is
    complete by then: an end that is slow or broken only costs the connection."""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(END_OF_STREAM_SECONDS):
            async for _ in body:
                pass


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined; comments and other fields skipped)."""
    data: list[str] = []
    async for line in _lines(chunks):
        if line.startswith(b"data:"):
            value = _decode(line[5:])
            data.append(value[1:] if value.startswith(" ") else value)
        elif not line and data:
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a byte stream, whatever its chunking and line ends (LF, CRLF or CR). Lines are
    whole, so a multi-byte character is never split."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        if b"\n" in chunk or b"\r" in chunk:  # else the line goes on: no rescanning of long lines
            for line in _cut_complete_lines(pending):
                yield line
        if len(pending) > MAX_LINE_BYTES:
            raise _malformed_event()
    pending += b"\n"  # the end of the stream ends the last line
    for line in _cut_complete_lines(pending):
        yield line


def _cut_complete_lines(pending: bytearray) -> list[bytes]:
    # A CR at the very end may be the first half of a CRLF: it waits for the next chunk.
    limit = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
    end = max(pending.rfind(b"\n", 0, limit), pending.rfind(b"\r", 0, limit)) + 1
    complete = bytes(pending[:end])
    del pending[:end]
    return complete.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[:-1]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _malformed_event() from None


def _parse_event(data: str) -> dict:
    try:
        event = orjson.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise _malformed_event()
    return event


def _malformed_event() -> UpstreamError:
    return _failure("malformed", UpstreamError("Inference service sent a malformed event"))


def _failure(kind: str, error: UpstreamError, **fields: object) -> UpstreamError:
    return upstream_failure("inference", kind, error, **fields)
