"""The published OpenAPI contract, fuzzed with schemathesis against the service as a real process
(stand-in upstreams, real PostgreSQL); and no id from one user's responses works for another user.

The document is built when pytest collects this file (tests/support/openapi_document.py), so each
operation is a test of its own, counted from the start (and xdist's `--dist load` can spread them
over workers); the live service is asserted to publish that same document.
"""

from __future__ import annotations

import copy
import os
import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from dev.processes import stand_ins, web_service
from dev.standins import new_token

from .conftest import empty_tables
from .support.openapi_document import published_document

TOKEN = new_token()
EXAMPLES_PER_OPERATION = 50
# CI replays the same examples every run (a red CI must be reproducible); local runs explore anew.
REPLAYABLE = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
async def live_service(database_url, tmp_path_factory):
    with stand_ins() as upstream_urls, web_service(
        database_url, *upstream_urls, tmp_path_factory.mktemp("contract") / "web.log"
    ) as (_, base_url):
        yield base_url
    await empty_tables(database_url)  # once it stopped, and stored what it was answering


DOCUMENT = published_document()
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT))


def test_the_fuzzed_document_is_the_one_the_service_publishes(live_service):
    assert httpx.get(f"{live_service}/docs/openapi.json").json() == DOCUMENT


@schemathesis.auth()
class BearerToken:
    """Every generated request carries a valid token (what the fuzzing varies is the rest)."""

    def get(self, case, context):
        return TOKEN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=REPLAYABLE, suppress_health_check=list(HealthCheck)
)
def test_every_operation_keeps_its_contract(case, live_service):
    """No 5xx, documented statuses and content types, responses matching their schemas."""
    case.call_and_validate(base_url=live_service)


def test_the_spec_describes_every_route(live_service):
    spec = httpx.get(f"{live_service}/docs/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/health", "/api/health/ready", "/metrics", "/api/conversations", "/api/conversations/{conversation_id}",
        "/api/conversations/{conversation_id}/messages", "/api/conversations/{conversation_id}/regenerate",
        "/api/conversations/{conversation_id}/stream", "/api/conversations/{conversation_id}/stop",
        "/api/models", "/api/models/swap", "/api/admin/users",
    }
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    ask = spec["paths"]["/api/conversations/{conversation_id}/messages"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SendMessage"}
    assert "text/event-stream" in ask["responses"]["200"]["content"]
    parameters = {p["name"]: p for p in ask["parameters"]}
    assert parameters["conversation_id"]["schema"] == {"type": "string", "format": "uuid"}
    assert parameters["Idempotency-Key"]["in"] == "header"


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_no_id_of_one_user_works_for_another(live_service):
    """Every id in Alice's responses, tried by Bob on every route with an id in its path: all 404."""
    alice = httpx.Client(base_url=live_service, headers={"Authorization": f"Bearer {new_token()}"}, timeout=30)
    bob = httpx.Client(base_url=live_service, headers={"Authorization": f"Bearer {new_token()}"}, timeout=30)
    seen = ""
    conversation = alice.post("/api/conversations", json={"title": "alice"}).json()
    alice.put(f"/api/conversations/{conversation['id']}", json={"title": "alice"})  # renamed: the question keeps it
    seen += str(conversation)
    seen += alice.post(f"/api/conversations/{conversation['id']}/messages", json={"content": "tokens=3"}).text
    seen += alice.get(f"/api/conversations/{conversation['id']}").text
    seen += alice.get("/api/conversations").text
    ids = set(UUID.findall(seen))
    assert conversation["id"] in ids and len(ids) >= 4  # conversation, user, two messages

    spec = httpx.get(f"{live_service}/docs/openapi.json").json()
    tried = 0
    for path, operations in spec["paths"].items():
        if "{conversation_id}" not in path:
            continue
        for method in operations:
            for some_id in ids:
                body = {"content": "x", "title": "x"} if method in ("post", "put") else None
                response = bob.request(method.upper(), path.format(conversation_id=some_id), json=body)
                assert response.status_code == 404, (method, path, some_id, response.text)
                tried += 1
    assert tried >= 7 * len(ids)
    assert bob.get("/api/conversations").json()["items"] == []
    assert alice.get(f"/api/conversations/{conversation['id']}").json()["title"] == "alice"
