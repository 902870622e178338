"""A conversation's whole life through the running service.

create, list, ask (streamed), read back, rename, regenerate, stop, delete; checked through the API
and in the database itself: canonical UUIDs, newest activity first, UTC timestamps, cascade delete.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from dev.standins import new_token

from ..sse import positions
from .api import (
    Service,
    ask,
    bearer,
    canonical_uuid,
    create_conversation,
    events_as_they_come,
    stream,
    user_id_of,
    utc_iso,
)


def assert_utc_conversation(conversation: dict, user_id: str) -> None:
    assert canonical_uuid(conversation["id"])
    assert conversation["user_id"] == user_id
    assert utc_iso(conversation["created_at"]) <= utc_iso(conversation["updated_at"])


async def listed_ids(http: httpx.AsyncClient, headers: dict) -> list[str]:
    response = await http.get("/api/conversations", headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    for item in page["items"]:
        assert_utc_conversation(item, item["user_id"])  # as read back from the database
        # grouped by the UTC day of updated_at, each day keeping the list's order
        assert item in page["grouped"][item["updated_at"][:10]]
    assert [c for day in page["grouped"].values() for c in day] == page["items"]
    return [c["id"] for c in page["items"]]


async def test_conversation_life_cycle(service: Service, http: httpx.AsyncClient, stored) -> None:
    token = new_token()
    me, user_id = bearer(token), user_id_of(token)

    # create two; the newer one is listed first
    first = await create_conversation(http, me)
    second = await create_conversation(http, me, title="Chai", model_tag="large")
    for conversation in (first, second):
        assert_utc_conversation(conversation, user_id)
    assert (first["title"], first["model_tag"]) == ("New conversation", "default")
    assert first["is_favorited"] is False
    assert (second["title"], second["model_tag"]) == ("Chai", "large")
    assert await listed_ids(http, me) == [second["id"], first["id"]]
    rows = await stored.conversations(user_id)
    assert [r["id"] for r in rows] == [second["id"], first["id"]]
    assert rows[1]["created_at"] == utc_iso(first["created_at"])
    assert all(r["created_at"].utcoffset() == timedelta(0) for r in rows)

    # ask in the older one: the answer streams, is stored, and the conversation moves to the top
    question = "How do I fold a samosa? tokens=5 delay=10"
    answer = await ask(http, me, first["id"], question)
    assert answer.status == 200 and answer.content_type.startswith("text/event-stream")
    assert answer.tokens == [f"tok{i} " for i in range(5)]
    assert positions(answer.events) == [1, 2, 3, 4, 5, 6]
    assert answer.events[-1].data == {"done": True}
    assert await listed_ids(http, me) == [first["id"], second["id"]]

    response = await http.get(f"/api/conversations/{first['id']}", headers=me)
    assert response.status_code == 200
    conversation = response.json()
    assert conversation["is_favorited"] is False
    assert conversation["title"] == question  # the first question titles a default-titled conversation
    assert utc_iso(conversation["updated_at"]) > utc_iso(first["updated_at"])
    user_message, assistant_message = conversation["messages"]
    assert (user_message["role"], user_message["content"]) == ("user", question)
    assert assistant_message["role"] == "assistant"
    assert assistant_message["content"] == "tok0 tok1 tok2 tok3 tok4 "
    assert assistant_message["token_count"] == 5
    assert assistant_message["model_tag"] == "default"
    assert assistant_message["inference_time_ms"] >= 50  # the stand-in waited 10 ms before each token
    for message in conversation["messages"]:
        assert canonical_uuid(message["id"]) and message["conversation_id"] == first["id"]
    assert utc_iso(user_message["created_at"]) <= utc_iso(assistant_message["created_at"])

    rows = await stored.messages(first["id"])
    assert [(r["id"], r["role"], r["content"]) for r in rows] == [
        (m["id"], m["role"], m["content"]) for m in conversation["messages"]
    ]
    assert (rows[1]["token_count"], rows[1]["inference_time_ms"]) == (5, assistant_message["inference_time_ms"])
    assert [r["created_at"] for r in rows] == [utc_iso(m["created_at"]) for m in conversation["messages"]]
    assert all(r["created_at"].utcoffset() == timedelta(0) for r in rows)

    # rename: the renamed conversation is the most recently active one
    response = await http.put(f"/api/conversations/{second['id']}", json={"title": "Masala chai"}, headers=me)
    assert response.status_code == 200 and response.json()["title"] == "Masala chai"
    assert_utc_conversation(response.json(), user_id)
    assert await listed_ids(http, me) == [second["id"], first["id"]]
    assert [r["title"] for r in await stored.conversations(user_id)] == ["Masala chai", question]

    # regenerate: a new answer takes the old one's place
    regenerated = await stream(http, me, first["id"], "regenerate")
    assert regenerated.status == 200 and regenerated.events[-1].data == {"done": True}
    assert regenerated.tokens == [f"tok{i} " for i in range(5)]
    rows = await stored.messages(first["id"])
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[0]["id"] == user_message["id"]
    assert rows[1]["id"] != assistant_message["id"]
    assert (rows[1]["content"], rows[1]["token_count"]) == (regenerated.text, 5)

    # stop a running answer after three tokens: what was relayed is what is stored
    url = f"/api/conversations/{first['id']}"
    relayed = []
    async with http.stream("POST", f"{url}/messages", json={"content": "Go on. tokens=200 delay=20"}, headers=me) as running:
        assert running.status_code == 200
        async for event in events_as_they_come(running):
            relayed.append(event.data)
            if len(relayed) == 3:
                busy = await http.post(f"{url}/messages", json={"content": "me too"}, headers=me)
                assert busy.status_code == 409
                stop = await http.post(f"{url}/stop", headers=me)
                assert stop.status_code == 200 and stop.json() == {"stopped": True}
    assert relayed[-1] == {"done": True}
    assert not any("error" in event for event in relayed)
    seen = [event["token"] for event in relayed if "token" in event]
    assert 3 <= len(seen) < 200
    assert (await http.post(f"{url}/stop", headers=me)).json() == {"stopped": False}
    assert (await http.get(f"{url}/stream", headers=me)).status_code == 204
    rows = await stored.messages(first["id"])
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert (rows[3]["content"], rows[3]["token_count"]) == ("".join(seen), len(seen))

    # someone else sees none of it
    stranger = bearer(new_token())
    assert (await http.get(url, headers=stranger)).status_code == 404
    assert (await http.delete(url, headers=stranger)).status_code == 404
    assert await listed_ids(http, stranger) == []

    # delete: gone from the API, and its messages gone from the database with it
    response = await http.delete(url, headers=me)
    assert response.status_code == 204
    assert (await http.get(url, headers=me)).status_code == 404
    assert (await http.delete(url, headers=me)).status_code == 404
    assert await listed_ids(http, me) == [second["id"]]
    assert [r["id"] for r in await stored.conversations(user_id)] == [second["id"]]
    assert await stored.messages(first["id"]) == []

    # the admin dashboard counts this user (no auth `users` table here: ids only)
    users = (await http.get("/api/admin/users?limit=1000", headers=bearer(new_token(admin=True)))).json()
    mine = next(u for u in users["items"] if u["id"] == user_id)
    assert (mine["email"], mine["conversation_count"], mine["message_count"]) == (None, 1, 0)
    assert users["totals"]["users"] >= 1 and users["totals"]["conversations"] >= 1


async def test_deleting_a_conversation_while_it_is_answered(service: Service, http: httpx.AsyncClient, stored) -> None:
    token = new_token()
    me = bearer(token)
    cid = (await create_conversation(http, me))["id"]
    url = f"/api/conversations/{cid}"
    relayed = []
    async with http.stream("POST", f"{url}/messages", json={"content": "tokens=15 delay=20"}, headers=me) as running:
        async for event in events_as_they_come(running):
            relayed.append(event.data)
            if len(relayed) == 3:
                assert (await http.delete(url, headers=me)).status_code == 204
    assert relayed[-1] == {"done": True}  # the stream still ends properly
    assert (await http.get(url, headers=me)).status_code == 404
    assert await stored.messages(cid) == []  # neither the question nor an answer stored after the delete
    assert await stored.conversations(user_id_of(token)) == []
