"""Liveness never touches the database; readiness follows it, down and back up, without a restart."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest


class TcpProxy:
    """A switchable TCP forwarder in front of PostgreSQL: off looks like a database that went away."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def on(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def off(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _pipe(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._writers |= {client_writer, server_writer}

        async def copy(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        await asyncio.gather(copy(client_reader, server_writer), copy(server_reader, client_writer))


@pytest.fixture
async def proxy(database_url):
    url = urlsplit(database_url)
    tcp_proxy = TcpProxy(url.hostname, url.port or 5432)
    await tcp_proxy.on()
    yield tcp_proxy


@pytest.fixture
def env_via_proxy(env, proxy, database_url):
    url = urlsplit(database_url)
    env["DATABASE_URL"] = f"postgres://{url.username}@127.0.0.1:{proxy.port}{url.path}"


async def test_ready_when_the_database_answers(client):
    response = await client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "ready": True, "checks": {"database": "ok"}}


async def test_not_ready_while_the_database_is_away_then_ready_again(env_via_proxy, proxy, client, alice):
    assert (await client.get("/api/health/ready")).status_code == 200
    await proxy.off()
    live = await client.get("/api/health")
    assert live.status_code == 200 and live.json()["ready"] is True
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "ready": False, "checks": {"database": "unavailable"}}
    listing = await client.get("/api/conversations", headers=alice)
    assert listing.status_code == 503
    assert listing.json() == {"detail": "Database unavailable"}
    await proxy.on()
    assert (await client.get("/api/health/ready")).status_code == 200
    assert (await client.get("/api/conversations", headers=alice)).status_code == 200


async def test_starts_and_answers_liveness_without_a_database(env_closed_port, client, alice):
    assert (await client.get("/api/health")).status_code == 200
    ready = await client.get("/api/health/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    response = await client.post("/api/conversations", json={}, headers=alice)
    assert response.status_code == 503


@pytest.fixture
def env_unresolvable_host(env):
    env["DATABASE_URL"] = "postgres://root@nonexistent.invalid:5432/nowhere"


async def test_unresolvable_database_host_is_503_not_500(env_unresolvable_host, client, alice):
    response = await client.get("/api/conversations", headers=alice)
    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable"}
