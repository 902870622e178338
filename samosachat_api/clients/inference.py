from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import UpstreamError, UpstreamUnavailable
from ._http import upstream_failure


class InferenceClient:
    """`/generate` (a Server-Sent Events token stream) and `/models` on the inference service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[tuple[str, dict]]:
        """Yield each event as (its JSON text exactly as sent, the parsed object)."""
        try:
            async with self._http.stream("POST", "/generate", json=payload) as response:
                if response.status_code >= 400:
                    status = response.status_code
                    raise _failure("status", UpstreamError(f"Inference service answered {status}"), upstream_status=status)
                async for data in _sse_data(response.aiter_lines()):
                    yield data, _parse_event(data)
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


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each Server-Sent Event (multi-line data joined, comments skipped)."""
    buffered: list[str] = []
    async for line in lines:
        if not line:
            if buffered:
                yield "\n".join(buffered)
                buffered = []
        elif line.startswith("data:"):
            value = line[5:]
            buffered.append(value[1:] if value.startswith(" ") else value)
    if buffered:
        yield "\n".join(buffered)


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
