"""The model routes: listing proxied unchanged, swapping for admins only."""

from __future__ import annotations

import httpx


async def test_list_models_is_proxied_unchanged(client, alice, upstreams):
    response = await client.get("/api/models", headers=alice)
    assert response.status_code == 200
    assert response.json() == {"models": ["default", "large"], "current": "default"}
    assert upstreams.router.routes["models"].calls.last.request.headers["x-internal-api-key"] == "internal-secret-key"


async def test_models_need_auth(client, upstreams):
    assert (await client.get("/api/models")).status_code == 401
    assert (await client.post("/api/models/swap", json={"model_tag": "x"})).status_code == 401


async def test_swap_for_admin_flag(client, upstreams):
    token, _ = upstreams.add_user(is_admin=True)
    response = await client.post("/api/models/swap", json={"model_tag": "large"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"swapped": True, "current": "large"}
    assert upstreams.router.routes["swap"].calls.last.request.content == b'{"model_tag":"large"}'


async def test_swap_for_admin_email(client, upstreams):
    token, _ = upstreams.add_user(email="Boss@Example.com")
    response = await client.post("/api/models/swap", json={"model_tag": "large"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_swap_refused_for_others(client, alice, upstreams):
    response = await client.post("/api/models/swap", json={"model_tag": "large"}, headers=alice)
    assert response.status_code == 403
    assert response.json() == {"detail": "Only administrators can do this"}
    assert upstreams.router.routes["swap"].call_count == 0


async def test_swap_passes_upstream_status_through(client, upstreams):
    token, _ = upstreams.add_user(is_admin=True)
    upstreams.router.routes["swap"].return_value = httpx.Response(404, json={"detail": "unknown model"})
    response = await client.post("/api/models/swap", json={"model_tag": "nope"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown model"}


async def test_swap_validates_model_tag(client, upstreams):
    token, _ = upstreams.add_user(is_admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    for body in ({}, {"model_tag": ""}, {"model_tag": "x" * 101}, {"model_tag": 5}):
        assert (await client.post("/api/models/swap", json=body, headers=headers)).status_code == 400, body


async def test_upstream_error_is_502_and_unreachable_is_503(client, alice, upstreams):
    upstreams.router.routes["models"].return_value = httpx.Response(500, text="oops")
    response = await client.get("/api/models", headers=alice)
    assert response.status_code == 502
    assert response.json() == {"detail": "Inference service answered 500"}
    upstreams.router.routes["models"].side_effect = httpx.ConnectError("refused")
    response = await client.get("/api/models", headers=alice)
    assert response.status_code == 503
    assert response.json() == {"detail": "Inference service unavailable"}
