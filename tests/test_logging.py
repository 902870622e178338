"""One JSON object per log line, with trace_id and user_id; never a token, key or message content."""

from __future__ import annotations

import json

import pytest

from .conftest import log_lines
from .sse import parse


async def test_every_line_is_json_with_trace_and_user(capsys, client, alice, upstreams):
    capsys.readouterr()
    cid = (await client.post("/api/conversations", json={}, headers=alice)).json()["id"]
    response = await client.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "my secret question"},
        headers={**alice, "X-Trace-Id": "trace-abc-123"},
    )
    assert response.headers["x-trace-id"] == "trace-abc-123"
    parse(response.text)
    lines = [line for line in log_lines(capsys) if line.get("trace_id") == "trace-abc-123"]
    assert {line["event"] for line in lines} >= {"request", "answer_stored"}
    user_id = upstreams.users[alice["Authorization"][7:]]["user"]["id"]
    for line in lines:
        assert {"timestamp", "level", "event"} <= set(line)
        assert line["service"] == "chat-api"
        assert line["user_id"] == user_id
    access = next(line for line in lines if line["event"] == "request")
    assert access["status"] == 200 and access["method"] == "POST"


async def test_trace_id_is_forwarded_upstream(client, alice, upstreams):
    cid = (await client.post("/api/conversations", json={}, headers={**alice, "X-Request-Id": "req-42"})).json()["id"]
    assert upstreams.router.routes["auth"].calls.last.request.headers["x-trace-id"] == "req-42"
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers={**alice, "X-Trace-Id": "t-7"})
    assert upstreams.router.routes["generate"].calls.last.request.headers["x-trace-id"] == "t-7"


async def test_generated_trace_id_when_none_or_unsafe(capsys, client):
    capsys.readouterr()
    response = await client.get("/api/health", headers={"X-Trace-Id": 'bad"id {with} spaces' + "x" * 200})
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32 and '"' not in trace_id
    assert any(line.get("trace_id") == trace_id for line in log_lines(capsys))


async def test_no_secrets_or_contents_in_logs(capsys, client, alice, upstreams):
    capsys.readouterr()
    token = alice["Authorization"][7:]
    cid = (await client.post("/api/conversations", json={"title": "t"}, headers=alice)).json()["id"]
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "very private words"}, headers=alice)
    await client.get("/api/conversations", headers={"Authorization": "Bearer some-invalid-token"})
    upstreams.generate_status = 500
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "more private words"}, headers=alice)
    out = capsys.readouterr().out
    for secret in (token, "some-invalid-token", "internal-secret-key", "private words", "Hi there"):
        assert secret not in out
    assert all(json.loads(line) for line in out.splitlines() if line.strip())


async def test_errors_log_one_structured_line(capsys, client, alice):
    capsys.readouterr()
    await client.post("/api/conversations", content=b"{bad", headers={**alice, "Content-Type": "application/json"})
    failures = [line for line in log_lines(capsys) if line["event"] == "request_failed"]
    assert len(failures) == 1 and failures[0]["status"] == 400


@pytest.fixture
def debug_logs(env):
    env["LOG_LEVEL"] = "DEBUG"


async def test_debug_logs_keep_message_contents_out(capsys, debug_logs, client, alice):
    capsys.readouterr()
    cid = (await client.post("/api/conversations", json={}, headers=alice)).json()["id"]
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "very private words"}, headers=alice)
    out = capsys.readouterr().out
    assert any(json.loads(line)["level"] == "debug" for line in out.splitlines() if line.strip())
    assert "private words" not in out and "Hi there" not in out


async def test_upstream_error_text_is_not_logged(capsys, client, alice, upstreams):
    from .support.upstreams import sse as sse_chunks

    upstreams.generate_chunks = sse_chunks({"error": "prompt SECRET-QUESTION too long"})
    cid = (await client.post("/api/conversations", json={}, headers=alice)).json()["id"]
    capsys.readouterr()
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    assert "SECRET-QUESTION" in response.text  # the user is told
    out = capsys.readouterr().out
    assert "SECRET-QUESTION" not in out
    assert any(json.loads(line).get("kind") == "error_event" for line in out.splitlines() if line.strip())
