"""The bearer-token guard: validation, cache (hit, expiry, claims.exp), single flight, failures."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sanic import Sanic

from samosachat_api.app import create_app
from samosachat_api.settings import Settings

from .conftest import log_lines
from .support.upstreams import AUTH_URL


async def test_missing_or_malformed_token_is_401(client, upstreams):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "token"}):
        response = await client.get("/api/conversations", headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"detail": "Missing or malformed bearer token"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert upstreams.auth_calls == 0


async def test_every_api_route_needs_a_token_and_only_those_outside_are_public(env, upstreams, live_app):
    """The guard is the API group's, whatever a handler's arguments: every route the router has
    under /api, including ones added later, answers 401 without a token.

    In-process through sanic-testing's ASGI client, which starts and stops the app around every
    request, so the shared live app is stopped first (Tortoise keeps one context per process)."""
    await live_app.stop()
    Sanic.test_mode = True
    app = create_app(settings=Settings.from_env(env))
    try:
        for public in ("/api/health", "/metrics", "/docs/openapi.json"):
            _, response = await app.asgi_client.get(public)
            assert response.status == 200, public
        guarded = [
            (method, "/" + route.path.replace("<conversation_id:uuid>", "6f1c2d3e-0000-4000-8000-000000000000"))
            for route in app.router.routes
            if route.path.startswith("api/") and not route.path.startswith("api/health")
            for method in sorted(route.methods - {"OPTIONS", "HEAD"})
        ]
        assert len(guarded) >= 10
        for method, path in guarded:
            _, response = await app.asgi_client.request(method, path)
            assert (response.status, response.json) == (401, {"detail": "Missing or malformed bearer token"}), path
        assert upstreams.auth_calls == 0
    finally:
        Sanic._app_registry.pop(app.name, None)


async def test_a_rejected_token_is_remembered_briefly_and_checked_once_at_a_time(client, upstreams):
    bad = {"Authorization": f"Bearer rejected-{uuid.uuid4()}"}
    burst = await asyncio.gather(*(client.get("/api/conversations", headers=bad) for _ in range(50)))
    for _ in range(50):
        burst.append(await client.get("/api/conversations", headers=bad))
    assert {(r.status_code, r.json()["detail"]) for r in burst} == {(401, "Invalid or expired token")}
    assert upstreams.auth_calls == 1
    token, _ = upstreams.add_user()  # a good token is not affected
    assert (await client.get("/api/conversations", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_validation_sends_internal_key_and_token(client, upstreams, alice):
    await client.get("/api/conversations", headers=alice)
    request = upstreams.router.routes["auth"].calls.last.request
    assert request.headers["x-internal-api-key"] == "internal-secret-key"
    assert request.content == b'{"token":"' + alice["Authorization"][7:].encode() + b'"}'


async def test_successful_validation_is_cached(client, upstreams, alice):
    for _ in range(3):
        assert (await client.get("/api/conversations", headers=alice)).status_code == 200
    assert upstreams.auth_calls == 1


@pytest.fixture
def short_ttl(env):
    env["AUTH_CACHE_TTL_SECONDS"] = "0.3"


async def test_cache_expires_after_ttl(short_ttl, client, upstreams, alice):
    await client.get("/api/conversations", headers=alice)
    await client.get("/api/conversations", headers=alice)
    assert upstreams.auth_calls == 1
    await asyncio.sleep(0.4)
    await client.get("/api/conversations", headers=alice)
    assert upstreams.auth_calls == 2


async def test_cache_never_outlives_token_expiry(client, upstreams):
    token, _ = upstreams.add_user(exp=time.time() + 0.3)
    headers = {"Authorization": f"Bearer {token}"}
    await client.get("/api/conversations", headers=headers)
    await client.get("/api/conversations", headers=headers)
    assert upstreams.auth_calls == 1
    await asyncio.sleep(0.4)
    del upstreams.users[token]  # the auth service now rejects it
    assert (await client.get("/api/conversations", headers=headers)).status_code == 401
    assert upstreams.auth_calls == 2


async def test_concurrent_requests_with_new_token_make_one_auth_call(client, upstreams, alice):
    upstreams.auth_delay = 0.2
    responses = await asyncio.gather(*(client.get("/api/conversations", headers=alice) for _ in range(100)))
    assert {r.status_code for r in responses} == {200}
    assert upstreams.auth_calls == 1


async def test_concurrent_requests_with_invalid_token_share_the_failure(client, upstreams):
    upstreams.auth_delay = 0.1
    headers = {"Authorization": f"Bearer wrong-{uuid.uuid4()}"}
    responses = await asyncio.gather(*(client.get("/api/conversations", headers=headers) for _ in range(10)))
    assert {r.status_code for r in responses} == {401}
    assert upstreams.auth_calls == 1


async def test_auth_service_unreachable_is_503_and_its_log_line_names_the_url(capsys, client, upstreams, alice):
    upstreams.router.routes["auth"].side_effect = httpx.ConnectError("refused")
    response = await client.get("/api/conversations", headers=alice)
    assert response.status_code == 503
    assert response.json() == {"detail": "Auth service unavailable"}
    [failed] = [line for line in log_lines(capsys) if line["event"] == "upstream_failed"]
    assert failed["url"] == f"{AUTH_URL}/auth/validate"


async def test_auth_service_rejecting_our_key_is_502(client, upstreams, alice):
    upstreams.router.routes["auth"].side_effect = None
    upstreams.router.routes["auth"].return_value = httpx.Response(403, json={"detail": "bad key"})
    response = await client.get("/api/conversations", headers=alice)
    assert response.status_code == 502
    assert response.json() == {"detail": "Auth service rejected this service's internal key"}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"valid": True, "user": {"id": "not-a-uuid"}}),
        httpx.Response(200, json=["valid"]),
    ],
)
async def test_auth_service_failures_are_502(client, upstreams, alice, answer):
    upstreams.router.routes["auth"].side_effect = None
    upstreams.router.routes["auth"].return_value = answer
    response = await client.get("/api/conversations", headers=alice)
    assert response.status_code == 502
    assert "detail" in response.json()
    upstreams.router.routes["auth"].return_value = None


async def test_upstream_failure_is_not_cached(client, upstreams, alice):
    upstreams.router.routes["auth"].side_effect = httpx.ConnectError("refused")
    assert (await client.get("/api/conversations", headers=alice)).status_code == 503
    upstreams.router.routes["auth"].side_effect = upstreams._validate
    assert (await client.get("/api/conversations", headers=alice)).status_code == 200
