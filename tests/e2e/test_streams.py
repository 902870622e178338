"""Answers through the running service on PostgreSQL, with upstreams that misbehave as real ones do.

Split and commented events, a connection dropped mid-answer, a long answer, a client that walks
away, a burst of requests with one new token, and the server's log lines.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from dev.processes import INTERNAL_KEY
from dev.standins import new_token

from ..conftest import eventually
from ..sse import positions
from .api import (
    Service,
    ask,
    bearer,
    create_conversation,
    events_as_they_come,
    user_id_of,
)

# Every token check takes the auth stand-in this long, as a remote service would; it is what
# lets a burst of requests with one new token arrive while its check is still under way.
AUTH_DELAY_MS = 100


async def test_events_split_across_writes_and_characters_arrive_intact(http, stored) -> None:
    me = bearer(new_token())
    cid = (await create_conversation(http, me))["id"]
    answer = await ask(http, me, cid, "split tokens=12")
    assert answer.status == 200
    expected = [f"tok{i}·" for i in range(12)]  # "·" is two bytes in UTF-8; writes are three bytes long
    assert answer.tokens == expected
    # each event relayed as the upstream sent it: its JSON text unchanged, no CR, no upstream comments
    data_lines = [line for line in answer.raw.split("\n") if line.startswith("data: ")]
    assert data_lines[:12] == [f'data: {{"token": "{token}", "gpu": 0}}' for token in expected]
    assert "\r" not in answer.raw and ": comment" not in answer.raw
    assert positions(answer.events) == list(range(1, 14))
    assert answer.events[-1].data == {"done": True}
    user_row, assistant_row = await stored.messages(cid)
    assert user_row["content"] == "split tokens=12"
    assert (assistant_row["content"], assistant_row["token_count"]) == ("".join(expected), 12)


@pytest.mark.parametrize("dropped_after", [0, 4])
async def test_upstream_dropping_mid_answer_ends_with_error_and_stores_no_answer(http, stored, dropped_after) -> None:
    me = bearer(new_token())
    cid = (await create_conversation(http, me))["id"]
    question = f"tokens=10 drop={dropped_after}"
    answer = await ask(http, me, cid, question)
    assert answer.status == 200
    assert answer.tokens == [f"tok{i} " for i in range(dropped_after)]
    *_, error, done = answer.events
    assert set(error.data) == {"error"} and isinstance(error.data["error"], str) and error.data["error"]
    assert done.data == {"done": True}
    assert len(answer.events) == dropped_after + 2
    rows = await stored.messages(cid)
    assert [(r["role"], r["content"]) for r in rows] == [("user", question)]
    conversation = (await http.get(f"/api/conversations/{cid}", headers=me)).json()
    assert [m["role"] for m in conversation["messages"]] == ["user"]
    # and the conversation is free for the next question
    retry = await ask(http, me, cid, "again tokens=2")
    assert retry.tokens == ["tok0 ", "tok1 "] and retry.events[-1].data == {"done": True}


async def test_a_5000_token_answer_is_relayed_and_stored_whole(http, stored) -> None:
    me = bearer(new_token())
    cid = (await create_conversation(http, me))["id"]
    answer = await ask(http, me, cid, "Tell me everything. tokens=5000")
    expected = [f"tok{i} " for i in range(5000)]
    assert answer.tokens == expected
    assert positions(answer.events) == list(range(1, 5002))
    assert answer.events[-1].data == {"done": True}
    _, assistant_row = await stored.messages(cid)
    assert assistant_row["content"] == "".join(expected)
    assert assistant_row["token_count"] == 5000


async def test_a_client_that_disconnects_still_gets_its_answer_stored(http, stored) -> None:
    me = bearer(new_token())
    cid = (await create_conversation(http, me))["id"]
    seen = []
    async with http.stream(
        "POST", f"/api/conversations/{cid}/messages", json={"content": "tokens=30 delay=50"}, headers=me
    ) as response:
        async for event in events_as_they_come(response):
            seen.append(event.data["token"])
            if len(seen) == 3:
                break  # leaving the block closes the connection mid-answer
    assert seen == ["tok0 ", "tok1 ", "tok2 "]

    async def assistant_rows():
        return [r for r in await stored.messages(cid) if r["role"] == "assistant"]

    rows = await eventually(assistant_rows, timeout=20)
    assert rows, "no answer was stored after the client went away"
    assert rows[0]["content"] == "".join(f"tok{i} " for i in range(30))
    assert rows[0]["token_count"] == 30


async def test_a_reloaded_page_reattaches_where_it_left_off(http, stored) -> None:
    me = bearer(new_token())
    cid = (await create_conversation(http, me))["id"]
    url = f"/api/conversations/{cid}"
    before = []
    async with http.stream("POST", f"{url}/messages", json={"content": "tokens=20 delay=50"}, headers=me) as response:
        async for event in events_as_they_come(response):
            before.append(event)
            if len(before) == 3:
                break
    assert positions(before) == [1, 2, 3]
    async with http.stream("GET", f"{url}/stream", headers={**me, "Last-Event-ID": str(before[-1].id)}) as response:
        assert response.status_code == 200  # still being generated after the first client left
        after = [event async for event in events_as_they_come(response)]
    assert positions(after) == list(range(4, 22))
    assert [e.data["token"] for e in before + after[:-1]] == [f"tok{i} " for i in range(20)]
    assert after[-1].data == {"done": True}
    _, assistant_row = await stored.messages(cid)  # stored before `done` was sent
    assert (assistant_row["content"], assistant_row["token_count"]) == ("".join(f"tok{i} " for i in range(20)), 20)


async def test_a_burst_with_one_new_token_makes_one_auth_call(http, service: Service) -> None:
    token = new_token()
    me = bearer(token)
    before = await service.auth_calls()
    responses = await asyncio.gather(*(http.get("/api/conversations", headers=me) for _ in range(100)))
    assert [r.status_code for r in responses] == [200] * 100
    assert await service.auth_calls() - before == 1
    # and once validated, the token is not checked again for a while
    responses = await asyncio.gather(*(http.get("/api/conversations", headers=me) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert await service.auth_calls() - before == 1


async def test_every_log_line_is_json_and_keeps_secrets_out(http, service: Service) -> None:
    token = new_token()
    me = bearer(token)
    secret_question = f"my secret question {uuid.uuid4()} tokens=3"
    cid = (await create_conversation(http, me))["id"]
    trace_id = f"e2e-{uuid.uuid4().hex}"
    answer = await ask(http, {**me, "X-Trace-Id": trace_id}, cid, secret_question)
    assert answer.events[-1].data == {"done": True}
    assert (await ask(http, me, cid, "tokens=5 drop=2")).events[-2].data.keys() == {"error"}
    assert (await http.get("/api/conversations", headers=bearer("not-a-token"))).status_code == 401
    assert (await http.get(f"/api/conversations/{uuid.uuid4()}", headers=me)).status_code == 404
    assert (await http.get("/no/such/route")).status_code == 404
    assert (await http.post(f"/api/conversations/{cid}/messages", content=b"{", headers=me)).status_code == 400

    async def complete_log():
        text = service.log_text()
        return text if text.endswith("\n") and trace_id in text else None

    text = await eventually(complete_log)
    assert text, f"the request with trace id {trace_id} was not logged"
    lines = [line for line in text.split("\n") if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"{service.log_path} line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"timestamp", "level", "event"} <= record.keys(), line
        assert record.get("service") == "chat-api", line
        records.append(record)
    asked = [r for r in records if r.get("trace_id") == trace_id and r["event"] == "request"]
    assert len(asked) == 1
    assert asked[0]["user_id"] == user_id_of(token)
    assert (asked[0]["method"], asked[0]["status"]) == ("POST", 200)
    requests = [r for r in records if r["event"] == "request"]
    assert all("trace_id" in r for r in requests)
    # user_id only once a request is authenticated, even on a connection an authenticated one used before
    anonymous = [r for r in requests if r["path"] == "/no/such/route" or r["status"] == 401]
    assert anonymous and not any("user_id" in r for r in anonymous)
    for secret in (token, INTERNAL_KEY, "my secret question"):
        assert secret not in text
