"""What the scenarios share: the service under test, and the untimed set-up through its API."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

import asyncpg
import httpx
import psutil

from bench import client
from bench.measure import Meter, Profiler
from bench.processes import HOST, Server
from bench.report import Report
from dev.processes import INTERNAL_KEY

GENERATE_DEFAULTS = {"temperature": 0.8, "max_tokens": 1024, "top_k": 50}  # the service's defaults


@dataclass
class Bench:
    args: argparse.Namespace
    report: Report
    server: Server
    inference_port: int
    standin: psutil.Process
    db_url: str
    http: httpx.AsyncClient
    profiler: Profiler
    meter: Meter

    @property
    def host(self) -> str:
        return f"{HOST}:{self.server.port}"

    def question(self, conversation_id: str, token: str, content: str) -> bytes:
        """The raw request that asks `content` in a conversation (for the bench client)."""
        return client.post(f"/api/conversations/{conversation_id}/messages", self.host,
                           json.dumps({"content": content}).encode(), bearer(token))

    def direct_generate(self, prompt: str) -> bytes:
        """The raw `POST /generate` the service would send for a one-message conversation, for the inference stand-in."""
        return client.post(
            "/generate", f"{HOST}:{self.inference_port}",
            json.dumps({"messages": [{"role": "user", "content": prompt}], **GENERATE_DEFAULTS}).encode(),
            {"X-Internal-API-Key": INTERNAL_KEY},
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_conversations(http: httpx.AsyncClient, tokens: list[str], parallel: int = 32) -> list[str]:
    gate = asyncio.Semaphore(parallel)

    async def one(token: str) -> str:
        async with gate:
            response = await http.post("/api/conversations", json={}, headers=bearer(token))
            response.raise_for_status()
            return response.json()["id"]

    return list(await asyncio.wait_for(asyncio.gather(*(one(t) for t in tokens)), 120))


async def ask(http: httpx.AsyncClient, token: str, conversation_id: str, content: str) -> None:
    async with http.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": content},
                           headers=bearer(token)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"done"' in line:
                return
    raise RuntimeError("answer ended without done")


async def upstream_connections(b: Bench) -> int:
    """Connections the inference stand-in has accepted so far."""
    response = await b.http.get(f"http://{HOST}:{b.inference_port}/stats", headers={"X-Internal-API-Key": INTERNAL_KEY})
    return response.json()["connections"]["inference"]


async def stored_answers(db_url: str, conversation_ids: list[str], expected: int, wait: float = 5.0) -> int:
    """Assistant messages stored for these conversations (waits up to `wait` s for stragglers)."""
    connection = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + wait
        while True:
            count = await connection.fetchval(
                "SELECT count(*) FROM messages WHERE role = 'assistant' AND conversation_id = ANY($1::uuid[])",
                conversation_ids,
            )
            if count >= expected or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
