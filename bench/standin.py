"""A faster variant of the stand-in upstreams (dev/standins.py), for the benchmark only.

Same contract as the test stand-ins: the auth service accepts `user-<uuid>` (`admin-<uuid>`)
tokens on `POST /auth/validate` and counts calls (`GET /stats`); the inference service answers
`POST /generate` with an SSE token stream steered by words in the newest user message
(`tokens=N`, `delay=MS`, `split`, `drop=K`); `GET /models`, `POST /models/swap`; every request
must carry the internal key (`X-Internal-API-Key`) or gets `403`. Both ports serve every route.
One addition: `GET /stats` also tells the connections accepted on each port, so that the
benchmark can see whether the service reuses its upstream connections.

Why a variant: the test stand-ins run one coroutine per stream on the default asyncio loop, sleep
between tokens with `asyncio.sleep`, `json.dumps` every event and listen with a backlog of 100.
At 1,000 concurrent answers x 50 tokens/s that is ~50,000 events/s: the stand-in alone would want
about a core of the machine's two, and the SYN backlog drops connections. This one runs on uvloop
with `asyncio.Protocol` (no stream objects), a timer callback per stream instead of a coroutine,
pre-encoded events and a listen backlog of 4,096, so that the service under test gets the CPU.

    python -m bench.standin --auth-port 8001 --inference-port 8000 --internal-key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

TOKEN = re.compile(r"^(user|admin)-([0-9a-f-]{36})$")
STEER = re.compile(r"\b(tokens|delay|drop)=(\d+)")
SPLIT = re.compile(r"\bsplit\b")
REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event_chunks(event: dict, split: bool) -> bytes:
    """An SSE event exactly as the test stand-in writes it, chunked the same way."""
    if not split:
        return chunk(f"data: {json.dumps(event)}\n\n".encode())
    raw = f": comment\r\ndata: {json.dumps(event, ensure_ascii=False)}\r\n\r\n".encode()
    return b"".join(chunk(raw[start : start + 3]) for start in range(0, len(raw), 3))


_TOKEN_CACHE: dict[tuple[int, bool], bytes] = {}
DONE = {False: event_chunks({"done": True}, False), True: event_chunks({"done": True}, True)}


def token_event(i: int, split: bool) -> bytes:
    key = (i, split)
    data = _TOKEN_CACHE.get(key)
    if data is None:
        data = event_chunks({"token": f"tok{i}·" if split else f"tok{i} ", "gpu": 0}, split)
        if i < 10_000:
            _TOKEN_CACHE[key] = data
    return data


def json_response(status: int, body) -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


class State:
    def __init__(self, internal_key: str) -> None:
        self.internal_key = internal_key
        self.validate_calls = 0
        self.model = "default"
        self.connections = {"auth": 0, "inference": 0}  # accepted, per port (bench extra in GET /stats)


class Connection(asyncio.Protocol):
    def __init__(self, state: State, port: str) -> None:
        self.state = state
        state.connections[port] += 1
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.streaming = False  # a /generate answer is being written; later requests wait
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.process()

    def process(self) -> None:
        while not self.streaming and not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", 0))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.route(method, path, headers, body)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        write = self.transport.write
        if headers.get("x-internal-api-key") != self.state.internal_key:
            write(json_response(403, {"detail": "wrong internal key"}))
            return
        key = (method, path)
        if key == ("POST", "/generate"):
            self.generate(json.loads(body or b"null"))
        elif key == ("POST", "/auth/validate"):
            self.state.validate_calls += 1
            match = TOKEN.match(str((json.loads(body or b"null") or {}).get("token", "")))
            if not match:
                write(json_response(401, {"valid": False, "reason": "unknown token"}))
                return
            kind, user_id = match.groups()
            user = {"id": user_id, "email": f"{user_id}@standin.test", "is_admin": kind == "admin"}
            write(json_response(200, {"valid": True, "user": user, "claims": {"sub": user_id}}))
        elif key == ("GET", "/stats"):
            write(json_response(200, {"validate_calls": self.state.validate_calls, "connections": self.state.connections}))
        elif key == ("GET", "/models"):
            write(json_response(200, {"models": ["default", "large"], "current": self.state.model}))
        elif key == ("POST", "/models/swap"):
            self.state.model = json.loads(body)["model_tag"]
            write(json_response(200, {"swapped": True, "current": self.state.model}))
        else:
            write(json_response(404, {"detail": "not found"}))

    def generate(self, payload: dict) -> None:
        prompt = next((m["content"] for m in reversed(payload["messages"]) if m["role"] == "user"), "")
        steer = dict(STEER.findall(prompt))
        count, delay = int(steer.get("tokens", 5)), int(steer.get("delay", 0)) / 1000
        drop = int(steer["drop"]) if "drop" in steer else None
        split = SPLIT.search(prompt) is not None
        self.transport.write(STREAM_HEAD)
        self.streaming = True
        _Stream(self, count, delay, drop, split).next()


class _Stream:
    """One answer: a token every `delay` seconds (the first after one delay), then `done`."""

    __slots__ = ("conn", "count", "delay", "drop", "split", "sent", "loop")

    def __init__(self, conn: Connection, count: int, delay: float, drop: int | None, split: bool) -> None:
        self.conn, self.count, self.delay, self.drop, self.split = conn, count, delay, drop, split
        self.sent = 0
        self.loop = asyncio.get_running_loop()

    def next(self) -> None:
        if self.delay and self.sent < self.count and self.drop != self.sent:
            self.loop.call_later(self.delay, self.tick)
        else:
            self.tick()

    def tick(self) -> None:
        conn = self.conn
        if conn.closed:
            return
        write = conn.transport.write
        while True:
            if self.sent == self.count:
                write(DONE[self.split] + LAST_CHUNK)
                conn.streaming = False
                conn.process()
                return
            if self.drop == self.sent:
                conn.transport.abort()
                return
            write(token_event(self.sent, self.split))
            self.sent += 1
            if self.delay and self.sent < self.count and self.drop != self.sent:
                self.loop.call_later(self.delay, self.tick)
                return


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth-port", type=int, default=8001)
    parser.add_argument("--inference-port", type=int, default=8000)
    parser.add_argument("--internal-key", default="")
    args = parser.parse_args()
    state = State(args.internal_key)
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda name=name: Connection(state, name), "127.0.0.1", port, backlog=4096)
        for name, port in (("auth", args.auth_port), ("inference", args.inference_port))
    ]
    print(f"stand-ins ready: auth :{args.auth_port}, inference :{args.inference_port}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
