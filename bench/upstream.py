"""The upstream client alone: N concurrent `/generate` streams (50 tokens at 50 tokens/s) read
through `InferenceClient`, in this process, against the fast stand-in; CPU of this process per
event. Compares the service's transport with httpx's default one, so that the choice in
`samosachat_api/clients/_http.py` stays backed by figures.

    .venv/bin/python -m bench.upstream [--streams 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import subprocess
import sys
import time

import httpx
import uvloop

from samosachat_api.clients import InferenceClient
from samosachat_api.clients._http import POOL_LIMITS, POOLS, TIMEOUT, PoolsTransport, upstream_transport

from .processes import free_port

KEY = "bench-key"
VARIANTS = {
    "httpx default: one pool, anyio": lambda: httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
    ),
    f"{POOLS} pools, anyio": lambda: PoolsTransport([httpx.AsyncHTTPTransport(limits=POOL_LIMITS) for _ in range(POOLS)]),
    f"{POOLS} pools, asyncio streams (the service)": upstream_transport,
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(port: int, transport: httpx.AsyncBaseTransport, streams: int, rounds: int) -> tuple[list[float], float]:
    """CPU µs per event of each round of `streams` concurrent answers, then per one-token answer."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"X-Internal-API-Key": KEY}, timeout=TIMEOUT, transport=transport
    ) as http:
        client = InferenceClient(http)

        async def answer(prompt: str) -> int:
            return len([event async for event in client.generate({"messages": [{"role": "user", "content": prompt}]})])

        await asyncio.gather(*(answer("tokens=50 delay=20") for _ in range(streams)))  # warm-up
        per_event = []
        for _ in range(rounds):
            started = cpu_seconds()
            events = sum(await asyncio.gather(*(answer("tokens=50 delay=20") for _ in range(streams))))
            per_event.append((cpu_seconds() - started) / events * 1e6)
        started = cpu_seconds()
        for _ in range(100):  # after the bursts, one at a time
            await answer("tokens=1")
        return per_event, (cpu_seconds() - started) / 100 * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "bench.standin", "--auth-port", str(free_port()), "--inference-port", str(port),
               "--internal-key", KEY]
    standin = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        standin.stdout.readline()  # "stand-ins ready"
        print(f"{args.streams} concurrent streams x 50 tokens, {args.rounds} rounds; then 100 one-token answers in turn")
        print(f"{'transport':48} {'CPU µs per event, by round':>28}   {'CPU µs per one-token answer':>28}")
        for name, transport in VARIANTS.items():
            per_event, single = await measure(port, transport(), args.streams, args.rounds)
            print(f"{name:48} {' '.join(f'{v:8,.0f}' for v in per_event):>28}   {single:28,.0f}")
            time.sleep(1)
    finally:
        standin.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            standin.wait(10)


if __name__ == "__main__":
    uvloop.run(main())
