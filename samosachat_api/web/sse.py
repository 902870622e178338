"""An answer's events relayed to a client as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sanic import Request

from ..answers import Batch

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _event(event_id: int, data: str) -> str:
    data = data.replace("\n", "\ndata: ")  # multi-line data (rare) needs a `data:` field per line
    return f"id: {event_id}\ndata: {data}\n\n"


async def relay(request: Request, events: AsyncIterator[Batch]) -> None:
    """Send an answer's events as Server-Sent Events, with `: ping` when idle."""
    response = await request.respond(content_type="text/event-stream", headers=SSE_HEADERS)
    async for first_id, batch in events:
        if not batch:
            await response.send(": ping\n\n")
        else:  # all the events that arrived since the last send, in one write
            await response.send("".join(_event(i, data) for i, data in enumerate(batch, first_id)))
    await response.eof()
