"""Conversation CRUD, response shapes, ordering and grouping, and user scoping."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

CONV_KEYS = {"id", "user_id", "title", "model_tag", "is_favorited", "created_at", "updated_at"}
MSG_KEYS = {"id", "conversation_id", "role", "content", "token_count", "model_tag", "inference_time_ms", "time_to_first_token_ms", "status", "created_at"}


async def create(client, headers, **body):
    response = await client.post("/api/conversations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_health_needs_no_auth(client):
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ready": True, "service": "chat-api"}


async def test_create_defaults_and_shape(client, alice, upstreams):
    conversation = await create(client, alice)
    assert set(conversation) == CONV_KEYS
    assert conversation["title"] == "New conversation"
    assert conversation["model_tag"] == "default"
    assert conversation["is_favorited"] is False
    uuid.UUID(conversation["id"])
    assert datetime.fromisoformat(conversation["created_at"]).tzinfo is not None


async def test_create_with_title_and_model(client, alice):
    conversation = await create(client, alice, title="Samosa recipes", model_tag="large")
    assert (conversation["title"], conversation["model_tag"]) == ("Samosa recipes", "large")


async def test_get_returns_messages_oldest_first_with_defaults(client, alice, db):
    conversation = await create(client, alice)
    cid = uuid.UUID(conversation["id"])
    start = datetime.now(timezone.utc)
    await db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES ($1, $2, 'user', 'second', $3)",
        uuid.uuid4(), cid, start + timedelta(seconds=1),
    )
    await db.execute(
        "INSERT INTO messages (id, conversation_id, role, content, token_count, model_tag, inference_time_ms, created_at)"
        " VALUES ($1, $2, 'assistant', 'first', 3, 'm', 40, $3)",
        uuid.uuid4(), cid, start,
    )
    response = await client.get(f"/api/conversations/{cid}", headers=alice)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == CONV_KEYS | {"messages"}
    assert [m["content"] for m in body["messages"]] == ["first", "second"]
    assert all(set(m) == MSG_KEYS for m in body["messages"])
    first, second = body["messages"]
    assert (first["token_count"], first["model_tag"], first["inference_time_ms"]) == (3, "m", 40)
    assert (second["token_count"], second["model_tag"], second["inference_time_ms"]) == (0, "", 0)


async def test_list_newest_first_grouped_by_utc_day(client, alice, db):
    old = await create(client, alice, title="old")
    new = await create(client, alice, title="new")
    yesterday = datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-2)))  # 2026-11-26 01:30 UTC
    await db.execute("UPDATE conversations SET updated_at = $1 WHERE id = $2", yesterday, uuid.UUID(old["id"]))
    await db.execute(
        "UPDATE conversations SET updated_at = $1 WHERE id = $2",
        datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc), uuid.UUID(new["id"]),
    )
    body = (await client.get("/api/conversations", headers=alice)).json()
    assert [c["title"] for c in body["items"]] == ["new", "old"]
    assert {day: [c["title"] for c in group] for day, group in body["grouped"].items()} == {
        "2026-11-27": ["new"],
        "2026-11-26": ["old"],
    }
    assert (body["limit"], body["offset"]) == (50, 0)


async def test_list_pages(client, alice):
    for i in range(5):
        await create(client, alice, title=f"c{i}")
    page = (await client.get("/api/conversations?limit=2&offset=1", headers=alice)).json()
    assert [c["title"] for c in page["items"]] == ["c3", "c2"]
    assert (page["limit"], page["offset"]) == (2, 1)


async def test_list_rejects_bad_paging(client, alice):
    for query in ("limit=0", "limit=201", "offset=-1", "limit=abc"):
        response = await client.get(f"/api/conversations?{query}", headers=alice)
        assert response.status_code == 400, query
        assert "detail" in response.json()


async def test_rename(client, alice):
    conversation = await create(client, alice)
    response = await client.put(f"/api/conversations/{conversation['id']}", json={"title": "Chaat"}, headers=alice)
    assert response.status_code == 200
    assert response.json()["title"] == "Chaat"
    again = (await client.get(f"/api/conversations/{conversation['id']}", headers=alice)).json()
    assert again["title"] == "Chaat"


async def test_delete_removes_messages(client, alice, db):
    conversation = await create(client, alice)
    cid = uuid.UUID(conversation["id"])
    await db.execute("INSERT INTO messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', 'x')", uuid.uuid4(), cid)
    response = await client.delete(f"/api/conversations/{cid}", headers=alice)
    assert response.status_code == 204
    assert response.content == b""
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert (await client.get(f"/api/conversations/{cid}", headers=alice)).status_code == 404


async def test_other_users_conversation_is_404_on_every_route(client, alice, bob, db):
    conversation = await create(client, alice, title="alice's")
    cid = conversation["id"]
    attempts = [
        ("GET", f"/api/conversations/{cid}", None),
        ("PUT", f"/api/conversations/{cid}", {"title": "mine now"}),
        ("DELETE", f"/api/conversations/{cid}", None),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/api/conversations/{cid}/regenerate", None),
        ("GET", f"/api/conversations/{cid}/stream", None),
        ("POST", f"/api/conversations/{cid}/stop", None),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=bob)
        assert response.status_code == 404, (method, url)
        assert response.json() == {"detail": "Conversation not found"}
    assert (await client.get("/api/conversations", headers=bob)).json()["items"] == []
    row = await db.fetchrow("SELECT title FROM conversations WHERE id = $1", uuid.UUID(cid))
    assert row["title"] == "alice's"
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_unknown_and_malformed_ids_are_404(client, alice):
    for path in (f"/api/conversations/{uuid.uuid4()}", "/api/conversations/not-a-uuid", "/api/conversations/1"):
        response = await client.get(path, headers=alice)
        assert response.status_code == 404
        assert "detail" in response.json()
    response = await client.delete(f"/api/conversations/{uuid.uuid4()}", headers=alice)
    assert response.status_code == 404


async def test_cors_allows_only_the_frontend_with_credentials(client):
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    response = await client.options("/api/conversations", headers=preflight)
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert set(response.headers["access-control-allow-headers"].lower().split(",")) == {"authorization", "content-type"}
    exposed = await client.get("/api/health", headers={"Origin": "http://localhost:3000"})
    assert exposed.headers["access-control-expose-headers"].lower() == "x-trace-id"
    other = await client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_read_routes_write_times_as_the_old_service_did(client, alice, db):
    """"+00:00", never "Z": the list and the conversation are written from rows (orjson), the
    other routes from the response models; both must read the same."""
    conversation = await create(client, alice)
    cid = conversation["id"]
    await db.execute("UPDATE conversations SET is_favorited = true WHERE id = $1", uuid.UUID(cid))
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    listed = (await client.get("/api/conversations", headers=alice)).json()
    opened = (await client.get(f"/api/conversations/{cid}", headers=alice)).json()
    times = [listed["items"][0]["updated_at"], opened["created_at"], *(m["created_at"] for m in opened["messages"])]
    assert all(t.endswith("+00:00") for t in times) and conversation["created_at"].endswith("+00:00")
    assert listed["items"][0]["is_favorited"] is True and opened["is_favorited"] is True
    assert [m["role"] for m in opened["messages"]] == ["user", "assistant"]
    assert [m["status"] for m in opened["messages"]] == ["complete", "complete"]
