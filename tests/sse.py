"""Reading the service's Server-Sent Events the way the web client does."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Event:
    id: int | None
    data: dict


def parse(text: str) -> tuple[list[Event], int]:
    """The events of an SSE body, and how many `: ping` comments it had."""
    events, pings = [], 0
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event_id, data = None, None
        for line in block.split("\n"):
            if line.startswith(":"):
                pings += 1
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            events.append(Event(event_id, data))
    return events, pings


async def post_stream(client, url, headers, body=None) -> tuple[int, list[Event]]:
    response = await client.post(url, json=body, headers=headers)
    events, _ = parse(response.text)
    return response.status_code, events


def tokens(events: list[Event]) -> str:
    return "".join(e.data["token"] for e in events if "token" in e.data)


def positions(events: list[Event]) -> list[int]:
    """The events' places in their answer (1, 2, …): ids are an answer's own base plus the place."""
    from samosachat_api.answers.answer import ID_STRIDE

    return [e.id % ID_STRIDE for e in events]
