"""The samosaChaat web client's own request sequence (services/frontend: store/chatStore.ts,
components/chat/ChatWindow.tsx), and what it needs from the service."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from samosachat_api.settings import THINKING_SYSTEM_PROMPT

from .conftest import eventually, new_conversation
from .sse import parse
from .support.upstreams import INFERENCE_URL, sse, token_events

WORDS = [f"w{i} " for i in range(15)]


@pytest.fixture
def default_prompts(env):
    del env["SYSTEM_PROMPT"]  # the service's own default prompts


@pytest.fixture
def boss(upstreams):
    token, _ = upstreams.add_user(email="Boss@Example.com")  # in ADMIN_EMAILS (tests/conftest.py)
    return {"Authorization": f"Bearer {token}"}


async def read_like_chat_window(response: httpx.Response) -> str:
    """ChatWindow.tsx: split on newlines, trim, keep `data:` lines, stop at `done`, add up tokens."""
    answer, buffer = "", ""
    async for text in response.aiter_text():
        buffer += text
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            line = line.strip()
            if not line.startswith("data:") or not line[5:].strip():
                continue
            data = json.loads(line[5:].strip())
            if data.get("done"):
                return answer
            if isinstance(data.get("token"), str):
                answer += data["token"]
    raise AssertionError("the stream ended without done")


async def test_the_web_clients_request_sequence(default_prompts, client, alice, boss, upstreams, app, db):
    headers = {**alice, "Content-Type": "application/json"}
    # fetchConversations, then createConversation as the client does it
    assert (await client.get("/api/conversations", headers=headers)).json()["items"] == []
    created = await client.post("/api/conversations", json={"title": "New chat"}, headers=headers)
    assert created.status_code == 201
    cid = created.json()["id"]

    # ask, with the Think and Search toggles on
    question = "  What makes   a good samosa? "
    body = {"content": question, "temperature": 0.8, "max_tokens": 512, "top_k": 50,
            "thinking_mode": True, "force_web_search": True}
    upstreams.generate_chunks = sse(*token_events("Crisp", " pastry"))
    async with client.stream("POST", f"/api/conversations/{cid}/messages", json=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert await read_like_chat_window(response) == "Crisp pastry"

    sent = upstreams.generate_requests[-1]
    assert sent["force_web_search"] is True
    assert (sent["max_tokens"], sent["top_k"]) == (512, 50)
    assert sent["messages"] == [{"role": "user", "content": f"{THINKING_SYSTEM_PROMPT}\n\n{question}"}]
    stored = await db.fetch("SELECT role, content FROM messages ORDER BY created_at")
    assert [(r["role"], r["content"]) for r in stored] == [("user", question), ("assistant", "Crisp pastry")]

    # after a reload: the sidebar shows the derived title
    listed = (await client.get("/api/conversations", headers=headers)).json()["items"]
    assert [c["title"] for c in listed] == ["What makes a good samosa?"]

    # a reload while the next answer runs: GET shows it as it stands
    upstreams.generate_chunks, upstreams.generate_delay = sse(*token_events(*WORDS)), 0.05
    body = {"content": "More?", "temperature": 0.8, "max_tokens": 512, "top_k": 50,
            "thinking_mode": False, "force_web_search": False}
    asking = asyncio.create_task(client.post(f"/api/conversations/{cid}/messages", json=body, headers=headers))

    async def generating():
        last = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()["messages"][-1]
        return last if last.get("status") == "generating" and last["content"] else None

    partial = await eventually(generating)
    assert partial["role"] == "assistant" and "".join(WORDS).startswith(partial["content"])
    await asking
    final = (await client.get(f"/api/conversations/{cid}", headers=headers)).json()["messages"]
    assert (final[-1]["id"], final[-1]["status"], final[-1]["content"]) == (partial["id"], "complete", "".join(WORDS))
    sent = upstreams.generate_requests[-1]
    assert sent["force_web_search"] is False
    assert not sent["messages"][0]["content"].startswith(THINKING_SYSTEM_PROMPT)
    assert sent["messages"][0]["content"].startswith("You are samosaChaat")  # SYSTEM_PROMPT, on the first user message only
    assert [m["content"] for m in sent["messages"][1:]] == ["Crisp pastry", "More?"]

    # delete, then the admin dashboard
    assert (await client.delete(f"/api/conversations/{cid}", headers=headers)).status_code == 204
    other = await new_conversation(client, alice)
    await client.post(f"/api/conversations/{other}/messages", json={"content": "hi"}, headers=headers)
    users = await client.get("/api/admin/users", headers=boss)
    assert users.status_code == 200
    alice_id = upstreams.users[alice["Authorization"][7:]]["user"]["id"]
    assert users.json() == {
        "items": [{"id": alice_id, "email": None, "name": None, "provider": None, "created_at": None,
                   "last_login_at": None, "conversation_count": 1, "message_count": 2}],
        "totals": {"users": 1, "conversations": 1, "messages": 2},
    }
    refused = await client.get("/api/admin/users", headers=alice)
    assert (refused.status_code, refused.json()) == (403, {"detail": "Only administrators can do this"})


async def test_a_stopped_answer_is_stored_as_stopped(client, alice, upstreams, app):
    upstreams.generate_chunks, upstreams.generate_delay = sse(*token_events(*WORDS)), 0.05
    cid = await new_conversation(client, alice)
    asking = asyncio.create_task(client.post(f"/api/conversations/{cid}/messages", json={"content": "go"}, headers=alice))
    await eventually(lambda: app.ctx.answers.running(uuid.UUID(cid)))
    await asyncio.sleep(0.2)
    assert (await client.post(f"/api/conversations/{cid}/stop", headers=alice)).json() == {"stopped": True}
    await asking
    answer = (await client.get(f"/api/conversations/{cid}", headers=alice)).json()["messages"][-1]
    assert answer["status"] == "stopped" and 0 < len(answer["content"]) < len("".join(WORDS))


@pytest.fixture
async def users_table(db):
    """The auth service's table, as the predecessor's migrations made it, in the same database."""
    await db.execute(
        "CREATE TABLE users (id UUID PRIMARY KEY, email VARCHAR(255) NOT NULL, name VARCHAR(255),"
        " avatar_url TEXT, provider VARCHAR(50) NOT NULL, provider_id VARCHAR(255) NOT NULL,"
        " created_at TIMESTAMPTZ DEFAULT now(), last_login_at TIMESTAMPTZ)"
    )
    try:
        yield db
    finally:
        await db.execute("DROP TABLE users")


async def test_admin_users_join_the_auth_services_table(users_table, client, alice, bob, boss, upstreams):
    alice_id = upstreams.users[alice["Authorization"][7:]]["user"]["id"]
    bob_id = upstreams.users[bob["Authorization"][7:]]["user"]["id"]
    logins = [(alice_id, "alice@example.com", datetime(2026, 11, 27, tzinfo=UTC)), (bob_id, "bob@example.com", datetime(2026, 11, 28, tzinfo=UTC))]
    for user_id, email, login in logins:
        await users_table.execute(
            "INSERT INTO users (id, email, name, provider, provider_id, last_login_at) VALUES ($1, $2, 'N', 'google', 'p', $3)",
            uuid.UUID(user_id), email, login,
        )
    for _ in range(2):
        await new_conversation(client, alice)
    body = (await client.get("/api/admin/users", headers=boss)).json()
    assert [(u["email"], u["provider"], u["conversation_count"]) for u in body["items"]] == [
        ("bob@example.com", "google", 0), ("alice@example.com", "google", 2),  # most recent login first
    ]
    assert body["items"][0]["last_login_at"].startswith("2026-11-28")
    assert body["totals"] == {"users": 2, "conversations": 2, "messages": 0}
    page = (await client.get("/api/admin/users?limit=1&offset=1", headers=boss)).json()
    assert [u["email"] for u in page["items"]] == ["alice@example.com"] and page["totals"]["users"] == 2


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "limit="])
async def test_admin_users_query_is_bounded(client, boss, query):
    response = await client.get(f"/api/admin/users?{query}", headers=boss)
    assert response.status_code == 400 and set(response.json()) == {"detail"}


async def test_admin_email_setting_is_accepted_too(env, upstreams, client):
    token, _ = upstreams.add_user(email="boss@example.com")
    assert (await client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})).status_code == 200


@pytest.fixture
def single_admin_email(env):
    env["ADMIN_EMAILS"], env["ADMIN_EMAIL"] = "", "Chief@Example.com"


async def test_admin_email_alone(single_admin_email, upstreams, client):
    token, _ = upstreams.add_user(email="chief@example.com")
    assert (await client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    token, _ = upstreams.add_user(email="boss@example.com")
    assert (await client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})).status_code == 403


@pytest.fixture
def modal_endpoint(env):
    env["INFERENCE_GENERATE_URL"] = "https://someone--samosachaat-generate.modal.run"


async def test_the_token_stream_can_live_at_its_own_url(modal_endpoint, upstreams, client, alice):
    seen = []
    upstreams.router.post("https://someone--samosachaat-generate.modal.run").mock(
        side_effect=lambda request: seen.append(json.loads(request.content))
        or httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(sse(*token_events("ok"))))
    )
    cid = await new_conversation(client, alice)
    response = await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    events, _ = parse(response.text)
    assert events[-1].data == {"done": True} and len(seen) == 1 and upstreams.generate_requests == []
    assert INFERENCE_URL not in str(seen)


async def test_create_without_a_body_and_blank_titles(client, alice):
    created = await client.post("/api/conversations", headers=alice)
    assert (created.status_code, created.json()["title"]) == (201, "New conversation")
    cid = created.json()["id"]
    at_creation = await client.post("/api/conversations", json={"title": ""}, headers=alice)
    at_rename = await client.put(f"/api/conversations/{cid}", json={"title": ""}, headers=alice)
    assert at_creation.status_code == at_rename.status_code == 400
    assert at_creation.json() == at_rename.json() == {"detail": "Invalid request: title: String should have at least 1 character"}


@pytest.mark.parametrize("route", ["/api/conversations", "/api/conversations/{cid}/messages", "/api/conversations/{cid}/regenerate"])
async def test_validation_errors_never_name_python_classes(client, alice, route):
    cid = await new_conversation(client, alice)
    response = await client.post(route.format(cid=cid), content=b"[1, 2]", headers={**alice, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid request: body: Input should be a JSON object"}
