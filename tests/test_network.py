"""The upstream clients' network layer (clients/_network.py) over real sockets: respx, used
elsewhere, stands in above it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trustme

from samosachat_api.clients import InferenceClient, new_http_client
from samosachat_api.clients._network import AsyncioTransport
from samosachat_api.errors import UpstreamError, UpstreamUnavailable

from .conftest import closed_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    await reader.readexactly(length)


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, list[int]]]]]:
    """Starts a real HTTP server with the given connection handler; returns its URL and a list
    that counts the connections it accepted."""
    servers = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[str, list[int]]:
        accepted: list[int] = []

        async def counted(reader, writer):
            accepted.append(1)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        srv = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
        servers.append(srv)
        return f"{'https' if tls else 'http'}://127.0.0.1:{srv.sockets[0].getsockname()[1]}", accepted

    yield start
    for srv in servers:
        srv.close()


async def answer_tokens(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answers every request on the connection with two tokens and done."""
    while True:
        try:
            await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(STREAM_HEAD)
        for event in (b'{"token":"Hi","gpu":0}', b'{"token":" there","gpu":0}', b'{"done":true}'):
            writer.write(chunk(b"data: " + event + b"\n\n"))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")


async def tokens_of(client: InferenceClient) -> list[str]:
    return [event["token"] async for _, event in client.generate({"messages": []}) if "token" in event]


async def test_a_token_stream_arrives_and_its_connection_is_kept(server):
    url, accepted = await server(answer_tokens)
    http = new_http_client(url, "key")
    client = InferenceClient(http)
    try:
        for _ in range(3):
            assert await tokens_of(client) == ["Hi", " there"]
    finally:
        await http.aclose()
    assert len(accepted) == 3  # one per pool: requests take the pools in turn


async def test_a_connection_the_server_closed_while_idle_is_not_reused(server):
    async def one_answer_then_close(reader, writer):
        await read_request(reader)
        writer.write(STREAM_HEAD + chunk(b'data: {"done":true}\n\n') + b"0\r\n\r\n")
        await writer.drain()

    url, accepted = await server(one_answer_then_close)
    async with httpx.AsyncClient(base_url=url, transport=AsyncioTransport(httpx.Limits())) as http:
        client = InferenceClient(http)
        for _ in range(3):
            assert await tokens_of(client) == []
            await asyncio.sleep(0.05)
    assert len(accepted) == 3


async def test_nothing_listening_is_unavailable():
    http = new_http_client(f"http://127.0.0.1:{closed_port()}", "key")
    try:
        with pytest.raises(UpstreamUnavailable, match="unavailable"):
            await tokens_of(InferenceClient(http))
    finally:
        await http.aclose()


async def test_a_silent_upstream_times_out(server):
    async def silent(reader, writer):
        await read_request(reader)
        writer.write(STREAM_HEAD)
        await asyncio.sleep(5)

    url, _ = await server(silent)
    async with httpx.AsyncClient(base_url=url, transport=AsyncioTransport(httpx.Limits()), timeout=0.2) as http:
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            await tokens_of(InferenceClient(http))


async def test_a_stream_cut_off_midway_is_broken(server):
    async def cut_off(reader, writer):
        await read_request(reader)
        writer.write(STREAM_HEAD + chunk(b'data: {"token":"Hi","gpu":0}\n\n'))
        await writer.drain()
        writer.transport.abort()

    url, _ = await server(cut_off)
    async with httpx.AsyncClient(base_url=url, transport=AsyncioTransport(httpx.Limits())) as http:
        with pytest.raises(UpstreamError, match="broke off|ended before"):
            await tokens_of(InferenceClient(http))


async def test_an_https_upstream_is_verified_against_the_ca_bundle_httpx_would_use(server, monkeypatch, tmp_path):
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    url, _ = await server(answer_tokens, tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # an operator's private CA
    trusting = new_http_client(url, "key")
    monkeypatch.delenv("SSL_CERT_FILE")  # certifi's public CAs only
    doubting = new_http_client(url, "key")
    try:
        assert await tokens_of(InferenceClient(trusting)) == ["Hi", " there"]
        with pytest.raises(UpstreamUnavailable, match="unavailable") as refused:
            await tokens_of(InferenceClient(doubting))
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.__context__)
    finally:
        await trusting.aclose()
        await doubting.aclose()
