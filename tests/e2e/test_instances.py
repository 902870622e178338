"""Two instances (the Procfile's `web:` command on two ports) sharing PostgreSQL and Redis, and
one instance with two workers and no Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid

import httpx
import pytest

from dev.processes import stand_ins, wait_for_exit, web_service
from dev.standins import new_token

from ..conftest import eventually
from .api import ask, bearer, create_conversation, events_as_they_come

LEASE_SECONDS = "3"


@pytest.fixture(scope="module")
def upstream_urls():
    with stand_ins() as urls:
        yield urls


@pytest.fixture
def two_instances(database_url, upstream_urls, redis_server, redis_prefix, tmp_path):
    env = {"REDIS_URL": redis_server, "REDIS_KEY_PREFIX": redis_prefix, "ANSWER_LEASE_SECONDS": LEASE_SECONDS}
    with web_service(database_url, *upstream_urls, tmp_path / "a.log", **env) as a:
        with web_service(database_url, *upstream_urls, tmp_path / "b.log", **env) as b:
            yield a, b
            for process, _ in (b, a):  # stopped as a platform stops them (A may have been killed)
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGTERM)
                    wait_for_exit(process, timeout=30)


def fresh(base_url: str) -> httpx.AsyncClient:
    """A client whose every request opens a new connection (as behind a load balancer)."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


async def test_two_instances_share_running_answers(db, two_instances):
    (process_a, url_a), (_, url_b) = two_instances
    me = bearer(new_token())
    async with fresh(url_a) as a, fresh(url_b) as b:
        # ask on A, resume on B from a Last-Event-ID: the same events as A's
        cid = (await create_conversation(a, me))["id"]
        seen_on_a, resumed_on_b = [], asyncio.get_running_loop().create_future()

        async def resume_on_b(after):
            async with b.stream("GET", f"/api/conversations/{cid}/stream", headers={**me, "Last-Event-ID": str(after)}) as r:
                assert r.status_code == 200
                return [event async for event in events_as_they_come(r)]

        async with a.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "tokens=30 delay=30"}, headers=me) as r:
            async for event in events_as_they_come(r):
                seen_on_a.append(event)
                if len(seen_on_a) == 5:
                    resumed_on_b = asyncio.create_task(resume_on_b(seen_on_a[2].id))
        assert await resumed_on_b == seen_on_a[3:]
        assert seen_on_a[-1].data == {"done": True}

        # stop on B; a second ask on B is refused while it runs; GET on B shows the partial answer
        cid = (await create_conversation(a, me))["id"]
        on_a, tokens_on_a = [], []

        async def ask_on_a():
            async with a.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "tokens=300 delay=30"}, headers=me) as r:
                async for event in events_as_they_come(r):
                    on_a.append(event)
                    tokens_on_a.extend([event.data["token"]] if "token" in event.data else [])

        asking = asyncio.create_task(ask_on_a())
        await eventually(lambda: asyncio.sleep(0, len(tokens_on_a) >= 5))
        second = await b.post(f"/api/conversations/{cid}/messages", json={"content": "again"}, headers=me)
        assert second.status_code == 409
        assert (await b.post(f"/api/conversations/{cid}/stop", headers=me)).json() == {"stopped": True}
        await asyncio.wait_for(asking, 5)
        assert on_a[-1].data == {"done": True}
        messages = (await b.get(f"/api/conversations/{cid}", headers=me)).json()["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [("user", "tokens=300 delay=30"), ("assistant", "".join(tokens_on_a))]
        assert 5 <= len(tokens_on_a) < 300
        assert (await ask(b, me, cid, "tokens=2")).status == 200  # free right after stop

        # SIGKILL A mid-answer: B stores the partial answer and takes a new question
        cid = (await create_conversation(a, me))["id"]
        seen = []
        async with a.stream("POST", f"/api/conversations/{cid}/messages", json={"content": "tokens=300 delay=30"}, headers=me) as r:
            async for event in events_as_they_come(r):
                seen.append(event.data["token"])
                if len(seen) == 5:
                    break
        running = (await b.get(f"/api/conversations/{cid}", headers=me)).json()["messages"][-1]  # seen from B
        assert (running["role"], running["status"]) == ("assistant", "generating")
        assert running["content"].startswith("".join(seen))
        os.killpg(process_a.pid, signal.SIGKILL)

        async def stored_partial():
            messages = (await b.get(f"/api/conversations/{cid}", headers=me)).json()["messages"]
            return [(m["id"], m["content"]) for m in messages if m["role"] == "assistant" and m["status"] == "stopped"]

        partial = await eventually(stored_partial, timeout=30)
        assert partial and partial[0][0] == running["id"] and partial[0][1].startswith("".join(seen))
        assert (await ask(b, me, cid, "tokens=2")).status == 200


async def test_two_workers_without_redis_never_give_two_answers(database_url, db, upstream_urls, tmp_path):
    me = bearer(new_token())
    with web_service(database_url, *upstream_urls, tmp_path / "web.log", WEB_CONCURRENCY="2") as (process, url):
        async with fresh(url) as http:
            cid = (await create_conversation(http, me))["id"]
            # A slow question first: a regenerate of it runs as long as any of the asks below.
            assert (await ask(http, me, cid, "tokens=40 delay=20")).status == 200
            attempts = [
                http.post(f"/api/conversations/{cid}/{path}", json=body, headers=me)
                for path, body in [("messages", {"content": "tokens=40 delay=20"})] * 6 + [("regenerate", None)] * 6
            ]
            statuses = sorted(r.status_code for r in await asyncio.gather(*attempts))
            assert statuses.count(200) == 1 and set(statuses) <= {200, 409}
            rows = await db.fetch("SELECT role FROM messages WHERE conversation_id = $1 ORDER BY created_at", uuid.UUID(cid))
            roles = [r["role"] for r in rows]
            assert roles.count("assistant") == roles.count("user")  # never two answers to one question
            for _ in range(12):  # while nothing runs, every fresh ask is answered, one at a time
                assert (await ask(http, me, cid, "tokens=1")).status == 200
        os.killpg(process.pid, signal.SIGTERM)
        wait_for_exit(process, timeout=30)
