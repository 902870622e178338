"""A lean HTTP/1.1 client for timing Server-Sent Event answers (the streaming load generator).

httpx costs tens of microseconds per event; on a 2-core machine the client's CPU is taken from
the server under test. This client is an `asyncio.Protocol` on uvloop: it decodes chunked bodies,
splits events on blank lines and only looks for `"token"`, `"done"` and `"error"` in each event.

Connections are opened before the clock starts (a browser keeps one open to the API), then the
request is written and timed: `ttft` is the time to the first event with a token, `total` the
time to the `done` event. With `close_on_done` the client closes the connection as soon as it
sees `done`, as an impatient browser would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

now = time.perf_counter


@dataclass
class Result:
    status: int = 0
    ttft: float | None = None  # seconds from writing the request to the first token event
    total: float | None = None  # seconds from writing the request to the `done` event
    tokens: int = 0
    done: bool = False
    error: str | None = None  # an `error` event, a bad status, a broken connection or a timeout


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.exchange is not None:
            self.exchange.feed(data, now())

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self.lost = True
        if self.exchange is not None:
            self.exchange.broken("connection closed")

    def send(self, request: bytes, close_on_done: bool) -> asyncio.Future[Result]:
        """Write the request; the future resolves at `done` (or the response's end / failure)."""
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_result(Result(error="connection closed before the request"))
            return future
        self.exchange = _Exchange(self, future, close_on_done)
        self.exchange.started = now()
        self.transport.write(request)
        return future

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()


class _Exchange:
    """One request/response on a connection: the response parser and the timings."""

    def __init__(self, conn: Connection, future: asyncio.Future, close_on_done: bool) -> None:
        self.conn, self.future, self.close_on_done = conn, future, close_on_done
        self.result = Result()
        self.started = 0.0
        self.raw = bytearray()  # bytes not parsed yet (head, chunk framing)
        self.events = bytearray()  # decoded body not split into events yet
        self.head_done = False
        self.chunked = False
        self.sse = False
        self.remaining = 0  # Content-Length bodies
        self.chunk_left = -1  # bytes left in the current chunk (+2 for its CRLF); -1 = at a size line
        self.finished = False

    def feed(self, data: bytes, at: float) -> None:
        if self.finished:
            return
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.raw[:end]).decode("latin-1").lower()
            del self.raw[: end + 4]
            self.head_done = True
            self.result.status = int(head.split(" ", 2)[1])
            self.chunked = "transfer-encoding: chunked" in head
            self.sse = "text/event-stream" in head
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    self.remaining = int(line.split(":", 1)[1])
            if self.result.status != 200:
                self.result.error = f"status {self.result.status}"
        if self.chunked:
            self._dechunk(at)
        else:
            take = bytes(self.raw[: self.remaining])
            del self.raw[: self.remaining]
            self.remaining -= len(take)
            self._body(take, at)
            if self.remaining <= 0:
                self._end(at)

    def _dechunk(self, at: float) -> None:
        raw = self.raw
        while not self.finished:
            if self.chunk_left < 0:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    return
                size = int(bytes(raw[:line_end]).split(b";", 1)[0], 16)
                del raw[: line_end + 2]
                if size == 0:
                    self._end(at)
                    return
                self.chunk_left = size + 2
            if len(raw) < self.chunk_left:
                return
            payload = bytes(raw[: self.chunk_left - 2])
            del raw[: self.chunk_left]
            self.chunk_left = -1
            self._body(payload, at)

    def _body(self, payload: bytes, at: float) -> None:
        events = self.events
        events += payload
        if b"\r" in payload:
            events[:] = events.replace(b"\r\n", b"\n")
        while not self.finished:
            end = events.find(b"\n\n")
            if end < 0:
                return
            event = bytes(events[:end])
            del events[: end + 2]
            self._event(event, at)

    def _event(self, event: bytes, at: float) -> None:
        result = self.result
        if b'"token"' in event:
            result.tokens += 1
            if result.ttft is None:
                result.ttft = at - self.started
        elif b'"done"' in event:
            result.done = True
            result.total = at - self.started
            if self.close_on_done:
                self.finished = True
                self.conn.close()
                self._resolve()
        elif b'"error"' in event:
            result.error = event.decode(errors="replace").strip()

    def _end(self, at: float) -> None:
        if self.finished:
            return
        self.finished = True
        if self.result.total is None and self.result.status != 200:
            self.result.total = at - self.started
        if self.sse and not self.result.done and self.result.error is None:
            self.result.error = "response ended without done"
        if self.result.total is None:
            self.result.total = at - self.started
        self._resolve()

    def broken(self, why: str) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.result.done and self.result.error is None:
            self.result.error = why
        self._resolve()

    def _resolve(self) -> None:
        self.conn.exchange = None
        if not self.future.done():
            self.future.set_result(self.result)


async def connect(host: str, port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(Connection, host, port)
    return conn


async def connect_many(host: str, port: int, count: int, parallel: int = 64, timeout: float = 60) -> list[Connection]:
    """`count` open connections (at most `parallel` connecting at a time), within `timeout` seconds."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Connection:
        async with gate:
            return await asyncio.wait_for(connect(host, port), 10)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    try:
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except BaseException:
        for task in tasks:
            task.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
        raise


def post(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             "Accept: text/event-stream", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def run_all(connections: list[Connection], requests: list[bytes], timeout: float) -> list[Result]:
    """Write every request at once (one per connection), wait up to `timeout` s for every `done`."""
    futures = [conn.send(request, close_on_done=True) for conn, request in zip(connections, requests)]
    await asyncio.wait(futures, timeout=timeout)
    results = []
    for conn, future in zip(connections, futures):
        if future.done():
            results.append(future.result())
        else:
            future.cancel()
            results.append(Result(error=f"no done within {timeout:.0f} s"))
        conn.close()
    return results
