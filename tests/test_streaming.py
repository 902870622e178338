"""The answer relay: events in order, the answer stored before `done`, failures reported in-stream."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from .conftest import eventually, log_lines, new_conversation
from .sse import parse, positions, post_stream, tokens
from .support.upstreams import INFERENCE_URL, sse, token_events


async def rows(db, cid):
    return await db.fetch(
        "SELECT role, content, token_count, model_tag, inference_time_ms, time_to_first_token_ms FROM messages"
        " WHERE conversation_id = $1 ORDER BY created_at",
        uuid.UUID(cid),
    )


async def test_relays_events_and_stores_answer(client, alice, upstreams, db):
    upstreams.generate_chunks = sse(*token_events("Sam", "osa", "!"))
    upstreams.generate_delay = 0.02
    cid = await new_conversation(client, alice, model_tag="large")
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "Hi"}, headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events, _ = parse(response.text)
    assert [e.data for e in events] == [{"token": "Sam", "gpu": 0}, {"token": "osa", "gpu": 0}, {"token": "!", "gpu": 0}, {"done": True}]
    assert positions(events) == [1, 2, 3, 4]
    stored = await rows(db, cid)
    assert [(r["role"], r["content"]) for r in stored] == [("user", "Hi"), ("assistant", "Samosa!")]
    answer = stored[1]
    assert (answer["token_count"], answer["model_tag"]) == (3, "large")
    assert 20 <= answer["time_to_first_token_ms"] < answer["inference_time_ms"]
    listed = (await client.get(f"/api/conversations/{cid}", headers=alice)).json()["messages"][1]
    assert listed["time_to_first_token_ms"] == answer["time_to_first_token_ms"]


async def test_data_lines_are_the_upstream_json_unchanged(client, alice, upstreams):
    upstreams.generate_chunks = [b'data: {"token":"a","gpu":1,"extra":[1,2]}\n\n', b'data: {"done":true}\n\n']
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "Hi"}, headers=alice)
    assert 'data: {"token":"a","gpu":1,"extra":[1,2]}\n\n' in response.text
    assert response.text.endswith('data: {"done":true}\n\n')


async def test_answer_is_stored_before_done_is_sent(client, alice, upstreams, db):
    upstreams.generate_chunks = sse(*token_events("x", "y"))
    cid = await new_conversation(client, alice)
    async with client.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "Hi"}, headers=alice) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("done"):
                stored = await rows(db, cid)
                break
    assert [r["content"] for r in stored] == ["Hi", "xy"]


async def test_first_message_sets_title_and_bumps_updated_at(client, alice, db):
    cid = await new_conversation(client, alice)
    before = await db.fetchval("SELECT updated_at FROM conversations WHERE id = $1", uuid.UUID(cid))
    long_question = "  How do I fold a samosa\n so that the filling stays inside while frying? " * 3
    await client.post(f"/api/conversations/{cid}/messages", json={"content": long_question}, headers=alice)
    conversation = (await client.get(f"/api/conversations/{cid}", headers=alice)).json()
    # whitespace collapsed, at most 80 characters, cut at the last word boundary
    assert conversation["title"] == "How do I fold a samosa so that the filling stays inside while frying? How do I"
    assert await db.fetchval("SELECT updated_at FROM conversations WHERE id = $1", uuid.UUID(cid)) > before
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "second question"}, headers=alice)
    assert (await client.get(f"/api/conversations/{cid}", headers=alice)).json()["title"] == conversation["title"]


@pytest.mark.parametrize(
    "question,title",
    [("x" * 100, "x" * 80), ("word " * 30, ("word " * 16).strip()), (" \t\n ", "New conversation"), ("Hi\tthere", "Hi there")],
)
async def test_title_rule(client, alice, question, title):
    cid = await new_conversation(client, alice, title="New chat")  # the web client's placeholder
    await client.post(f"/api/conversations/{cid}/messages", json={"content": question}, headers=alice)
    assert (await client.get(f"/api/conversations/{cid}", headers=alice)).json()["title"] == title


async def test_a_renamed_title_is_kept_and_a_conversation_with_messages_keeps_its_title(client, alice, db):
    renamed = await new_conversation(client, alice)
    await client.put(f"/api/conversations/{renamed}", json={"title": "Mine"}, headers=alice)
    await client.post(f"/api/conversations/{renamed}/messages", json={"content": "Hello"}, headers=alice)
    assert (await client.get(f"/api/conversations/{renamed}", headers=alice)).json()["title"] == "Mine"
    adopted = await new_conversation(client, alice, title="From the old service")
    await db.execute(
        "INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', 'old')", uuid.uuid4(), uuid.UUID(adopted)
    )
    await client.post(f"/api/conversations/{adopted}/messages", json={"content": "Hello"}, headers=alice)
    assert (await client.get(f"/api/conversations/{adopted}", headers=alice)).json()["title"] == "From the old service"


async def test_most_recently_active_conversation_is_listed_first(client, alice):
    first = await new_conversation(client, alice, title="first")
    await new_conversation(client, alice, title="second")
    await client.post(f"/api/conversations/{first}/messages", json={"content": "back again"}, headers=alice)
    listed = (await client.get("/api/conversations", headers=alice)).json()["items"]
    assert [c["title"] for c in listed] == ["back again", "second"]


async def test_generation_parameters_default_and_override(client, alice, upstreams):
    cid = await new_conversation(client, alice)
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "a"}, headers=alice)
    await client.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "b", "temperature": 0.1, "max_tokens": 7, "top_k": 0},
        headers=alice,
    )
    defaults, custom = upstreams.generate_requests
    assert (defaults["temperature"], defaults["max_tokens"], defaults["top_k"]) == (0.8, 1024, 50)
    assert (custom["temperature"], custom["max_tokens"], custom["top_k"]) == (0.1, 7, 0)
    assert custom["messages"] == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "b"},
    ]


async def test_history_window_limits(client, alice, upstreams, db, app):
    settings = app.ctx.settings
    cid = await new_conversation(client, alice)
    for i in range(settings.max_conversation_history + 5):
        await db.execute(
            "INSERT INTO messages (id, conversation_id, role, content, created_at)"
            " VALUES ($1, $2, 'user', $3, now() - interval '1 hour' + $4 * interval '1 second')",
            uuid.uuid4(), uuid.UUID(cid), f"old{i}", i,
        )
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "newest"}, headers=alice)
    sent = upstreams.generate_requests[-1]["messages"]
    assert len(sent) == settings.max_conversation_history
    assert sent[-1]["content"] == "newest"
    assert sent[0]["content"] == "old6"


def test_character_budget_drops_oldest_but_always_sends_newest():
    from samosachat_api.models import Message, Role
    from samosachat_api.messages.prompt import history_for_model

    def contents(texts, budget):
        return [m["content"] for m in history_for_model([Message(role=Role.USER, content=t) for t in texts], budget)]

    assert contents(["aaaa", "bbbb", "cccc"], 10) == ["bbbb", "cccc"]
    assert contents(["a", "x" * 50], 10) == ["x" * 50]
    assert contents(["1", "2", "3"], 100) == ["1", "2", "3"]


async def test_odd_chunking_is_relayed_intact(client, alice, upstreams, db):
    text = 'data: {"token": "नमस्ते", "gpu": 0}\r\n\r\n: keep-alive\r\n\r\ndata: {"token": " 🥟", "gpu": 0}\n\ndata: {"done": true}\n\n'
    raw = text.encode()
    # split inside multi-byte characters, inside "data:", between \r and \n
    upstreams.generate_chunks = [raw[i : i + 3] for i in range(0, len(raw), 3)]
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert status == 200
    assert [e.data for e in events] == [{"token": "नमस्ते", "gpu": 0}, {"token": " 🥟", "gpu": 0}, {"done": True}]
    assert (await rows(db, cid))[1]["content"] == "नमस्ते 🥟"


async def failing_answer(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert status == 200
    assert events[-1].data == {"done": True}
    assert "error" in events[-2].data
    stored = await rows(db, cid)
    assert [r["role"] for r in stored] == ["user"]  # the question stays, no partial answer
    return events


async def test_upstream_error_status(client, alice, upstreams, db):
    upstreams.generate_status = 500
    upstreams.generate_chunks = [b'{"detail": "gpu on fire"}']
    events = await failing_answer(client, alice, upstreams, db)
    assert events[0].data == {"error": "Inference service answered 500"}


async def test_upstream_unreachable(capsys, client, alice, upstreams, db):
    upstreams.router.routes["generate"].side_effect = httpx.ConnectError("refused")
    events = await failing_answer(client, alice, upstreams, db)
    assert events[0].data == {"error": "Inference service unavailable"}
    [failed] = [line for line in log_lines(capsys) if line["event"] == "upstream_failed"]
    assert failed["url"] == f"{INFERENCE_URL}/generate"


async def test_upstream_silent_past_read_timeout(client, alice, upstreams, db):
    upstreams.router.routes["generate"].side_effect = httpx.ReadTimeout("silent")
    events = await failing_answer(client, alice, upstreams, db)
    assert events[0].data == {"error": "Inference service timed out"}


async def test_upstream_breaks_off_mid_stream(client, alice, upstreams, db):
    upstreams.generate_chunks = [*sse({"token": "par", "gpu": 0}, {"token": "tial", "gpu": 0}), httpx.RemoteProtocolError("peer closed")]
    events = await failing_answer(client, alice, upstreams, db)
    assert tokens(events) == "partial"
    assert events[-2].data == {"error": "Inference stream broke off"}


async def test_upstream_ends_without_done(client, alice, upstreams, db):
    upstreams.generate_chunks = sse({"token": "a", "gpu": 0})
    events = await failing_answer(client, alice, upstreams, db)
    assert events[-2].data == {"error": "Inference stream ended before it was done"}


async def test_upstream_error_event_and_malformed_event(client, alice, upstreams, db):
    upstreams.generate_chunks = sse({"token": "a", "gpu": 0}, {"error": "out of memory"})
    events = await failing_answer(client, alice, upstreams, db)
    assert events[-2].data == {"error": "Inference service failed: out of memory"}
    upstreams.generate_chunks = [b"data: not json\n\n"]
    events = await failing_answer(client, alice, upstreams, db)
    assert events[-2].data == {"error": "Inference service sent a malformed event"}


async def test_client_disconnect_still_stores_answer(client, alice, upstreams, db):
    words = [f"w{i} " for i in range(30)]
    upstreams.generate_chunks = sse(*token_events(*words))
    upstreams.generate_delay = 0.01
    cid = await new_conversation(client, alice)
    seen = 0
    async with client.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=alice) as r:
        async for line in r.aiter_lines():
            seen += line.startswith("data:")
            if seen == 3:
                break  # the browser goes away mid-answer

    async def answer_stored():
        stored = await rows(db, cid)
        return len(stored) == 2 and stored[1]

    answer = await eventually(answer_stored)
    assert answer and answer["content"] == "".join(words)
    assert answer["token_count"] == 30


async def test_conversation_deleted_while_answering(client, alice, upstreams, db, app):
    upstreams.generate_chunks = sse(*token_events(*["t"] * 20))
    upstreams.generate_delay = 0.01
    cid = await new_conversation(client, alice)
    stream = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"}))
    await eventually(lambda: asyncio.sleep(0, len(upstreams.generate_requests)))
    assert (await client.delete(f"/api/conversations/{cid}", headers=alice)).status_code == 204
    status, events = await stream
    assert status == 200 and events[-1].data == {"done": True}
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0
    assert len(app.ctx.answers) == 0


async def test_regenerate_replaces_newest_answer(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    upstreams.generate_chunks = sse(*token_events("better"))
    status, events = await post_stream(client, f"/api/conversations/{cid}/regenerate", alice, {"temperature": 1.5})
    assert status == 200 and tokens(events) == "better"
    assert upstreams.generate_requests[-1]["messages"] == [{"role": "user", "content": "q"}]
    assert upstreams.generate_requests[-1]["temperature"] == 1.5
    assert [(r["role"], r["content"]) for r in await rows(db, cid)] == [("user", "q"), ("assistant", "better")]


async def test_regenerate_without_body_uses_defaults(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    response = await client.post(f"/api/conversations/{cid}/regenerate", headers=alice)
    assert response.status_code == 200
    assert upstreams.generate_requests[-1]["temperature"] == 0.8


async def test_failed_regenerate_keeps_old_answer(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    upstreams.generate_chunks = [*sse({"token": "new", "gpu": 0}), httpx.ReadError("gone")]
    status, events = await post_stream(client, f"/api/conversations/{cid}/regenerate", alice)
    assert "error" in events[-2].data
    assert [(r["role"], r["content"]) for r in await rows(db, cid)] == [("user", "q"), ("assistant", "Hi there")]


async def test_regenerate_answers_a_question_left_unanswered(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    upstreams.generate_status = 503
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    upstreams.generate_status = 200
    status, events = await post_stream(client, f"/api/conversations/{cid}/regenerate", alice)
    assert tokens(events) == "Hi there"
    assert [r["role"] for r in await rows(db, cid)] == ["user", "assistant"]


async def test_regenerate_with_nothing_to_answer_is_400(client, alice, upstreams):
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/regenerate", headers=alice)
    assert response.status_code == 400
    assert response.json() == {"detail": "The conversation has no user message to answer"}
    assert upstreams.generate_requests == []


async def test_compressed_upstream_stream(client, alice, upstreams, db):
    import gzip

    body = b"".join(sse(*token_events("zip", "ped")))
    upstreams.router.routes["generate"].side_effect = None
    upstreams.router.routes["generate"].return_value = httpx.Response(
        200, headers={"content-type": "text/event-stream", "content-encoding": "gzip"}, content=gzip.compress(body)
    )
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert tokens(events) == "zipped" and events[-1].data == {"done": True}
    assert (await rows(db, cid))[1]["content"] == "zipped"


async def test_trouble_after_done_keeps_the_complete_answer(client, alice, upstreams, db):
    upstreams.generate_chunks = [*sse(*token_events("all", " there")), b"data: \xff\xfe\n\n", httpx.ReadError("reset")]
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert [e.data for e in events][-1] == {"done": True}
    assert not any("error" in e.data for e in events)
    assert (await rows(db, cid))[1]["content"] == "all there"


async def test_last_event_without_a_final_newline(client, alice, upstreams, db):
    upstreams.generate_chunks = [b'data: {"token": "end"}\n\n', b'data: {"done": true}']
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert [e.data for e in events] == [{"token": "end"}, {"done": True}]


async def test_multi_line_data_is_relayed_as_valid_sse(client, alice, upstreams, db):
    upstreams.generate_chunks = [b'data: {"token":\ndata: "Hi"}\n\n', b'data: {"done": true}\n\n']
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=alice)
    first_id = response.text.split("\n", 1)[0].removeprefix("id: ")
    assert response.text.startswith(f'id: {first_id}\ndata: {{"token":\ndata: "Hi"}}\n\n')
    assert (await rows(db, cid))[1]["content"] == "Hi"


async def test_long_lines_in_small_chunks(client, alice, upstreams, db):
    token = "x" * 200_000
    raw = f'data: {{"token": "{token}"}}\n\ndata: {{"done": true}}\n\n'.encode()
    upstreams.generate_chunks = [raw[i : i + 512] for i in range(0, len(raw), 512)]
    cid = await new_conversation(client, alice)
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "hi"})
    assert tokens(events) == token
