"""Hostile input, exhausted resources and misconfiguration: a clear 4xx/5xx JSON answer, never a 500
or a traceback; nothing without a bound."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import httpx
import pytest

from samosachat_api.messages import generation
from samosachat_api.clients import inference
from samosachat_api.logging import trace_id_of
from samosachat_api.conversations import store as conversations
from samosachat_api.messages import store as messages

from .conftest import ROOT, log_lines, new_conversation
from .sse import parse, tokens
from .support.upstreams import sse, token_events

BIN = Path(sys.executable).parent


# -- headers ----------------------------------------------------------------------------------


def test_a_trace_id_with_a_trailing_newline_is_replaced():
    for unsafe in ("abc\n", "abc\r\n", "a b", "x" * 129):
        assert trace_id_of(SimpleNamespace(headers={"x-trace-id": unsafe})) != unsafe
    assert trace_id_of(SimpleNamespace(headers={"x-trace-id": "abc-1.2:3_4"})) == "abc-1.2:3_4"


HOSTILE = [
    b"Authorization: Bearer ab\xffcd",
    b"Authorization: Bearer \xc3\xa9t\xc3\xa9",
    b"Authorization: Bearer a\x01b",
    b"Authorization: Bearer " + b"x" * 7000,
    b"Authorization: \xff\xfe",
    b"X-Trace-Id: \xff\xfe",
    b"X-Trace-Id: a\x7fb",
    b"X-Request-Id: " + b"r" * 7000,
    b"Last-Event-ID: \xff",
    b"Content-Type: application/\xffjson",
]


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(response.split(b" ", 2)[1]), response.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("header", HOSTILE)
@pytest.mark.parametrize("route", ["GET /api/conversations", "POST /api/conversations", "GET /api/health"])
async def test_hostile_header_bytes_never_give_a_5xx(app, upstreams, alice, header, route):
    head = route.encode() + b" HTTP/1.1\r\nHost: t\r\n" + header
    if not header.startswith(b"Authorization"):
        head += b"\r\nAuthorization: " + alice["Authorization"].encode()
    status, body = await raw_request(app.ctx.test_port, head, b"{}" if route.startswith("POST") else b"")
    assert status < 500, body
    if status >= 400 and body:
        assert set(json.loads(body)) == {"detail"}


async def test_non_ascii_bearer_token_is_malformed_and_never_sent_on(app, upstreams):
    status, body = await raw_request(app.ctx.test_port, b"GET /api/conversations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ab\xffcd")
    assert (status, json.loads(body)) == (401, {"detail": "Missing or malformed bearer token"})
    assert upstreams.auth_calls == 0


# -- the database ---------------------------------------------------------------------------------


async def test_a_full_connection_pool_is_a_503(client, alice, monkeypatch):
    async def full(*args, **kwargs):
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")

    monkeypatch.setattr(conversations, "list_page", full)
    response = await client.get("/api/conversations", headers=alice)
    assert (response.status_code, response.json()) == (503, {"detail": "Database unavailable"})


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(generation, "STORE_RETRY_PAUSES", (0.01, 0.01))


async def test_storing_an_answer_tries_again_while_the_database_is_away(quick_retries, client, alice, upstreams, db, monkeypatch):
    store, failures = messages.store_answer, []

    async def flaky(answer):
        if len(failures) < 2:
            failures.append(answer)
            raise asyncpg.TooManyConnectionsError("sorry, too many clients already")
        return await store(answer)

    monkeypatch.setattr(messages, "store_answer", flaky)
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    assert parse(response.text)[0][-1].data == {"done": True}
    assert await db.fetchval("SELECT content FROM messages WHERE role = 'assistant'") == "Hi there"


async def test_giving_up_on_storing_is_logged_with_the_conversation(capsys, quick_retries, client, alice, upstreams, monkeypatch):
    async def down(answer):
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")

    monkeypatch.setattr(messages, "store_answer", down)
    cid = await new_conversation(client, alice)
    capsys.readouterr()
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    logs = log_lines(capsys)
    events, _ = parse(response.text)
    assert [e.data for e in events[-2:]] == [{"error": "The answer could not be stored"}, {"done": True}]
    assert [line["conversation_id"] for line in logs if line["event"] == "answer_store_retried"] == [cid, cid]
    assert any(line["event"] == "answer_not_stored" and line["conversation_id"] == cid for line in logs)


# -- upstreams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream,seen", [(401, 502), (403, 502), (500, 502), (404, 404), (400, 400)])
async def test_model_routes_keep_credential_failures_from_the_browser(capsys, client, upstreams, alice, upstream, seen):
    upstreams.router.routes["models"].return_value = httpx.Response(upstream, json={"detail": "upstream says no"})
    capsys.readouterr()
    response = await client.get("/api/models", headers=alice)
    assert response.status_code == seen
    if upstream in (401, 403):
        assert response.json() == {"detail": "Inference service refused this service's credentials"}
        assert any(line.get("check") == "INTERNAL_API_KEY" and line["level"] == "error" for line in log_lines(capsys))


async def test_an_endless_line_from_the_model_is_a_malformed_event(client, alice, upstreams, db, monkeypatch):
    monkeypatch.setattr(inference, "MAX_LINE_BYTES", 64 * 1024)
    upstreams.generate_chunks = [b"data: " + b"x" * 16 * 1024] * 8  # no newline, ever
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    events, _ = parse(response.text)
    assert [e.data for e in events] == [{"error": "Inference service sent a malformed event"}, {"done": True}]


@pytest.fixture
def short_deadline(env):
    env["ANSWER_TIMEOUT_SECONDS"] = "0.5"


async def test_an_answer_has_a_deadline(short_deadline, client, alice, upstreams, db):
    upstreams.generate_chunks = sse(*token_events(*[f"t{i} " for i in range(100)]))
    upstreams.generate_delay = 0.05
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    events, _ = parse(response.text)
    assert [e.data for e in events[-2:]] == [{"error": "The answer took longer than 0.5 s and was stopped"}, {"done": True}]
    stored = await db.fetchrow("SELECT content, status FROM messages WHERE role = 'assistant'")
    assert stored["status"] == "stopped" and stored["content"] == tokens(events) and 0 < len(tokens(events)) < 400
    upstreams.generate_chunks, upstreams.generate_delay = sse(*token_events("ok")), 0
    again = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q2"}, headers=alice)
    assert again.status_code == 200  # the conversation was freed


async def test_readiness_names_the_cause(env_closed_port, client, capsys):
    assert (await client.get("/api/health/ready")).status_code == 503
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"not_ready"' in line]
    assert lines and lines[-1]["database_error"] in {"ConnectionRefusedError", "OSError"}


# -- metrics ------------------------------------------------------------------------------------


def _import_metrics(**env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | env
    code = "import samosachat_api.metrics as m; print(m.DIRECTORY)"
    return subprocess.run([sys.executable, "-c", code], env=environ, cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_metrics_make_one_directory_only_when_none_is_given(tmp_path):
    given = _import_metrics(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), TMPDIR=str(tmp_path / "tmp"))
    assert given.stdout.strip() == str(tmp_path) and not (tmp_path / "tmp").exists()
    (tmp_path / "tmp").mkdir()
    made = _import_metrics(TMPDIR=str(tmp_path / "tmp"))
    assert Path(made.stdout.strip()).parent == tmp_path / "tmp"


def test_a_missing_metrics_directory_is_one_line():
    result = _import_metrics(PROMETHEUS_MULTIPROC_DIR="/nonexistent/metrics")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "samosachat-api: invalid PROMETHEUS_MULTIPROC_DIR='/nonexistent/metrics': not an existing directory"
    ]


@pytest.fixture
def metrics_token(env):
    env["METRICS_TOKEN"] = "scrape-secret"


async def test_metrics_token(metrics_token, client):
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})).status_code == 200


# -- the release command ------------------------------------------------------------------------


def test_release_with_a_bad_setting_prints_one_line():
    env = {**os.environ, "DATABASE_URL": "mysql://nope", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run("tortoise migrate", shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "samosachat-api: invalid DATABASE_URL='mysql://nope': must start with postgres:// or postgresql://"
    ]


# -- a retried question -----------------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_stores_nothing_new(client, alice, upstreams, db):
    upstreams.generate_status = 503  # the question is stored, its answer fails: the client tries again
    cid = await new_conversation(client, alice)
    url, headers = f"/api/conversations/{cid}/messages", {**alice, "Idempotency-Key": "ask-1"}
    first = await client.post(url, json={"content": "q"}, headers=headers)
    assert "error" in parse(first.text)[0][-2].data
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    upstreams.generate_status = 200
    retry = await client.post(url, json={"content": "q"}, headers=headers)
    assert retry.status_code == 200 and parse(retry.text)[0][-1].data == {"done": True}
    rows = await db.fetch("SELECT role, content FROM messages ORDER BY created_at")
    assert [(r["role"], r["content"]) for r in rows] == [("user", "q"), ("assistant", "Hi there")]
    again = await client.post(url, json={"content": "q"}, headers=headers)  # answered already
    assert (again.status_code, again.json()) == (409, {"detail": "This question (Idempotency-Key) was already answered"})
    assert await db.fetchval("SELECT count(*) FROM messages") == 2
    other = await client.post(url, json={"content": "q"}, headers={**alice, "Idempotency-Key": "ask-2"})
    assert other.status_code == 200 and await db.fetchval("SELECT count(*) FROM messages") == 4


async def test_a_question_the_database_fails_to_store_leaves_its_conversation_as_it_was(capsys, client, alice, db):
    cid = await new_conversation(client, alice, title="New chat")
    before = await db.fetchrow("SELECT title, updated_at FROM conversations")
    await db.execute("""
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse();
    """)
    try:
        response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    finally:
        await db.execute("DROP TRIGGER refuse ON messages; DROP FUNCTION refuse()")
    assert (response.status_code, response.json()) == (503, {"detail": "Database unavailable"})
    failures = [line for line in log_lines(capsys) if line["level"] in ("warning", "error")]
    assert [(line["event"], line["cause"]) for line in failures] == [("request_failed", "QueryCanceledError")]
    assert await db.fetchrow("SELECT title, updated_at FROM conversations") == before  # not titled "q"
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


@pytest.mark.parametrize("key", ["", "a b", "x" * 201, "é".encode()])
async def test_a_malformed_idempotency_key_is_400(client, alice, key, db):
    cid = await new_conversation(client, alice)
    response = await client.post(
        f"/api/conversations/{cid}/messages", json={"content": "q"}, headers={**alice, "Idempotency-Key": key}
    )
    assert response.status_code == 400 and await db.fetchval("SELECT count(*) FROM messages") == 0
