"""`crud`: requests/s, p99 and server CPU per request of the two read endpoints, next to GET /api/health.

wrk at 32 connections (bench/wrk/report.lua prints its figures as JSON), or the bench client when
wrk is not installed. Warm-up, then interleaved rounds; the table shows the medians of the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import time

from bench import client
from bench.measure import Meter
from bench.processes import HOST, ROOT
from bench.report import Row, ms, per_core, percentile, us, verdict
from bench.scenarios.common import Bench, ask, bearer, create_conversations
from dev.standins import new_token

READ_RPS_MIN = 2500  # GET /api/conversations and /{id}, on a 2-core machine with one worker
READ_SHARE_OF_HEALTH_MIN = 0.25  # the same, as a share of GET /api/health in the same run


async def wrk(url: str, seconds: float, connections: int, token: str | None) -> dict:
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
               "-s", str(ROOT / "bench" / "wrk" / "report.lua"), url]
    env = {**os.environ, "BENCH_TOKEN": token or ""}
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)  # in this session: same priority
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds + 30)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    match = re.search(r"BENCH_JSON (\{.*\})", out.decode())
    if not match:
        raise RuntimeError(f"wrk printed no figures: {out.decode()[-500:]} {err.decode()[-500:]}")
    figures = json.loads(match.group(1))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts"))
    return figures


async def asyncio_load(port: int, request: bytes, seconds: float, connections: int) -> dict:
    """Closed-loop keep-alive GETs with the bench client: the fallback when wrk is not installed."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def loop_on(conn: client.Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            result = await asyncio.wait_for(conn.send(request, close_on_done=False), 10)
            if result.status != 200:
                errors += 1
            if result.total is not None:
                latencies.append(result.total)
            if conn.lost:
                conn = await client.connect(HOST, port)
        conn.close()

    conns = await client.connect_many(HOST, port, connections)
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(loop_on(c) for c in conns)), seconds + 30)
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "p50_us": percentile(latencies, 50) * 1e6, "p99_us": percentile(latencies, 99) * 1e6}


async def seed(b: Bench) -> tuple[str, str]:
    """One user with 30 conversations, the last with 20 messages (made through the API): (token, that one's id)."""
    token = new_token()
    conversation_ids = await create_conversations(b.http, [token] * 30, parallel=1)
    busiest = conversation_ids[-1]
    for i in range(10):  # 10 questions and their answers: 20 messages
        await ask(b.http, token, busiest, f"question {i} tokens=5")
    listed = (await b.http.get("/api/conversations", headers=bearer(token))).json()
    opened = (await b.http.get(f"/api/conversations/{busiest}", headers=bearer(token))).json()
    if len(listed["items"]) != 30 or len(opened["messages"]) != 20:
        raise RuntimeError(f"seeding gave {len(listed['items'])} conversations, {len(opened['messages'])} messages")
    return token, busiest


async def run(b: Bench) -> None:
    args = b.args
    rows = b.report.section(
        f"CRUD — {args.connections} connections, {args.crud_rounds} rounds x {args.crud_seconds:g} s each, median of rounds"
    )
    token, busiest = await seed(b)
    targets = [
        ("health", "GET /api/health", "/api/health", None),
        ("list", "GET /api/conversations (30)", "/api/conversations", token),
        ("get", "GET /api/conversations/{id} (20 messages)", f"/api/conversations/{busiest}", token),
    ]
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    if not use_wrk:
        b.report.notes.append("CRUD load came from the asyncio client (wrk not installed, or --no-wrk), "
                              "whose CPU competes with the server's more than wrk's would")

    async def load(path: str, token: str | None, seconds: float) -> dict:
        if use_wrk:
            return await wrk(f"{b.server.base_url}{path}", seconds, args.connections, token)
        headers = bearer(token) if token else {}
        return await asyncio_load(b.server.port, client.get(path, b.host, headers), seconds, args.connections)

    for _, _, path, tok in targets:  # warm-up
        await load(path, tok, args.warmup_seconds)
    runs: dict[str, list[dict]] = {key: [] for key, *_ in targets}
    before = b.meter.snapshot()
    for round_number in range(args.crud_rounds):
        for key, _, path, tok in targets:  # interleaved, so that noise falls on every endpoint alike
            last = round_number == args.crud_rounds - 1
            async with b.profiler.around(key, b.server.worker_pid(), b.report) if last else contextlib.nullcontext():
                run_before = b.meter.snapshot()
                figures = await load(path, tok, args.crud_seconds)
                run_after = b.meter.snapshot()
            figures["server_cpu_s"] = run_after["server"] - run_before["server"]
            figures["cores_used"] = Meter.usage(run_before, run_after)
            runs[key].append(figures)
    used = Meter.usage(before, b.meter.snapshot())
    b.report.notes.append(f"crud (client = {'wrk' if use_wrk else 'asyncio client'}): {Meter.describe(used)}")

    def summary(key: str) -> dict:
        requests = sum(r["requests"] for r in runs[key])
        return {
            "cpu_per_request": sum(r["server_cpu_s"] for r in runs[key]) / requests if requests else None,
            "rps": statistics.median(r["rps"] for r in runs[key]),
            "p99": statistics.median(r["p99_us"] for r in runs[key]) / 1e6,
            "errors": sum(r["errors"] for r in runs[key]),
            "rounds": runs[key],
        }

    figures = {key: summary(key) for key, *_ in targets}
    b.report.data["crud"] = {**figures, "cores_used": used}
    health = figures["health"]
    rows.append(Row("GET /api/health req/s · p99 (framework ceiling)",
                    f"{health['rps']:,.0f} · {ms(health['p99'])}", "", "", ""))
    rows.append(Row("GET /api/health server CPU per request", us(health["cpu_per_request"]),
                    f"≈ {per_core(health['cpu_per_request'])} req/s on a whole core"))
    for key, label, *_ in targets[1:]:
        f = figures[key]
        share = f"{f['rps'] / health['rps']:.0%} of health" if health["rps"] else ""
        target = f"≥ {READ_RPS_MIN:,} req/s, ≥ {READ_SHARE_OF_HEALTH_MIN:.0%}"
        ok = f["rps"] >= READ_RPS_MIN and health["rps"] and f["rps"] / health["rps"] >= READ_SHARE_OF_HEALTH_MIN
        rows.append(Row(f"{label} req/s", f"{f['rps']:,.0f}", share, target, verdict(ok)))
        rows.append(Row(f"{label} p99", ms(f["p99"]), f"{ms(health['p99'])} health"))
        rows.append(Row(f"{label} server CPU per request", us(f["cpu_per_request"]),
                        f"≈ {per_core(f['cpu_per_request'])} req/s on a whole core"))
    errors = sum(f["errors"] for f in figures.values())
    if errors:
        rows.append(Row("CRUD errors (non-2xx, socket errors, timeouts)", str(errors), "", "0", "MISSED"))
