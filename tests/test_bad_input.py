"""Bad input gets a 4xx with {"detail": ...} and changes nothing; nothing produces a 500."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import new_conversation


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


@pytest.mark.parametrize("query", ["limit=", "offset=99999999999", "limit=1.5", "limit=NaN"])
async def test_list_rejects_blank_and_out_of_range_parameters(client, alice, query):
    await assert_rejected(await client.get(f"/api/conversations?{query}", headers=alice))


@pytest.mark.parametrize("path", ["/api/conversations", "/api/admin/users"])
async def test_unknown_query_parameters_are_ignored(client, upstreams, path):
    token, _ = upstreams.add_user(is_admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    await new_conversation(client, headers)
    plain = await client.get(f"{path}?limit=1", headers=headers)
    busted = await client.get(f"{path}?limit=1&_=1733612345&limt=5&=x", headers=headers)
    assert plain.status_code == busted.status_code == 200, busted.text
    assert busted.json() == plain.json() and busted.json()["items"]


def body_routes(conversation: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/conversations"),
        ("PUT", f"/api/conversations/{conversation}"),
        ("POST", f"/api/conversations/{conversation}/messages"),
        ("POST", f"/api/conversations/{conversation}/regenerate"),
        ("POST", "/api/models/swap"),
    ]


@pytest.mark.parametrize(
    "body,detail",
    [
        (b"{1: 2}", "Invalid request: body: Invalid JSON: key must be a string at line 1 column 2"),
        (b"[]", "Invalid request: body: Input should be a JSON object"),
        (
            b'{"title": "\\ud800", "content": "\\ud800", "model_tag": "\\ud800"}',
            "Invalid request: body: Invalid JSON: a lone surrogate escape (\\ud800 to \\udfff without its pair) "
            "is not a character at line 1 column 18",
        ),
        (b'{"title": "\xff"}', "Invalid request: body: Invalid JSON: the body must be UTF-8 text at line 1 column 12"),
    ],
)
async def test_unreadable_bodies_get_one_message_on_every_route(client, upstreams, db, body, detail):
    token, _ = upstreams.add_user(is_admin=True)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conversation = await new_conversation(client, headers, title="kept")
    for method, path in body_routes(conversation):
        response = await client.request(method, path, content=body, headers=headers)
        assert (response.status_code, response.json()) == (400, {"detail": detail}), (method, path)
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert upstreams.generate_requests == []


@pytest.mark.parametrize("field,body", [("title", {"title": "a\x00b"}), ("model_tag", {"model_tag": "\x00"})])
async def test_nul_characters_are_refused_in_words(client, alice, db, field, body):
    response = await client.post("/api/conversations", json=body, headers=alice)
    assert response.status_code == 400
    assert response.json() == {"detail": f"Invalid request: {field}: must not contain NUL characters (\\u0000)"}
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
async def test_non_finite_numbers_are_refused_in_words(client, alice, conversation, db, upstreams, value):
    for path in ("messages", "regenerate"):
        response = await client.post(
            f"/api/conversations/{conversation}/{path}",
            content=b'{"content": "hi", "temperature": %s}' % value,
            headers={**alice, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "Invalid request: temperature: Input should be a finite number"}
    await assert_nothing_changed(db, upstreams)


async def test_a_required_body_left_out_is_named(client, alice, conversation):
    response = await client.put(f"/api/conversations/{conversation}", headers=alice)
    assert response.json() == {"detail": "Invalid request: body: a JSON object is required"}


@pytest.mark.parametrize("path", ["/", "/api/nope", "/api/conversations/not-a-uuid"])
async def test_a_404_names_the_path(client, alice, path):
    response = await client.get(path, headers=alice)
    assert (response.status_code, response.json()) == (404, {"detail": f"Requested URL {path} not found"})
