"""SIGTERM during an answer, with the server started from the Procfile's `web:` command."""

from __future__ import annotations

import json
import os
import signal
import time

import asyncpg
import httpx
import pytest

from dev.processes import stand_ins, wait_for_exit, web_service
from dev.standins import new_token


@pytest.fixture
def upstream_urls():
    with stand_ins() as urls:
        yield urls


def read_tokens_then(base_url, token, prompt, after_tokens, action):
    """Ask for an answer, call `action` after `after_tokens` token events, return every event."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        cid = client.post("/api/conversations", json={}).json()["id"]
        events, seen = [], 0
        with client.stream("POST", f"/api/conversations/{cid}/messages", json={"content": prompt}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    seen += "token" in events[-1]
                    if seen == after_tokens:
                        action()
        return cid, events


async def stored_answer(database_url, cid):
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchrow(
            "SELECT content, token_count FROM messages WHERE role = 'assistant' AND conversation_id = $1::uuid", cid
        )
    finally:
        await connection.close()


async def test_sigterm_lets_the_answer_finish_and_be_stored(database_url, db, upstream_urls, tmp_path):
    log = tmp_path / "web.log"
    with web_service(database_url, *upstream_urls, log) as (process, base_url):
        def terminate():
            os.killpg(process.pid, signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.TransportError):  # no new requests are served once shutting down
                httpx.get(f"{base_url}/api/health", timeout=2)

        cid, events = read_tokens_then(base_url, new_token(), "tokens=30 delay=50", 3, terminate)
        wait_for_exit(process, timeout=30)
    assert [e["token"] for e in events if "token" in e] == [f"tok{i} " for i in range(30)]
    assert events[-1] == {"done": True}
    answer = await stored_answer(database_url, cid)
    assert answer["token_count"] == 30
    assert "Server Stopped" in log.read_text()


async def test_answer_still_running_at_the_deadline_is_stored_as_it_stands(database_url, db, upstream_urls, tmp_path):
    log = tmp_path / "web.log"
    with web_service(database_url, *upstream_urls, log, GRACEFUL_SHUTDOWN_TIMEOUT="1") as (process, base_url):
        started = time.monotonic()
        cid, events = read_tokens_then(
            base_url, new_token(), "tokens=200 delay=50", 2, lambda: os.killpg(process.pid, signal.SIGTERM)
        )
        wait_for_exit(process, timeout=30)
        assert time.monotonic() - started < 10
    assert events[-1] == {"done": True}
    seen = "".join(e["token"] for e in events if "token" in e)
    answer = await stored_answer(database_url, cid)
    assert answer["content"] == seen
    assert 2 <= answer["token_count"] < 200
    assert all(json.loads(line) for line in log.read_text().splitlines() if line.strip())


async def test_a_question_on_a_kept_alive_connection_during_the_drain(database_url, db, upstream_urls, tmp_path):
    """As the README says: the connection is closed (the client retries elsewhere) or the question
    is refused with 503; it is never answered nor left hanging."""
    token = new_token()
    with web_service(database_url, *upstream_urls, tmp_path / "web.log") as (process, base_url):
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as kept_alive:
            cid = kept_alive.post("/api/conversations", json={}).json()["id"]  # the connection is now open and idle
            outcomes = []

            def ask_on_the_kept_alive_connection():
                os.killpg(process.pid, signal.SIGTERM)
                time.sleep(0.3)
                try:
                    response = kept_alive.post(f"/api/conversations/{cid}/messages", json={"content": "tokens=1"})
                    outcomes.append((response.status_code, response.json()))
                except httpx.TransportError as exc:
                    outcomes.append(type(exc).__name__)

            read_tokens_then(base_url, new_token(), "tokens=20 delay=50", 2, ask_on_the_kept_alive_connection)
        wait_for_exit(process, timeout=30)
    assert outcomes in (
        [(503, {"detail": "The service is restarting; try again in a moment"})],
        ["RemoteProtocolError"], ["ReadError"], ["ConnectError"],
    ), outcomes
