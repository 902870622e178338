"""Answers outlive connections: event ids, resume, two readers, stop, one at a time, heartbeats, memory."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid

import httpx
import pytest

from samosachat_api.answers import Answer

from .conftest import eventually, new_conversation
from .sse import parse, positions, post_stream, tokens
from .support.upstreams import sse, token_events

WORDS = [f"w{i} " for i in range(20)]


async def start_slow_answer(client, headers, upstreams, app, delay=0.02):
    """Start an answer of 20 tokens, one every `delay` seconds; returns (conversation id, its task)."""
    upstreams.generate_chunks = sse(*token_events(*WORDS))
    upstreams.generate_delay = delay
    cid = await new_conversation(client, headers)
    task = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", headers, {"content": "go"}))
    await eventually(lambda: app.ctx.answers.follow(uuid.UUID(cid), 0))
    return cid, task


def event_id(app, cid, position):
    """The id of the running answer's event at `position`."""
    return str(app.ctx.answers._answers[uuid.UUID(cid)].base + position)


async def test_resume_from_an_event_id_replays_the_rest_once_in_order(client, alice, upstreams, app):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    await asyncio.sleep(0.15)
    resumed = await client.get(f"/api/conversations/{cid}/stream", headers={**alice, "Last-Event-ID": event_id(app, cid, 5)})
    events, _ = parse(resumed.text)
    assert resumed.headers["content-type"].startswith("text/event-stream")
    assert positions(events) == list(range(6, 22))
    assert tokens(events) == "".join(WORDS[5:])
    assert events[-1].data == {"done": True}
    _, original = await first
    assert positions(original) == list(range(1, 22))


async def test_resume_with_query_parameter_and_from_start(client, alice, upstreams, app):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    by_query, from_start = await asyncio.gather(
        client.get(f"/api/conversations/{cid}/stream?last_event_id={event_id(app, cid, 19)}", headers=alice),
        client.get(f"/api/conversations/{cid}/stream", headers=alice),
    )
    assert positions(parse(by_query.text)[0]) == [20, 21]
    assert tokens(parse(from_start.text)[0]) == "".join(WORDS)
    await first


async def test_two_readers_each_see_every_event_once(client, alice, upstreams, app):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    tab_a, tab_b = await asyncio.gather(
        client.get(f"/api/conversations/{cid}/stream", headers=alice),
        client.get(f"/api/conversations/{cid}/stream", headers=alice),
    )
    for tab in (tab_a, tab_b):
        events, _ = parse(tab.text)
        assert positions(events) == list(range(1, 22))
    await first


async def test_nothing_to_resume_is_204(client, alice):
    cid = await new_conversation(client, alice)
    response = await client.get(f"/api/conversations/{cid}/stream", headers=alice)
    assert response.status_code == 204 and response.content == b""


async def test_stop_stores_the_partial_answer_and_ends_every_stream(client, alice, upstreams, app, db):
    closed_after: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    upstreams.on_body_closed = closed_after.set_result
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.05)
    reader = asyncio.create_task(client.get(f"/api/conversations/{cid}/stream", headers=alice))
    await asyncio.sleep(0.3)
    response = await client.post(f"/api/conversations/{cid}/stop", headers=alice)
    assert response.json() == {"stopped": True}
    _, events = await first
    resumed, _ = parse((await reader).text)
    assert events[-1].data == {"done": True} and resumed[-1].data == {"done": True}
    assert await asyncio.wait_for(closed_after, 2) < len(WORDS)  # the upstream request was closed early
    answer = await db.fetchrow("SELECT content, token_count, inference_time_ms FROM messages WHERE role = 'assistant'")
    assert answer["content"] == tokens(events)
    assert 0 < answer["token_count"] < 20
    assert answer["inference_time_ms"] > 0
    second = await client.post(f"/api/conversations/{cid}/stop", headers=alice)
    assert second.json() == {"stopped": False}


async def test_stop_with_nothing_running(client, alice):
    cid = await new_conversation(client, alice)
    assert (await client.post(f"/api/conversations/{cid}/stop", headers=alice)).json() == {"stopped": False}


async def test_client_disconnect_does_not_stop(client, alice, upstreams, app, db):
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.01)
    first.cancel()
    stored = await eventually(lambda: db.fetchval("SELECT content FROM messages WHERE role = 'assistant'"))
    assert stored == "".join(WORDS)


@pytest.mark.parametrize("route,body", [("messages", {"content": "again"}), ("regenerate", None)])
async def test_one_answer_at_a_time(client, alice, upstreams, app, db, route, body):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    response = await client.post(f"/api/conversations/{cid}/{route}", json=body, headers=alice)
    assert response.status_code == 409
    assert response.json() == {"detail": "An answer is already being generated for this conversation"}
    await first
    contents = [r["content"] for r in await db.fetch("SELECT content FROM messages ORDER BY created_at")]
    assert contents == ["go", "".join(WORDS)]
    assert len(upstreams.generate_requests) == 1


async def test_other_conversations_are_not_blocked(client, alice, upstreams, app):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    other = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{other}/messages", alice, {"content": "hi"})
    assert status == 200 and events[-1].data == {"done": True}
    await first


@pytest.fixture
def fast_heartbeat(env):
    env["SSE_HEARTBEAT_SECONDS"] = "0.05"


async def test_heartbeats_while_the_model_is_quiet(fast_heartbeat, client, alice, upstreams, app):
    upstreams.generate_chunks = sse(*token_events("slow", "ly"))
    upstreams.generate_delay = 0.2
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=alice)
    events, pings = parse(response.text)
    assert pings >= 4
    assert ": ping\n\n" in response.text
    assert tokens(events) == "slowly"
    resumed = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "again"}))
    await eventually(lambda: app.ctx.answers.follow(uuid.UUID(cid), 0))
    again = await client.get(f"/api/conversations/{cid}/stream", headers=alice)
    assert parse(again.text)[1] >= 2
    await resumed


async def test_finished_answers_are_released(client, alice, upstreams, app, db):
    upstreams.generate_chunks = sse(*token_events("a", "b"))
    cid = await new_conversation(client, alice)
    for i in range(60):
        await client.post(f"/api/conversations/{cid}/messages", json={"content": f"q{i}"}, headers=alice)
    assert len(app.ctx.answers) == 0
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Answer)]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE role = 'assistant'") == 60


async def test_event_payloads_are_unchanged_with_ids(client, alice, upstreams):
    upstreams.generate_chunks = [b'data: {"token":"x","gpu":3}\n\n', b'data: {"done":true}\n\n']
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=alice)
    first, second = [e.id for e in parse(response.text)[0]]
    assert response.text == f'id: {first}\ndata: {{"token":"x","gpu":3}}\n\nid: {second}\ndata: {{"done":true}}\n\n'
    assert second == first + 1
    json.loads('{"token":"x","gpu":3}')


@pytest.fixture
def slow_history(monkeypatch):
    """Preparing an answer (reading the history) takes 0.3 s; `failure` makes it fail after that."""
    from samosachat_api.messages import store as messages

    state = {"failure": None}
    recent, for_regenerate = messages.recent, messages.history_for_regenerate

    async def slow(real, *args):
        await asyncio.sleep(0.3)
        if state["failure"]:
            raise state["failure"]
        return await real(*args)

    monkeypatch.setattr(messages, "recent", lambda *a: slow(recent, *a))
    monkeypatch.setattr(messages, "history_for_regenerate", lambda *a: slow(for_regenerate, *a))
    return state


async def test_reader_during_a_failing_preparation_gets_204_not_a_hang(slow_history, client, alice, app):
    from samosachat_api.errors import NothingToAnswer

    slow_history["failure"] = NothingToAnswer()
    cid = await new_conversation(client, alice)
    regenerating = asyncio.create_task(client.post(f"/api/conversations/{cid}/regenerate", headers=alice))
    await asyncio.sleep(0.1)
    reader = await client.get(f"/api/conversations/{cid}/stream", headers=alice)
    assert reader.status_code == 204
    assert (await regenerating).status_code == 400
    assert len(app.ctx.answers) == 0


async def test_stop_during_preparation_stops_the_answer(slow_history, client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    asking = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q"}))
    await asyncio.sleep(0.1)
    assert (await client.post(f"/api/conversations/{cid}/stop", headers=alice)).json() == {"stopped": True}
    status, events = await asking
    assert status == 200 and [e.data for e in events] == [{"done": True}]
    assert upstreams.generate_requests == []
    assert await db.fetchval("SELECT count(*) FROM messages WHERE role = 'assistant'") == 0


async def test_client_gone_during_preparation_still_gets_its_answer(slow_history, client, alice, db):
    cid = await new_conversation(client, alice)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice, timeout=0.1)
    stored = await eventually(lambda: db.fetchval("SELECT content FROM messages WHERE role = 'assistant'"))
    assert stored == "Hi there"


async def test_resume_from_past_the_end_still_ends_with_done(client, alice, upstreams, app):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    resumed = await client.get(f"/api/conversations/{cid}/stream?last_event_id={event_id(app, cid, 999)}", headers=alice)
    events, _ = parse(resumed.text)
    assert [(e.id % 1_000_000, e.data) for e in events] == [(21, {"done": True})]
    await first


async def test_drain_waits_for_answers_still_being_prepared_and_refuses_new_ones(slow_history, client, alice, bob, app, db):
    cid = await new_conversation(client, alice)
    asking = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q"}))
    await asyncio.sleep(0.1)
    draining = asyncio.create_task(app.ctx.answers.drain(timeout=5))
    await asyncio.sleep(0)
    other = await new_conversation(client, bob)
    refused = await client.post(f"/api/conversations/{other}/messages", json={"content": "q"}, headers=bob)
    assert refused.status_code == 503
    assert refused.json() == {"detail": "The service is restarting; try again in a moment"}
    await draining
    assert await db.fetchval("SELECT content FROM messages WHERE role = 'assistant'") == "Hi there"
    _, events = await asking
    assert events[-1].data == {"done": True}


async def test_deleting_a_conversation_stops_its_answer(client, alice, upstreams, app, db):
    closed_after: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    upstreams.on_body_closed = closed_after.set_result
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.05)
    await asyncio.sleep(0.2)
    assert (await client.delete(f"/api/conversations/{cid}", headers=alice)).status_code == 204
    assert await asyncio.wait_for(closed_after, 2) < len(WORDS)
    _, events = await first
    assert events[-1].data == {"done": True}
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
