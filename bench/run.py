"""Benchmark of the chat API, run as a PaaS runs it, next to the references it is judged against.

    .venv/bin/python -m bench.run              # the full run, on the working tree (about 3 minutes)
    .venv/bin/python -m bench.run --at HEAD    # the same, on a commit (exported with git archive)
    .venv/bin/python -m bench.run --quick      # shorter, for trying the benchmark itself
    .venv/bin/python -m bench.run --only stream-1000 --profile stream-1000   # profile one phase

Starts a database of its own (migrated with the Procfile's `release:` command), the stand-in
upstreams and the Procfile's `web:` command (WEB_CONCURRENCY=1) as real processes, measures:

  crud            wrk at 32 connections: GET /api/conversations (30 conversations) and
                  GET /api/conversations/{id} (20 messages), next to GET /api/health
                  (bench/scenarios/crud.py)
  single          a one-token answer, median time to `done`, through the service and direct
                  (bench/scenarios/single.py)
  stream-N        N concurrent answers of 50 tokens at 50 tokens/s, one conversation per user:
                  time to first token through the service and direct, server CPU per 1,000
                  relayed tokens, answers stored (bench/scenarios/stream.py)
  stream-redis-N  the same against a second `web:` service with REDIS_URL (a key prefix of the
                  run's own) and WEB_CONCURRENCY=2, and its CPU per token against stream-N's

and prints one table with every target next to its figure. It never asserts on timing; every
wait is bounded, and the processes, the database and the Redis keys are gone at the end, whatever
happened. The processes are in bench/processes.py, the CPU meter and the profiler in
bench/measure.py, the table in bench/report.py. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.measure import Meter, Profiler  # noqa: E402
from bench.processes import (  # noqa: E402
    OUT, ROOT, Server, count_log_errors, database, prioritise, raise_open_file_limit, redis_keys, source, stand_ins,
    web_service,
)
from bench.report import Report, Row  # noqa: E402
from bench.scenarios import crud, single, stream  # noqa: E402
from bench.scenarios.common import Bench  # noqa: E402

PHASE = re.compile(r"crud|single|stream-(?:redis-)?\d+")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the chat API (see bench/README.md).")
    parser.add_argument("--only", nargs="+", metavar="PHASE",
                        help="phases to run: crud, single, stream-N, stream-redis-N (default: crud single "
                             "stream-200 stream-redis-200 stream-1000 stream-redis-1000)")
    parser.add_argument("--streams", type=int, nargs="+", default=[200, 1000], help="concurrent answers per streaming run")
    parser.add_argument("--tokens", type=int, default=50, help="tokens per streamed answer")
    parser.add_argument("--delay-ms", type=int, default=20, help="milliseconds between tokens")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for CRUD")
    parser.add_argument("--no-wrk", action="store_true", help="CRUD load from the asyncio client even if wrk is installed")
    parser.add_argument("--crud-seconds", type=float, default=5)
    parser.add_argument("--crud-rounds", type=int, default=3)
    parser.add_argument("--warmup-seconds", type=float, default=2)
    parser.add_argument("--single-iterations", type=int, default=200)
    parser.add_argument("--single-warmup", type=int, default=20)
    parser.add_argument("--at", metavar="REF",
                        help="benchmark this commit (exported with git archive) instead of the working tree")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the servers (experiments, e.g. LOG_LEVEL=WARNING)")
    parser.add_argument("--db-params", metavar="QUERY",
                        help="appended to the servers' DATABASE_URL as ?QUERY (experiments, e.g. maxsize=20)")
    parser.add_argument("--profile", nargs="*", default=[], metavar="PHASE",
                        help="py-spy the worker during these phases: health, list, get, single, stream-N, "
                             "stream-redis-N (the busier of its two workers; figures of a profiled phase are "
                             "not comparable)")
    parser.add_argument("--profile-rate", type=int, default=100)
    parser.add_argument("--niceness", type=int, default=-10,
                        help="run the benchmark's processes (servers, stand-ins, wrk) at this niceness, "
                             "ahead of other work on a shared machine (default -10; needs root)")
    parser.add_argument("--no-priority", dest="niceness", action="store_const", const=None,
                        help="leave every process at its normal priority")
    parser.add_argument("--max-minutes", type=float, default=30, help="the whole run is stopped after this long")
    parser.add_argument("--quick", action="store_true", help="short run: 1 round x 2 s, 50 single pairs, 100/300 streams")
    args = parser.parse_args(argv)
    if args.quick:
        args.crud_seconds, args.crud_rounds, args.warmup_seconds = 2, 1, 1
        args.single_iterations, args.single_warmup = 50, 5
        if args.streams == [200, 1000]:
            args.streams = [100, 300]
    args.phases = args.only or ["crud", "single", *(f"stream{kind}-{n}" for n in args.streams for kind in ("", "-redis"))]
    return args


async def run_phase(phase: str, service: Bench, with_redis) -> None:
    if not PHASE.fullmatch(phase):
        raise ValueError(f"unknown phase {phase!r}")
    if phase == "crud":
        await crud.run(service)
    elif phase == "single":
        await single.run(service)
    elif phase.startswith("stream-redis-"):
        await stream.run_redis(await with_redis(), int(phase.rsplit("-", 1)[1]))
    else:
        await stream.run(service, int(phase.rsplit("-", 1)[1]))


async def run(args: argparse.Namespace, report: Report) -> None:
    raise_open_file_limit()
    if args.niceness is not None and not prioritise(os.getpid(), args.niceness):
        report.notes.append(f"could not set niceness {args.niceness} (not root?): figures at normal priority")
        args.niceness = None
    OUT.mkdir(parents=True, exist_ok=True)
    logs: list[Path] = []
    redis_used = []
    async with contextlib.AsyncExitStack() as stack:
        src = stack.enter_context(source(args.at))
        report.data["source"] = src.label
        db_url = await stack.enter_async_context(database(src))
        auth_url, inference_url, standin = stack.enter_context(stand_ins(args.niceness))
        profiler = Profiler(set(args.profile), args.profile_rate)
        service_db_url = f"{db_url}?{args.db_params}" if args.db_params else db_url
        extra_env = dict(item.split("=", 1) for item in args.server_env)

        async def start(log_name: str, ready: bool, redis_process=None, **service_env: str) -> Bench:
            logs.append(OUT / log_name)
            env = {**service_env, **extra_env}
            process, base_url = stack.enter_context(web_service(
                src, service_db_url, auth_url, inference_url, logs[-1], args.niceness, ready, **env))
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
            server = Server(process, base_url)
            return Bench(args, report, server, int(inference_url.rsplit(":", 1)[1]), standin, db_url, http, profiler,
                         Meter(server, standin, db_url.rsplit("/", 1)[1], redis_process))

        services = [await start("server.log", ready=False, WEB_CONCURRENCY="1")]

        async def with_redis() -> Bench:
            """The second service (REDIS_URL, WEB_CONCURRENCY=2), started for the first stream-redis phase."""
            if redis_used:
                if len(services) < 2:
                    raise RuntimeError("the service with Redis did not start (see the first stream-redis phase)")
                return services[1]
            keys = await stack.enter_async_context(redis_keys())  # left after the server using it is stopped
            redis_used.append(keys)
            services.append(await start("server-redis.log", ready=True, redis_process=keys.process,
                                        WEB_CONCURRENCY=str(stream.REDIS_WORKERS), REDIS_URL=keys.url,
                                        REDIS_KEY_PREFIX=keys.prefix))
            return services[1]

        for phase in args.phases:
            started = time.monotonic()
            print(f"... {phase}", file=sys.stderr, flush=True)
            try:
                await run_phase(phase, services[0], with_redis)
            except Exception as exc:  # a phase that breaks is reported, and the others still run
                traceback.print_exc()
                report.section(f"{phase} — not run to the end").append(Row(type(exc).__name__, verdict="not run"))
                report.notes.append(f"{phase} failed: {type(exc).__name__}: {str(exc)[:300]}")
            report.data.setdefault("phase_seconds", {})[phase] = round(time.monotonic() - started, 1)
            exited = [(b.server.process.returncode, log) for b, log in zip(services, logs) if b.server.process.poll() is not None]
            if exited:
                report.notes += [f"a server exited with {code} during {phase}; see {log.relative_to(ROOT)}"
                                 for code, log in exited]
                break
    report.data["server_log_errors"] = {log.name: count_log_errors(log) for log in logs}
    for keys in redis_used:
        report.data["redis_keys"] = {"prefix": keys.prefix, "removed": keys.removed}
        report.notes.append(f"Redis: {keys.removed:,} keys under {keys.prefix} removed at the end")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    started = time.time()

    async def guarded() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await asyncio.wait_for(run(args, report), args.max_minutes * 60)
        except (TimeoutError, asyncio.TimeoutError):
            report.notes.append(f"stopped after --max-minutes {args.max_minutes:g}")

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    status = 0
    try:
        runner(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.notes.append("interrupted")
        status = 130
    except Exception:
        traceback.print_exc()
        status = 1

    load = os.getloadavg()
    wrk_version = "wrk" if shutil.which("wrk") and not args.no_wrk else "asyncio load client"
    redis = any(phase.startswith("stream-redis-") for phase in args.phases)
    print()
    print(f"samosaChaat chat API benchmark — {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, WEB_CONCURRENCY=1"
          + (f" (stream-redis: {stream.REDIS_WORKERS}, with REDIS_URL)" if redis else "")
          + f", {wrk_version}, "
          f"niceness {'normal' if args.niceness is None else args.niceness}, load average {load[0]:.1f} at the end")
    print(f"service: {report.data.get('source', '?')}"
          + "".join(f", {item}" for item in args.server_env)
          + (f", DATABASE_URL ?{args.db_params}" if args.db_params else ""))
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(ROOT)
    print(f"command: {' '.join([str(python), '-m', 'bench.run', *(argv if argv is not None else sys.argv[1:])])}")
    print()
    print(report.render())
    for name, count in report.data.get("server_log_errors", {}).items():
        if count:
            report.notes.append(f"{count} error lines in bench/out/{name}")
    for note in report.notes:
        print(f"note: {note}")
    result_path = OUT / f"results-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    with contextlib.suppress(OSError):
        OUT.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "data": report.data,
                                           "table": report.render(), "notes": report.notes}, indent=1, default=str))
        print(f"raw figures: {result_path.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
