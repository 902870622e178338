from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog

from ..errors import UpstreamError, UpstreamUnavailable

log = structlog.get_logger(__name__)


class InferenceClient:
    """`/generate` (a Server-Sent Events token stream) and `/models` on the inference service."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[tuple[str, dict]]:
        """Yield each event as (its JSON text exactly as sent, the parsed object)."""
        try:
            async with self._http.stream("POST", "/generate", json=payload) as response:
                if response.status_code >= 400:
                    log.error("inference_error", upstream_status=response.status_code)
                    raise UpstreamError(f"Inference service answered {response.status_code}")
                async for data in _sse_data(response.aiter_lines()):
                    yield data, _parse_event(data)
        except httpx.TimeoutException:
            log.error("inference_timeout")
            raise UpstreamUnavailable("Inference service timed out") from None
        except httpx.ConnectError:
            log.error("inference_unreachable")
            raise UpstreamUnavailable("Inference service unavailable") from None
        except httpx.TransportError as exc:
            log.error("inference_stream_broken", error=type(exc).__name__)
            raise UpstreamError("Inference stream broke off") from None

    async def models(self) -> tuple[int, Any]:
        return await self._call("GET", "/models")

    async def swap_model(self, model_tag: str) -> tuple[int, Any]:
        return await self._call("POST", "/models/swap", json={"model_tag": model_tag})

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """The upstream's status and JSON; failures as UpstreamError (502) / UpstreamUnavailable (503)."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            log.error("inference_unreachable", path=path, error=type(exc).__name__)
            raise UpstreamUnavailable("Inference service unavailable") from None
        if response.status_code >= 500:
            log.error("inference_error", path=path, upstream_status=response.status_code)
            raise UpstreamError(f"Inference service answered {response.status_code}")
        try:
            return response.status_code, response.json()
        except ValueError:
            log.error("inference_malformed_answer", path=path)
            raise UpstreamError("Inference service sent a malformed answer") from None


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
        log.error("inference_malformed_event")
        raise UpstreamError("Inference service sent a malformed event")
    return event
