"""The upstream client alone: N concurrent `/generate` streams (50 tokens at 50 tokens/s) read
through `InferenceClient`, in this process, against the stand-in (dev/standins.py); CPU of this process per
event. Compares the service's transport with httpx's default one, so that the choice in
`samosachat_api/clients/_http.py` stays backed by figures.

    .venv/bin/python -m bench.upstream [--streams 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import httpx
import uvloop

from samosachat_api.clients import InferenceClient
from samosachat_api.clients._http import POOL_LIMITS, POOLS, TIMEOUT, PoolsTransport, upstream_transport

from dev.processes import INTERNAL_KEY, stand_ins

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


async def measure(url: str, transport: httpx.AsyncBaseTransport, streams: int, rounds: int) -> tuple[list[float], float]:
    """CPU µs per event of each round of `streams` concurrent answers, then per one-token answer."""
    async with httpx.AsyncClient(
        base_url=url, headers={"X-Internal-API-Key": INTERNAL_KEY}, timeout=TIMEOUT, transport=transport
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
    with stand_ins() as (_, inference_url):
        print(f"{args.streams} concurrent streams x 50 tokens, {args.rounds} rounds; then 100 one-token answers in turn")
        print(f"{'transport':48} {'CPU µs per event, by round':>28}   {'CPU µs per one-token answer':>28}")
        for name, transport in VARIANTS.items():
            per_event, single = await measure(inference_url, transport(), args.streams, args.rounds)
            print(f"{name:48} {' '.join(f'{v:8,.0f}' for v in per_event):>28}   {single:28,.0f}")
            time.sleep(1)


if __name__ == "__main__":
    uvloop.run(main())
