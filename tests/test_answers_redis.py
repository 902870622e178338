"""Answers shared through Redis: the in-process behaviours again, then what another instance sees
and does (follow, stop, 409, snapshot), a dead instance, the per-user cap, and Redis faults."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from samosachat_api.answers import Answer
from samosachat_api.answers.redis import RedisAnswers
from samosachat_api.errors import AnswerInProgress
from samosachat_api.messages.generation import store_salvaged

from .conftest import closed_port, eventually, log_lines, new_conversation
from .sse import parse, positions, post_stream, tokens
from .support.upstreams import sse, token_events
from .test_answers import (  # noqa: F401  the same behaviours, now with Redis (see `env` below)
    WORDS,
    event_id,
    slow_history,
    start_slow_answer,
    test_client_disconnect_does_not_stop,
    test_deleting_a_conversation_stops_its_answer,
    test_drain_waits_for_answers_still_being_prepared_and_refuses_new_ones,
    test_finished_answers_are_released,
    test_nothing_to_resume_is_204,
    test_one_answer_at_a_time,
    test_resume_from_an_event_id_replays_the_rest_once_in_order,
    test_resume_from_past_the_end_still_ends_with_done,
    test_resume_with_query_parameter_and_from_start,
    test_stop_during_preparation_stops_the_answer,
    test_stop_stores_the_partial_answer_and_ends_every_stream,
    test_two_readers_each_see_every_event_once,
)
from .test_health import TcpProxy

LEASE_SECONDS = 0.6


@pytest.fixture
def env(env, redis_server, redis_prefix):
    return {
        **env,
        "REDIS_URL": redis_server,
        "REDIS_KEY_PREFIX": redis_prefix,
        "ANSWER_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture
async def other(app, redis_server, redis_prefix):
    """Another instance's view of the same Redis (the app's Tortoise stores what it salvages)."""
    answers = RedisAnswers.from_url(
        redis_server, prefix=redis_prefix, heartbeat=15, pool_size=10, max_per_user=3,
        lease_seconds=LEASE_SECONDS, salvage=store_salvaged,
    )
    await answers.open()
    yield answers
    await answers.close()


async def read_all(events) -> tuple[list[int], list[str]]:
    ids, data = [], []
    async for first, batch in events:
        ids += range(first, first + len(batch))
        data += batch
    return ids, data


async def test_another_instance_resumes_with_the_same_events(client, alice, upstreams, app, other):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    await asyncio.sleep(0.15)
    after = int(event_id(app, cid, 5))
    ids, data = await read_all(await other.follow(uuid.UUID(cid), after))
    _, original = await first
    assert [(i, json.loads(d)) for i, d in zip(ids, data)] == [(e.id, e.data) for e in original[5:]]
    assert data[-1] == json.dumps({"done": True})
    from_start = await other.follow(uuid.UUID(cid), 0)
    assert from_start is None  # finished: nothing to resume


async def test_an_id_of_the_previous_answer_replays_the_next_one_from_its_start(client, alice, upstreams, app, other):
    upstreams.generate_chunks = sse(*token_events("a", "b"))
    cid = await new_conversation(client, alice)
    _, earlier = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q1"})
    upstreams.generate_chunks = sse(*token_events(*WORDS))
    upstreams.generate_delay = 0.02
    second = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q2"}))
    await eventually(lambda: app.ctx.answers.follow(uuid.UUID(cid), 0))
    here, elsewhere = [await f.follow(uuid.UUID(cid), earlier[1].id) for f in (app.ctx.answers, other)]
    for _, data in await asyncio.gather(read_all(here), read_all(elsewhere)):
        assert tokens([type(earlier[0])(None, json.loads(d)) for d in data]) == "".join(WORDS)
    _, events = await second
    assert earlier[0].id // 1_000_000 != events[0].id // 1_000_000


async def test_stop_from_another_instance(client, alice, upstreams, app, other, db):
    seen_at_stop = []
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.05)
    await asyncio.sleep(0.3)
    seen_at_stop.append(len(app.ctx.answers._answers[uuid.UUID(cid)].events))
    assert await other.stop(uuid.UUID(cid)) is True
    # stored and free once stop returns
    stored = await db.fetchval("SELECT content FROM messages WHERE role = 'assistant'")
    assert await other._redis.get(f"{other._prefix}conversation:{cid}") is None
    _, events = await first
    assert events[-1].data == {"done": True}
    assert stored == tokens(events)
    assert len(tokens(events).split()) <= seen_at_stop[0] + 4  # stopped within a few 50 ms tokens
    again = await client.post(f"/api/conversations/{cid}/messages", json={"content": "next"}, headers=alice)
    assert again.status_code == 200


async def test_second_ask_and_snapshot_from_another_instance(client, alice, upstreams, app, other):
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.05)
    await asyncio.sleep(0.3)

    async def prepare():
        raise AssertionError("never prepared")

    with pytest.raises(AnswerInProgress):
        await other.start(uuid.UUID(cid), uuid.uuid4(), prepare, None)
    running = await other.running(uuid.UUID(cid))
    assert running is not None and running.content and "".join(WORDS).startswith(running.content)
    await first
    assert await other.running(uuid.UUID(cid)) is None
    stored = (await client.get(f"/api/conversations/{cid}", headers=alice)).json()["messages"][-1]
    assert (stored["id"], stored["status"]) == (str(running.message_id), "complete")  # shown and stored under one id


async def dead_answer(other: RedisAnswers, cid: str, user_id: uuid.UUID, words: list[str]) -> Answer:
    """An answer claimed and shared by `other`, whose process then dies (nothing is released)."""
    answer = other._new_answer(uuid.UUID(cid), user_id)
    other._answers[answer.conversation_id] = answer
    await other._claim(answer)
    answer.record = {"conversation_id": cid, "user_id": str(user_id), "model_tag": "default", "replaces": None}
    await other._prepared(answer)
    answer.started = True
    for word in words:
        answer.publish(json.dumps({"token": word}))
    await eventually(lambda: asyncio.sleep(0, answer.visible == len(words)))
    # the process dies: no renewal, no release
    for task in [*other._tasks, *(sharer for sharer, _ in other._sharing.values())]:
        task.cancel()
    other._answers.clear()
    other._by_id.clear()
    other._sharing.clear()
    return answer


async def test_an_answer_of_a_dead_instance_is_stored_and_ended(client, alice, upstreams, app, other, db):
    cid = await new_conversation(client, alice)
    user_id = await db.fetchval("SELECT user_id FROM conversations WHERE id = $1", uuid.UUID(cid))
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    await db.execute("DELETE FROM messages WHERE role = 'assistant'")
    await dead_answer(other, cid, user_id, ["par", "tial"])
    reader = await client.get(f"/api/conversations/{cid}/stream", headers=alice, timeout=10)
    events, _ = parse(reader.text)
    assert tokens(events) == "partial"
    assert set(events[-2].data) == {"error"} and events[-1].data == {"done": True}
    assert await db.fetchval("SELECT content FROM messages WHERE role = 'assistant'") == "partial"
    again = await client.post(f"/api/conversations/{cid}/messages", json={"content": "next"}, headers=alice)
    assert again.status_code == 200


async def test_per_user_cap_across_instances(client, alice, upstreams, app, other, db):
    upstreams.generate_chunks = sse(*token_events(*WORDS))
    upstreams.generate_delay = 0.05
    conversations = [await new_conversation(client, alice) for _ in range(4)]
    user_id = await db.fetchval("SELECT user_id FROM conversations WHERE id = $1", uuid.UUID(conversations[0]))
    await dead_answer(other, conversations[0], user_id, ["x"])  # one elsewhere (until it is salvaged)
    asking = [
        asyncio.create_task(post_stream(client, f"/api/conversations/{c}/messages", alice, {"content": "q"}))
        for c in conversations[1:3]
    ]
    await eventually(lambda: asyncio.sleep(0, len(app.ctx.answers) == 2))
    refused = await client.post(f"/api/conversations/{conversations[3]}/messages", json={"content": "q"}, headers=alice)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.json() == {"detail": "Too many answers are being generated for you at once; try again when one has finished"}
    await asyncio.gather(*asking)


@pytest.fixture
def env_small_redis_pool(env):
    env["REDIS_POOL_SIZE"] = "3"  # one of them is the stop listener's
    # The default lease: renewals waiting for a connection on a busy machine may take longer than
    # this module's short one, which would be lost (what this test looks at is the pool).
    env["ANSWER_LEASE_SECONDS"] = "10"


async def test_a_burst_larger_than_the_redis_pool_waits_for_connections(
    capsys, env_small_redis_pool, client, upstreams, app, db
):
    upstreams.generate_chunks = sse(*token_events(*WORDS))
    upstreams.generate_delay = 0.01
    users = [{"Authorization": f"Bearer {upstreams.add_user()[0]}"} for _ in range(20)]
    asks = [(await new_conversation(client, user), user) for user in users]
    capsys.readouterr()
    answers = await asyncio.gather(
        *(post_stream(client, f"/api/conversations/{cid}/messages", user, {"content": "q"}) for cid, user in asks)
    )
    assert [status for status, _ in answers] == [200] * len(asks)
    assert {(tokens(events), events[-1].data["done"]) for _, events in answers} == {("".join(WORDS), True)}
    assert await db.fetchval("SELECT count(*) FROM messages WHERE role = 'assistant'") == len(asks)
    assert [line["event"] for line in log_lines(capsys) if line["level"] in ("warning", "error")] == []


@pytest.fixture
def env_redis_nowhere(env):
    env["REDIS_URL"] = f"redis://127.0.0.1:{closed_port()}/0"


async def test_redis_unreachable_at_start(env_redis_nowhere, client, alice, upstreams, db):
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "redis": "unavailable"}
    cid = await new_conversation(client, alice)
    for method, path in [("POST", "messages"), ("POST", "regenerate"), ("GET", "stream"), ("POST", "stop")]:
        body = {"content": "q"} if path == "messages" else None
        response = await client.request(method, f"/api/conversations/{cid}/{path}", json=body, headers=alice)
        assert response.status_code == 503, path
        assert "redis" in response.json()["detail"]
    assert (await client.get(f"/api/conversations/{cid}", headers=alice)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


@pytest.fixture
async def redis_proxy(env):
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.on()
    env["REDIS_URL"] = f"redis://127.0.0.1:{proxy.port}/0"
    yield proxy


async def test_redis_lost_mid_answer_still_completes_and_stores(redis_proxy, client, alice, upstreams, app, db):
    cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.03)
    await asyncio.sleep(0.2)
    await redis_proxy.off()
    status, events = await first
    assert status == 200
    assert tokens(events) == "".join(WORDS) and events[-1].data == {"done": True}
    assert positions(events) == list(range(1, 22))
    assert await db.fetchval("SELECT content FROM messages WHERE role = 'assistant'") == "".join(WORDS)
    await redis_proxy.on()
    # once Redis is back the conversation is freed (the release is retried)
    async def free():
        response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "again"}, headers=alice)
        return response.status_code == 200

    assert await eventually(free, timeout=5)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE role = 'assistant'") == 2


async def test_ready_names_redis(client):
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_redis_url_is_checked_and_kept_out_of_repr(env):
    from samosachat_api.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env({**env, "REDIS_URL": "http://redis:6379"})
    settings = Settings.from_env({**env, "REDIS_URL": "rediss://:secret@redis.example:6380/0"})
    assert settings.redis_url.startswith("rediss://") and "secret" not in repr(settings)
