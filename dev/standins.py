"""Stand-in auth and inference services: real HTTP servers that speak the two upstream contracts.

Test and benchmark support, not part of the product. The auth stand-in accepts any token of the
form `user-<uuid>` (`admin-<uuid>` for an administrator); with `--auth-delay-ms` it takes that long
to answer each one, as a remote auth service would. `GET /stats` counts the token validations and
the connections each port accepted (whether the service reuses its connections). The inference
stand-in answers the newest user message; words in it steer the answer:

    tokens=N      answer with N tokens (default 5)
    delay=MS      wait MS milliseconds before each token (default 0)
    split         write every event in 3-byte pieces with CRLF line ends and comment lines
    drop=K        close the connection after K tokens, without `done`

The benchmark streams 1,000 answers at 50 tokens/s from it (50,000 events/s) on the cores that the
service under test needs too: so it runs on uvloop, encodes each token's event once, and listens
with a backlog of 4,096 (with the default 100, connections opened all at once are dropped).

    python -m dev.standins --auth-port 8001 --inference-port 8000 --internal-key KEY [--auth-delay-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import uuid
from dataclasses import dataclass

import uvloop

TOKEN = re.compile(r"^(user|admin)-([0-9a-f-]{36})$")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return Request(method, path, headers, body)


def response_head(status: int, content_type: str, length: int | None = None) -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def send_json(writer: asyncio.StreamWriter, status: int, body) -> None:
    data = json.dumps(body).encode()
    writer.write(response_head(status, "application/json", len(data)) + data)
    await writer.drain()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def send_chunks(writer: asyncio.StreamWriter, *chunks: bytes) -> None:
    for data in chunks:
        writer.write(data)
        await writer.drain()


def event_chunks(event: dict, split: bool) -> tuple[bytes, ...]:
    """An SSE event as chunks of the response body: one, or with `split` 3-byte pieces."""
    if not split:
        return (chunk(f"data: {json.dumps(event)}\n\n".encode()),)
    raw = f": comment\r\ndata: {json.dumps(event, ensure_ascii=False)}\r\n\r\n".encode()
    return tuple(chunk(raw[start : start + 3]) for start in range(0, len(raw), 3))


@functools.cache
def token_event(i: int, split: bool) -> tuple[bytes, ...]:
    """Token `i`'s event, encoded once for every answer."""
    return event_chunks({"token": f"tok{i}·" if split else f"tok{i} ", "gpu": 0}, split)


class StandIns:
    def __init__(self, internal_key: str, auth_delay: float = 0.0) -> None:
        self.internal_key = internal_key
        self.auth_delay = auth_delay  # seconds before each `POST /auth/validate` is answered
        self.validate_calls = 0
        self.connections = {"auth": 0, "inference": 0}  # accepted, by port
        self.model = "default"

    async def serve(self, port: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections[port] += 1
        try:
            while request := await read_request(reader):
                if request.headers.get("x-internal-api-key") != self.internal_key:
                    await send_json(writer, 403, {"detail": "wrong internal key"})
                    continue
                if not await self.route(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def route(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must close."""
        key = (request.method, request.path)
        if key == ("POST", "/auth/validate"):
            await self.validate(request, writer)
        elif key == ("GET", "/stats"):
            await send_json(writer, 200, {"validate_calls": self.validate_calls, "connections": self.connections})
        elif key == ("GET", "/models"):
            await send_json(writer, 200, {"models": ["default", "large"], "current": self.model})
        elif key == ("POST", "/models/swap"):
            self.model = request.json()["model_tag"]
            await send_json(writer, 200, {"swapped": True, "current": self.model})
        elif key == ("POST", "/generate"):
            return await self.generate(request, writer)
        else:
            await send_json(writer, 404, {"detail": "not found"})
        return True

    async def validate(self, request: Request, writer: asyncio.StreamWriter) -> None:
        self.validate_calls += 1
        if self.auth_delay:
            await asyncio.sleep(self.auth_delay)
        match = TOKEN.match(str(request.json().get("token", "")))
        if not match:
            await send_json(writer, 401, {"valid": False, "reason": "unknown token"})
            return
        kind, user_id = match.groups()
        user = {"id": user_id, "email": f"{user_id}@standin.test", "is_admin": kind == "admin"}
        await send_json(writer, 200, {"valid": True, "user": user, "claims": {"sub": user_id}})

    async def generate(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        prompt = next((m["content"] for m in reversed(request.json()["messages"]) if m["role"] == "user"), "")
        steer = dict(re.findall(r"\b(tokens|delay|drop)=(\d+)", prompt))
        count, delay, drop = int(steer.get("tokens", 5)), int(steer.get("delay", 0)) / 1000, steer.get("drop")
        split = re.search(r"\bsplit\b", prompt) is not None
        writer.write(response_head(200, "text/event-stream"))
        for i in range(count):
            if drop is not None and i == int(drop):
                writer.transport.abort()
                return False
            if delay:
                await asyncio.sleep(delay)
            await send_chunks(writer, *token_event(i, split))
        await send_chunks(writer, *event_chunks({"done": True}, split), chunk(b""))
        return True


def new_token(admin: bool = False) -> str:
    return f"{'admin' if admin else 'user'}-{uuid.uuid4()}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth-port", type=int, default=8001)
    parser.add_argument("--inference-port", type=int, default=8000)
    parser.add_argument("--internal-key", default="")
    parser.add_argument("--auth-delay-ms", type=int, default=0, help="answer each token validation this late")
    args = parser.parse_args()
    stand_ins = StandIns(args.internal_key, args.auth_delay_ms / 1000)
    auth, inference = [
        await asyncio.start_server(functools.partial(stand_ins.serve, name), "127.0.0.1", port, backlog=4096)
        for name, port in (("auth", args.auth_port), ("inference", args.inference_port))
    ]
    print(f"stand-ins ready: auth :{args.auth_port}, inference :{args.inference_port}", flush=True)
    async with auth, inference:
        await asyncio.gather(auth.serve_forever(), inference.serve_forever())


if __name__ == "__main__":
    uvloop.run(main())
