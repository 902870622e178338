"""GET /metrics: Prometheus text with bounded labels, counting what the service did."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dev.processes import stand_ins, web_service

from .conftest import eventually, log_lines
from .sse import parse
from .support.upstreams import sse, token_events

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client) -> dict:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_counts_requests_answers_tokens_and_auth(client, alice, upstreams):
    before = await scrape(client)
    cid = (await client.post("/api/conversations", json={}, headers=alice)).json()["id"]
    for _ in range(3):
        await client.get(f"/api/conversations/{cid}", headers=alice)
    upstreams.generate_chunks = sse(*token_events("a", "b", "c", "d"))
    parse((await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)).text)
    upstreams.generate_status = 500
    await client.post(f"/api/conversations/{cid}/messages", json={"content": "q"}, headers=alice)
    await client.get("/api/conversations", headers={"Authorization": "Bearer unknown"})
    after = await scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/api/conversations/<conversation_id:uuid>"
    assert delta("chat_api_requests_total", route=route, method="GET", status="200") == 3
    assert delta("chat_api_requests_total", route="/api/conversations", method="GET", status="401") == 1
    assert delta("chat_api_request_duration_seconds_count", route=route) == 3
    assert delta("chat_api_answers_total", outcome="started") == 2
    assert delta("chat_api_answers_total", outcome="completed") == 1
    assert delta("chat_api_answers_total", outcome="failed") == 1
    assert value(after, "chat_api_answers_running") == 0
    assert delta("chat_api_tokens_relayed_total") == 4
    assert delta("chat_api_time_to_first_token_seconds_count") == 1
    assert delta("chat_api_answer_duration_seconds_count") == 1
    assert delta("chat_api_auth_cache_total", result="miss") == 2
    assert delta("chat_api_auth_cache_total", result="hit") == 5
    assert delta("chat_api_auth_call_duration_seconds_count") == 2
    assert delta("chat_api_upstream_errors_total", service="inference", kind="status") == 1


ABANDONED = {  # what the client sent before it closed: the request's method and route label
    "headers": (b"POST /api/conversations HTTP/1.1\r\nHost: x\r\nContent-Le", "OTHER", "unmatched"),
    "body": (b'POST /api/conversations HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"t', "POST", "/api/conversations"),
    "handler": (b"GET /api/conversations HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n", "GET", "/api/conversations"),
}


@pytest.mark.parametrize("sent,method,route", ABANDONED.values(), ids=ABANDONED.keys())
async def test_a_request_its_client_abandoned_is_a_499_logged_once_at_info(capsys, client, app, upstreams, sent, method, route):
    token, _ = upstreams.add_user()
    upstreams.auth_delay = 0.5  # the handler is still waiting for the auth service when the client leaves
    before = await scrape(client)
    log_lines(capsys)  # what came before
    _, writer = await asyncio.open_connection("127.0.0.1", app.ctx.test_port)
    writer.write(sent.replace(b"{token}", token.encode()))
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    lines = []

    async def logged_499():
        lines.extend(log_lines(capsys))
        return any(line.get("status") == 499 for line in lines)

    assert await eventually(logged_499)
    after = await scrape(client)

    assert [(line["event"], line["level"]) for line in lines if line.get("status") == 499] == [("request", "info")], lines
    assert not [line for line in lines if line["event"] in ("request_failed", "unhandled_error") or line["level"] == "error"], lines
    counted = {labels for (name, labels), total in after.items() if name == "chat_api_requests_total" and total != before.get((name, labels))}
    assert counted == {(("method", method), ("route", route), ("status", "499"))} | {(("method", "GET"), ("route", "/metrics"), ("status", "200"))}


async def test_labels_are_route_templates_not_paths(client, alice):
    cid = (await client.post("/api/conversations", json={}, headers=alice)).json()["id"]
    await client.get(f"/api/conversations/{cid}", headers=alice)
    await client.get("/api/no/such/path/12345")
    text = (await client.get("/metrics")).text
    assert not UUID.search(text)
    assert "12345" not in text
    assert 'route="unmatched"' in text


@pytest.fixture
def metrics_off(env):
    env["METRICS_ENABLED"] = "false"


async def test_metrics_can_be_turned_off(metrics_off, client):
    assert (await client.get("/metrics")).status_code == 404


def test_every_worker_is_counted(database_url, tmp_path):
    requests = 40
    with stand_ins() as upstream_urls, web_service(
        database_url, *upstream_urls, tmp_path / "web.log", WEB_CONCURRENCY="2"
    ) as (_, base_url):
        before = samples(httpx.get(f"{base_url}/metrics").text)
        for _ in range(requests):  # a new connection each time, so both workers take some
            httpx.get(f"{base_url}/api/health", headers={"Connection": "close"})
        found = [samples(httpx.get(f"{base_url}/metrics", headers={"Connection": "close"}).text) for _ in range(4)]
    labels = {"route": "/api/health", "method": "GET", "status": "200"}
    for after in found:
        assert value(after, "chat_api_requests_total", **labels) - value(before, "chat_api_requests_total", **labels) == requests


async def test_unknown_methods_share_one_label(client):
    for method in ("FOOBAR", "BAZQUX"):
        await client.request(method, "/api/health")
    text = (await client.get("/metrics")).text
    assert "FOOBAR" not in text and "BAZQUX" not in text
    assert 'method="OTHER"' in text
