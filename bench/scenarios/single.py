"""`single`: the service's overhead on a one-token answer, against the same request sent straight upstream.

Pairs alternate (service, direct; then direct, service), each answer in a fresh conversation, over
one keep-alive connection each; the figure is the time from writing the request to `done`.
"""

from __future__ import annotations

import asyncio
import statistics

from bench import client
from bench.measure import Meter
from bench.processes import HOST
from bench.report import Row, ms, percentile, verdict
from bench.scenarios.common import Bench, create_conversations, upstream_connections
from dev.standins import new_token

OVERHEAD_MAX = 0.002  # median through the service − median direct, in seconds
QUESTION_CPU_MAX = 0.0007  # server CPU per question up to its upstream call, in seconds


async def run(b: Bench) -> None:
    args = b.args
    rows = b.report.section(f"Single answer — one token, {args.single_iterations} alternating pairs, keep-alive")
    token = new_token()
    total = args.single_iterations + args.single_warmup
    conversation_ids = await create_conversations(b.http, [token] * total, parallel=8)
    prompt = "tokens=1"
    direct_request = b.direct_generate(prompt)
    conns = {"service": await client.connect(HOST, b.server.port), "direct": await client.connect(HOST, b.inference_port)}
    ports = {"service": b.server.port, "direct": b.inference_port}
    times: dict[str, list[float]] = {"service": [], "direct": []}
    failures = 0
    direct_reconnects = 0

    async def one(kind: str, request: bytes, counted: bool) -> None:
        nonlocal failures, direct_reconnects
        if conns[kind].lost:
            conns[kind] = await client.connect(HOST, ports[kind])
            direct_reconnects += kind == "direct"
        result = await asyncio.wait_for(conns[kind].send(request, close_on_done=False), 10)
        if result.done and result.error is None:
            if counted:
                times[kind].append(result.total)
        else:
            failures += 1

    upstream_before = await upstream_connections(b)
    before = b.meter.snapshot()
    async with b.profiler.around("single", b.server.worker_pid(), b.report):
        for i, cid in enumerate(conversation_ids):
            order = [("direct", direct_request), ("service", b.question(cid, token, prompt))]
            if i % 2:
                order.reverse()
            for kind, request in order:
                await one(kind, request, counted=i >= args.single_warmup)
    after = b.meter.snapshot()
    used = Meter.usage(before, after)
    b.report.notes.append(f"single: {Meter.describe(used)}")
    cpu_per_answer = (after["server"] - before["server"]) / len(conversation_ids)
    upstream_after = await upstream_connections(b)
    for conn in conns.values():
        conn.close()
    service, direct = statistics.median(times["service"]), statistics.median(times["direct"])
    overhead = service - direct
    b.report.data["single"] = {"service": times["service"], "direct": times["direct"], "failures": failures,
                               "cores_used": used, "server_cpu_s_per_answer": cpu_per_answer}
    rows.append(Row("median time to done", ms(service, 2), f"{ms(direct, 2)} direct"))
    rows.append(Row("p90 time to done", ms(percentile(times["service"], 90), 2),
                    f"{ms(percentile(times['direct'], 90), 2)} direct"))
    rows.append(Row("overhead (median service − median direct)", ms(overhead, 2), "",
                    f"≤ {ms(OVERHEAD_MAX, 0)}", verdict(overhead <= OVERHEAD_MAX)))
    # The whole answer (question, upstream call, relay, storing): an upper bound of the question's part.
    rows.append(Row("server CPU per one-token answer (all of it)", ms(cpu_per_answer, 2),
                    "bounds the question's part", f"≤ {ms(QUESTION_CPU_MAX, 1)}", verdict(cpu_per_answer <= QUESTION_CPU_MAX)))
    # The direct requests above share one keep-alive connection (re-opened only if closed).
    rows.append(Row("upstream connections opened by the service", f"{upstream_after - upstream_before - direct_reconnects:,}",
                    f"for {len(conversation_ids):,} answers"))
    if failures:
        rows.append(Row("failed answers", str(failures), "", "0", "MISSED"))
