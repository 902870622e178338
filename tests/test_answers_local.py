"""Without Redis: the one-answer rule across processes (the lease in the database), stop that
returns once the conversation is free, ids of one answer unlike the next's, the per-user cap."""

from __future__ import annotations

import asyncio
import uuid

from .conftest import eventually, new_conversation
from .sse import parse, post_stream, tokens
from .support.upstreams import sse, token_events
from .test_answers import WORDS, start_slow_answer


async def test_a_lease_held_by_another_process_refuses_the_answer(client, alice, upstreams, db):
    cid = await new_conversation(client, alice)
    await db.execute(
        "UPDATE conversations SET answer_lease_owner = 'elsewhere:1', answer_lease_until = now() + interval '10 seconds'"
        " WHERE id = $1", uuid.UUID(cid),
    )
    refused = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    assert refused.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert upstreams.generate_requests == []
    # a lapsed lease (its process died) no longer holds the conversation
    await db.execute("UPDATE conversations SET answer_lease_until = now() - interval '1 second' WHERE id = $1", uuid.UUID(cid))
    status, events = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q"})
    assert status == 200 and tokens(events) == "Hi there"
    lease = await db.fetchrow("SELECT answer_lease_owner, answer_lease_until FROM conversations WHERE id = $1", uuid.UUID(cid))
    assert tuple(lease) == (None, None)


async def test_the_lease_is_held_while_the_answer_runs(client, alice, upstreams, app, db):
    cid, first = await start_slow_answer(client, alice, upstreams, app)
    owner = await db.fetchval("SELECT answer_lease_owner FROM conversations WHERE id = $1", uuid.UUID(cid))
    assert owner
    await first
    assert await db.fetchval("SELECT answer_lease_owner FROM conversations WHERE id = $1", uuid.UUID(cid)) is None


async def test_a_question_right_after_stop_is_accepted(client, alice, upstreams, app, db):
    for _ in range(5):
        cid, first = await start_slow_answer(client, alice, upstreams, app, delay=0.05)
        await asyncio.sleep(0.1)
        assert (await client.post(f"/api/conversations/{cid}/stop", headers=alice)).json() == {"stopped": True}
        upstreams.generate_delay = 0
        again = await client.post(f"/api/conversations/{cid}/messages", json={"content": "next"}, headers=alice)
        assert again.status_code == 200
        await first


async def test_a_resume_with_the_previous_answers_id_starts_from_the_beginning(client, alice, upstreams, app):
    upstreams.generate_chunks = sse(*token_events(*WORDS[:8]))
    cid = await new_conversation(client, alice)
    _, earlier = await post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q1"})
    upstreams.generate_chunks = sse(*token_events(*WORDS[:10]))
    upstreams.generate_delay = 0.03
    second = asyncio.create_task(post_stream(client, f"/api/conversations/{cid}/messages", alice, {"content": "q2"}))
    await eventually(lambda: app.ctx.answers.follow(uuid.UUID(cid), 0))
    resumed = await client.get(f"/api/conversations/{cid}/stream", headers={**alice, "Last-Event-ID": str(earlier[6].id)})
    assert tokens(parse(resumed.text)[0]) == "".join(WORDS[:10])
    _, events = await second
    assert not {e.id for e in earlier} & {e.id for e in events}


async def test_per_user_cap(client, alice, bob, upstreams, app):
    upstreams.generate_chunks = sse(*token_events(*WORDS))
    upstreams.generate_delay = 0.03
    conversations = [await new_conversation(client, alice) for _ in range(4)]
    asking = [
        asyncio.create_task(post_stream(client, f"/api/conversations/{c}/messages", alice, {"content": "q"}))
        for c in conversations[:3]
    ]
    await eventually(lambda: asyncio.sleep(0, len(app.ctx.answers) == 3))
    refused = await client.post(f"/api/conversations/{conversations[3]}/messages", json={"content": "q"}, headers=alice)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert "detail" in refused.json()
    others = await new_conversation(client, bob)  # another user is not held back
    status, _ = await post_stream(client, f"/api/conversations/{others}/messages", bob, {"content": "q"})
    assert status == 200
    await asyncio.gather(*asking)
    status, _ = await post_stream(client, f"/api/conversations/{conversations[3]}/messages", alice, {"content": "q"})
    assert status == 200
