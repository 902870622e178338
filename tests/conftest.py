"""A database of its own per test run (migrated with the release command), and the app under test:
built once, and again only for tests that need other settings.

The servers are the machine's (TEST_POSTGRES_URL, TEST_REDIS_URL) when something answers there,
else servers from pip packages started for the session (dev/embedded.py). Each test process works
in a temporary directory of its own, removed when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Before anything makes a temporary file (samosachat_api.metrics does at import): the servers the
# tests start inherit it too. Each process's directly in the system's one, never nested in the one
# an xdist worker inherits: Sanic puts Unix sockets in it, whose paths may not exceed 107 bytes.
SYSTEM_TEMPORARY = os.environ.setdefault("SAMOSACHAT_SYSTEM_TMPDIR", tempfile.gettempdir())
TEMPORARY = tempfile.mkdtemp(prefix="samosachat-tests-", dir=SYSTEM_TEMPORARY)
os.environ["TMPDIR"] = tempfile.tempdir = TEMPORARY
# The metrics of this process's own: xdist workers inherit the controller's environment, and a
# directory shared would add up every process's requests.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-")
# The migrated database every test process copies its own from (see `database_url`); named by the
# session's first process, whose environment xdist's workers inherit.
TEMPLATE = os.environ.setdefault("SAMOSACHAT_TEST_TEMPLATE", f"samosachat_template_{uuid.uuid4().hex[:12]}")

import asyncpg
import httpx
import pytest
import respx
from sanic import Sanic
from tortoise import Tortoise

from dev import embedded
from dev.processes import release
from samosachat_api.app import create_app
from samosachat_api.settings import Settings

from .support.upstreams import AUTH_URL, INFERENCE_URL, Upstreams

ROOT = Path(__file__).resolve().parent.parent


# The longest files first (measured: `pytest -v --durations=0`), in this order rather than
# xdist's (most tests first: --no-loadscope-reorder): each of the 4 processes takes a file at a
# time, so they finish together instead of one running two slow files alone at the end.
LONGEST_FIRST = (
    "test_answers_redis.py", "test_shutdown.py", "e2e/test_try_it.py", "test_contract.py",
    "e2e/test_instances.py", "test_answers.py", "test_metrics.py", "e2e/test_process_life_cycle.py",
    "e2e/test_streams.py", "test_hardening.py", "test_bad_input.py", "test_streaming.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), len(rank)))


def pytest_unconfigure(config) -> None:
    if not hasattr(config, "workerinput"):  # the session's own process, not an xdist worker
        asyncio.run(drop_template())
    shutil.rmtree(TEMPORARY, ignore_errors=True)


# The machine's PostgreSQL server, without a database name.
MACHINE_POSTGRES = urlunsplit(urlsplit(os.environ.get("TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432"))._replace(path=""))


async def drop_template() -> None:
    """The template on the machine's server (an embedded one went with its test process)."""
    if embedded.reachable(MACHINE_POSTGRES):
        admin = await asyncpg.connect(f"{MACHINE_POSTGRES}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server's URL, without a database name."""
    if embedded.reachable(MACHINE_POSTGRES):
        yield MACHINE_POSTGRES
        return
    with embedded.postgres_server(Path(TEMPORARY) / "postgres", durable=False) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if embedded.reachable(url):
        yield url
        return
    with embedded.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(postgres_server: str) -> AsyncIterator[str]:
    """A database of this test process's own: a copy of the session's template, which the first
    process to get here makes with the Procfile's release command (`tortoise migrate` once per
    session, not once per process)."""
    name = f"samosachat_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{postgres_server}/postgres")
    try:
        await admin.execute("SELECT pg_advisory_lock(hashtext($1))", TEMPLATE)
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE):
            release(await embedded.create_database(postgres_server, TEMPLATE))
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        await admin.execute("SELECT pg_advisory_unlock(hashtext($1))", TEMPLATE)
        yield f"{postgres_server}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def empty_tables(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("TRUNCATE conversations, messages")
    finally:
        await connection.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for checking what the service stored; tables are emptied afterwards."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
        await empty_tables(database_url)


@pytest.fixture
def upstreams() -> AsyncIterator[Upstreams]:
    with respx.mock(assert_all_called=False) as router:
        stand_ins = Upstreams(router)
        stand_ins.install()
        yield stand_ins


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    """The environment the app is built from; tests may change it before using `client`."""
    return {
        "DATABASE_URL": database_url,
        "AUTH_SERVICE_URL": AUTH_URL,
        "INFERENCE_SERVICE_URL": INFERENCE_URL,
        "INTERNAL_API_KEY": "internal-secret-key",
        "ADMIN_EMAILS": "boss@example.com",
        "SYSTEM_PROMPT": "",  # the history as the tests wrote it; tests/test_web_client.py checks the prompt
        "LOG_LEVEL": "INFO",
    }


class LiveApp:
    """The app under test, served on a socket in the test loop. Built once and kept while tests
    ask for the same settings; rebuilt when a test needs others or left it draining."""

    def __init__(self) -> None:
        self.app: Sanic | None = None
        self._env: dict[str, str] = {}
        self._server = None

    async def serving(self, env: dict[str, str]) -> Sanic:
        if self.app is None or env != self._env or self.app.ctx.answers.draining:
            await self.stop()
            await self._start(dict(env))
        return self.app

    async def _start(self, env: dict[str, str]) -> None:
        Sanic.test_mode = True
        self.app = create_app(settings=Settings.from_env(env))
        self._env = env
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = await self.app.create_server(sock=sock, return_asyncio_server=True)
        await self._server.startup()
        await self._server.before_start()
        await self._server.after_start()
        await self._server.start_serving()
        self.app.ctx.test_port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self.app is None:
            return
        app, server, self.app, self._server = self.app, self._server, None, None
        try:
            await server.before_stop()
            server.close()
            await server.wait_closed()
            await server.after_stop()
        finally:
            Sanic._app_registry.pop(app.name, None)
            # Tortoise's global context, even when the app did not stop cleanly: else every
            # later app fails to start ("Global context fallback is already enabled").
            await Tortoise.close_connections()


@pytest.fixture(scope="session")
async def live_app() -> AsyncIterator[LiveApp]:
    live = LiveApp()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def app(env: dict[str, str], db, upstreams, live_app: LiveApp) -> Sanic:
    """The service built from `env`: shared with the tests before it when their settings match."""
    return await live_app.serving(env)


@pytest.fixture
async def client(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.test_port}", timeout=10) as http:
        yield http


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env_closed_port(env):
    """The database at a port nothing listens on."""
    env["DATABASE_URL"] = f"postgres://root@127.0.0.1:{closed_port()}/nowhere"


@pytest.fixture
def alice(upstreams: Upstreams) -> dict[str, str]:
    token, _ = upstreams.add_user(email="alice@example.com")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def bob(upstreams: Upstreams) -> dict[str, str]:
    token, _ = upstreams.add_user(email="bob@example.com")
    return {"Authorization": f"Bearer {token}"}


def log_lines(capsys) -> list[dict]:
    """The service's JSON log lines so far (loggers are cached, so structlog's capture_logs misses
    them). Put `capsys` first in a test's arguments, so that it is in place before the app's log handler."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


async def new_conversation(client: httpx.AsyncClient, headers: dict[str, str], **body: str) -> str:
    """Create a conversation through the API; its id."""
    response = await client.post("/api/conversations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> object:
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.02)


@pytest.fixture
async def redis_prefix(redis_server: str) -> AsyncIterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    from redis import asyncio as aioredis

    prefix = f"samosachat-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = aioredis.from_url(redis_server)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def pytest_make_parametrize_id(config, val, argname):
    """Readable test ids: a parametrized body or value as text, long ones shortened."""
    text = val.decode(errors="replace") if isinstance(val, bytes) else val if isinstance(val, str) else repr(val)
    text = text.encode("unicode_escape").decode()  # NUL and newlines stay visible and harmless
    return text if len(text) <= 40 else f"{text[:24]}…({len(text)} chars)"
