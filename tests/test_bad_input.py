"""Bad input gets a 4xx with {"detail": ...} and changes nothing; nothing produces a 500."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture
async def conversation(client, alice):
    return (await client.post("/api/conversations", json={"title": "kept"}, headers=alice)).json()["id"]


async def assert_rejected(response, status=400):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and body["detail"]


async def assert_nothing_changed(db, upstreams):
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT title FROM conversations") == "kept"
    assert upstreams.generate_requests == []


BAD_MESSAGE_BODIES = [
    b"{not json",
    b"[1, 2]",
    b'"hello"',
    b"null",
    b"{}",
    json.dumps({"content": ""}).encode(),
    json.dumps({"content": "x" * 8001}).encode(),
    json.dumps({"content": 42}).encode(),
    json.dumps({"content": ["a"]}).encode(),
    json.dumps({"content": "hi", "temperature": 2.5}).encode(),
    json.dumps({"content": "hi", "temperature": -0.1}).encode(),
    json.dumps({"content": "hi", "temperature": "hot"}).encode(),
    json.dumps({"content": "hi", "max_tokens": 0}).encode(),
    json.dumps({"content": "hi", "max_tokens": 4097}).encode(),
    json.dumps({"content": "hi", "max_tokens": 1.5}).encode(),
    json.dumps({"content": "hi", "top_k": 201}).encode(),
    json.dumps({"content": "hi", "top_k": True}).encode(),
]


@pytest.mark.parametrize("body", BAD_MESSAGE_BODIES)
async def test_bad_message_bodies(client, alice, conversation, db, upstreams, body):
    response = await client.post(
        f"/api/conversations/{conversation}/messages",
        content=body,
        headers={**alice, "Content-Type": "application/json"},
    )
    await assert_rejected(response)
    await assert_nothing_changed(db, upstreams)


@pytest.mark.parametrize("body", [b"{not json", b"[]", json.dumps({"temperature": 3}).encode(), json.dumps({"top_k": "5"}).encode()])
async def test_bad_regenerate_bodies(client, alice, conversation, db, upstreams, body):
    response = await client.post(
        f"/api/conversations/{conversation}/regenerate", content=body, headers={**alice, "Content-Type": "application/json"}
    )
    await assert_rejected(response)
    await assert_nothing_changed(db, upstreams)


@pytest.mark.parametrize(
    "body", [b"{bad", b"[]", b'{"title": ""}', b'{"title": 7}', json.dumps({"title": "x" * 501}).encode(), b"{}"]
)
async def test_bad_rename_bodies(client, alice, conversation, db, upstreams, body):
    response = await client.put(f"/api/conversations/{conversation}", content=body, headers={**alice, "Content-Type": "application/json"})
    await assert_rejected(response)
    await assert_nothing_changed(db, upstreams)


@pytest.mark.parametrize(
    "body", [b"{bad", b"[]", b"5", json.dumps({"title": "x" * 501}).encode(), json.dumps({"model_tag": "m" * 101}).encode(), b'{"title": 1}']
)
async def test_bad_create_bodies(client, alice, db, body):
    response = await client.post("/api/conversations", content=body, headers={**alice, "Content-Type": "application/json"})
    await assert_rejected(response)
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0


async def test_body_over_one_mebibyte_is_413(client, alice, conversation, db, upstreams):
    body = json.dumps({"content": "x" * (1024 * 1024 + 10)})
    response = await client.post(
        f"/api/conversations/{conversation}/messages", content=body, headers={**alice, "Content-Type": "application/json"}
    )
    await assert_rejected(response, 413)
    await assert_nothing_changed(db, upstreams)


async def test_validation_detail_names_the_field(client, alice, conversation):
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"content": "hi", "top_k": 999}, headers=alice)
    assert "top_k" in response.json()["detail"]


async def test_bad_last_event_id_is_400(client, alice, conversation):
    response = await client.get(f"/api/conversations/{conversation}/stream", headers={**alice, "Last-Event-ID": "abc"})
    await assert_rejected(response)


async def test_unknown_route_and_wrong_method(client, alice):
    await assert_rejected(await client.get("/api/nope", headers=alice), 404)
    await assert_rejected(await client.patch(f"/api/conversations/{uuid.uuid4()}", headers=alice), 405)


@pytest.mark.parametrize("query", ["limit=", "limit=1&=", "limt=5", "offset=99999999999", "limit=1.5"])
async def test_list_rejects_blank_unknown_and_out_of_range_parameters(client, alice, query):
    await assert_rejected(await client.get(f"/api/conversations?{query}", headers=alice))


@pytest.mark.parametrize("field,body", [("title", {"title": "a\x00b"}), ("model_tag", {"model_tag": "\x00"})])
async def test_nul_characters_are_rejected_not_500(client, alice, db, field, body):
    response = await client.post("/api/conversations", json=body, headers=alice)
    await assert_rejected(response)
    assert field in response.json()["detail"]  # "String should match pattern"
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0


async def test_nul_in_message_content_is_rejected(client, alice, conversation, db, upstreams):
    response = await client.post(f"/api/conversations/{conversation}/messages", json={"content": "hi\x00"}, headers=alice)
    await assert_rejected(response)
    await assert_nothing_changed(db, upstreams)


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "-1", "1e3", "0x10"])
async def test_odd_last_event_ids_are_400(client, alice, conversation, value):
    response = await client.get(f"/api/conversations/{conversation}/stream", params={"last_event_id": value}, headers=alice)
    await assert_rejected(response)


async def test_conversation_deleted_before_the_question_is_stored_is_404(client, alice, app, db):
    from samosachat_api.errors import ConversationNotFound
    from samosachat_api.models import Conversation
    from samosachat_api.services import messages

    conversation = await Conversation.create(user_id=uuid.uuid4())
    await db.execute("DELETE FROM conversations")
    with pytest.raises(ConversationNotFound):
        await messages.add_user_message(conversation, "q", 10)
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
