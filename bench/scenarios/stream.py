"""`stream-N` and `stream-redis-N`: N concurrent answers, one conversation per user, clients close at `done`.

Time to first token through the service and straight from the inference stand-in, server CPU per
1,000 relayed tokens (every process of the `web:` tree), answers stored (counted in the database).
`stream-N` runs against the one-worker service that keeps running answers in memory;
`stream-redis-N` against a second service with REDIS_URL and WEB_CONCURRENCY=2, and compares its
CPU per token with `stream-N`'s of the same run.
"""

from __future__ import annotations

import asyncio
import time

from bench import client
from bench.measure import Meter
from bench.processes import HOST
from bench.report import Row, ms, percentile, verdict
from bench.scenarios.common import Bench, create_conversations, stored_answers, upstream_connections
from dev.standins import new_token

# By phase, for a 2-core machine: one worker in memory, or REDIS_WORKERS workers with Redis.
TTFT_P99_MAX = {"stream-200": 0.300, "stream-redis-200": 0.150, "stream-redis-1000": 1.0}  # seconds
CPU_MS_PER_1000_TOKENS_MAX = {False: 80, True: 100}  # in memory, with Redis
REDIS_WORKERS = 2  # WEB_CONCURRENCY of the service with REDIS_URL
REDIS_CPU_RATIO_MAX = 1.3  # server CPU per token with Redis / in memory


async def run(b: Bench, n: int, phase: str | None = None, setting: str = "", warm_up: int | None = None) -> dict:
    """Measure and add the section; returns the figures (also kept in the report's data under `phase`).

    `warm_up` answers (default: up to 50) go through the service first, untimed.
    """
    args = b.args
    phase = phase or f"stream-{n}"
    tokens_per_answer, delay = args.tokens, args.delay_ms
    rows = b.report.section(
        f"Streaming{setting} — {n:,} concurrent answers x {tokens_per_answer} tokens at {1000 / delay:g} tokens/s, "
        "one conversation per user, clients close at done"
    )
    prompt = f"tokens={tokens_per_answer} delay={delay}"
    run_timeout = max(60.0, 20 * tokens_per_answer * delay / 1000)

    # Warm both paths (httpx pool, database pool, the stand-in), untimed.
    warm_users = [new_token() for _ in range(warm_up or min(50, n))]
    warm_ids = await create_conversations(b.http, warm_users)
    warm_conns = await client.connect_many(HOST, b.server.port, len(warm_ids))
    await client.run_all(warm_conns, [b.question(cid, tok, "warm-up tokens=5 delay=5")
                                      for cid, tok in zip(warm_ids, warm_users)], 60)

    users = [new_token() for _ in range(n)]
    conversation_ids = await create_conversations(b.http, users)  # also puts each token in the auth cache
    service_requests = [b.question(cid, tok, prompt) for cid, tok in zip(conversation_ids, users)]
    direct_request = b.direct_generate(prompt)

    # Reference: the same answers straight from the inference stand-in.
    conns = await client.connect_many(HOST, b.inference_port, n)
    direct_before = b.meter.snapshot()
    direct = await client.run_all(conns, [direct_request] * n, run_timeout)
    direct_used = Meter.usage(direct_before, b.meter.snapshot())
    await asyncio.sleep(1.0)

    # Through the service.
    conns = await client.connect_many(HOST, b.server.port, n)
    upstream_before = await upstream_connections(b)
    async with b.profiler.around(phase, b.server.worker_pid(), b.report):
        before = b.meter.snapshot()
        started = time.perf_counter()
        service = await client.run_all(conns, service_requests, run_timeout)
        elapsed = time.perf_counter() - started
        after = b.meter.snapshot()
        cpu = after["server"] - before["server"]
        used = Meter.usage(before, after)
    stored = await stored_answers(b.db_url, conversation_ids, n)
    upstream_after = await upstream_connections(b)
    opened = upstream_after - upstream_before

    def ttfts(results: list[client.Result]) -> list[float]:
        return [r.ttft for r in results if r.ttft is not None]

    relayed = sum(r.tokens for r in service)
    cpu_per_1000 = cpu * 1000 / (relayed / 1000) if relayed else None
    s_p50, s_p99 = percentile(ttfts(service), 50), percentile(ttfts(service), 99)
    d_p50, d_p99 = percentile(ttfts(direct), 50), percentile(ttfts(direct), 99)
    s_errors = [r.error for r in service if r.error or not r.done]
    d_errors = [r.error for r in direct if r.error or not r.done]
    data = b.report.data[phase] = {
        "service_ttft": ttfts(service), "direct_ttft": ttfts(direct), "server_cpu_s": cpu, "relayed_tokens": relayed,
        "cpu_ms_per_1000_tokens": cpu_per_1000,
        "elapsed_s": elapsed, "stored": stored, "service_errors": s_errors[:20], "direct_errors": d_errors[:20],
        "cores_used": used, "direct_cores_used": direct_used, "upstream_connections_opened": opened,
        "direct_total_p50": percentile([r.total for r in direct if r.total], 50),
        "service_total_p50": percentile([r.total for r in service if r.total], 50),
    }
    if "redis" in before:
        data["redis_cpu_s"] = after["redis"] - before["redis"]
    ttft_max = TTFT_P99_MAX.get(phase)
    cpu_max = CPU_MS_PER_1000_TOKENS_MAX["redis" in phase]
    rows.append(Row("time to first token p50", ms(s_p50), f"{ms(d_p50)} direct"))
    rows.append(Row("time to first token p99", ms(s_p99), f"{ms(d_p99)} direct",
                    f"≤ {ms(ttft_max, 0)}" if ttft_max else "",
                    verdict(s_p99 is not None and s_p99 <= ttft_max) if ttft_max else ""))
    rows.append(Row("server CPU per 1,000 relayed tokens",
                    "—" if cpu_per_1000 is None else f"{cpu_per_1000:,.0f} ms",
                    f"{cpu:.2f} s CPU / {relayed:,} tokens in {elapsed:.1f} s",
                    f"≤ {cpu_max} ms", verdict(cpu_per_1000 is not None and cpu_per_1000 <= cpu_max)))
    rows.append(Row("answers stored", f"{stored:,} / {n:,}", "", "all", verdict(stored == n)))
    rows.append(Row("upstream connections opened", f"{opened:,}", f"for {n:,} answers"))
    rows.append(Row("streams with an error or no done", f"{len(s_errors)}", f"{len(d_errors)} direct",
                    "0", verdict(not s_errors)))
    if s_errors:
        b.report.notes.append(f"{phase} errors (first): {sorted(set(map(str, s_errors)))[:3]}")
    b.report.notes.append(f"{phase} (through the service): {Meter.describe(used)}")
    b.report.notes.append(f"{phase} (direct): {Meter.describe(direct_used)}")
    return data


async def run_redis(b: Bench, n: int) -> None:
    """`stream-N` against the service with REDIS_URL and WEB_CONCURRENCY=2, then Redis's cost against `stream-N`'s.

    This service is started for its first phase, while the one-worker service has usually served
    the earlier phases: N answers of warm-up (not 50) fill both workers' database and upstream
    pools before the clock starts, so that their opening is not counted against Redis.
    """
    data = await run(b, n, f"stream-redis-{n}", f" with REDIS_URL, WEB_CONCURRENCY={REDIS_WORKERS}", warm_up=n)
    rows = b.report.sections[-1][1]
    with_redis = data["cpu_ms_per_1000_tokens"]
    if "redis_cpu_s" in data and data["relayed_tokens"]:
        redis_ms = data["redis_cpu_s"] * 1e6 / data["relayed_tokens"]
        rows.append(Row("redis-server CPU per 1,000 relayed tokens", f"{redis_ms:,.0f} ms",
                        f"{data['redis_cpu_s']:.2f} s CPU, the whole redis-server (shared)"))
    in_memory = b.report.data.get(f"stream-{n}", {}).get("cpu_ms_per_1000_tokens")
    target = f"≤ {REDIS_CPU_RATIO_MAX:g}×"
    if with_redis is None or in_memory is None:
        rows.append(Row("server CPU per token, Redis / in-memory", "—", f"needs stream-{n} earlier in the run", target))
        return
    ratio = with_redis / in_memory
    data["cpu_ratio_to_in_memory"] = ratio
    rows.append(Row("server CPU per token, Redis / in-memory", f"{ratio:.2f}×",
                    f"{with_redis:,.0f} ms / {in_memory:,.0f} ms (stream-{n}, this run)",
                    target, verdict(ratio <= REDIS_CPU_RATIO_MAX)))
