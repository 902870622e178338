"""The service started as a PaaS starts it, next to the stand-in upstreams, all as real processes.

The session database, migrated by the Procfile's `release:` command (tests/conftest.py
`database_url`), then the Procfile's `web:` command with PORT. One set of stand-ins and one server per module; every test uses users
(tokens) of its own, because the server outlives the test and `db` empties the tables after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from dev.processes import stand_ins, web_service

from ..conftest import empty_tables
from .api import Service, StoredRows

# The servers run with a local time zone that is not UTC: what they store and send must not depend on it.
SERVER_TZ = "IST-5:30"


@pytest.fixture(scope="module")
def upstream_urls(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The stand-ins; a module may set AUTH_DELAY_MS to make every token check take that long."""
    with stand_ins(auth_delay_ms=getattr(request.module, "AUTH_DELAY_MS", 0)) as urls:
        yield urls


@pytest.fixture(scope="module")
async def service(database_url: str, upstream_urls, tmp_path_factory) -> AsyncIterator[Service]:
    """The server a module's tests talk to."""
    log = tmp_path_factory.mktemp("web") / "web.log"
    with web_service(database_url, *upstream_urls, log, TZ=SERVER_TZ) as (process, base_url):
        yield Service(base_url, database_url, log, *upstream_urls, process)
    await empty_tables(database_url)  # once it stopped, and stored what it was answering


@pytest.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture
def stored(db) -> StoredRows:
    """What the service wrote to its database, read directly (not through the service)."""
    return StoredRows(db)
