"""Benchmark of the chat API, run as a PaaS runs it, next to the references it is judged against.

    .venv/bin/python -m bench.run              # the full run, on the working tree (about 2 minutes)
    .venv/bin/python -m bench.run --at HEAD    # the same, on a commit (exported with git archive)
    .venv/bin/python -m bench.run --quick      # shorter, for trying the benchmark itself
    .venv/bin/python -m bench.run --only stream-1000 --profile stream-1000   # profile one phase

Starts a database of its own (migrated with the Procfile's `release:` command), the stand-in
upstreams and the Procfile's `web:` command (WEB_CONCURRENCY=1) as real processes, measures:

  crud         wrk at 32 connections: GET /api/conversations (30 conversations) and
               GET /api/conversations/{id} (20 messages), next to GET /api/health
  single       a one-token answer, median time to `done`, through the service and direct
  stream-N     N concurrent answers of 50 tokens at 50 tokens/s, one conversation per user:
               time to first token through the service and direct, server CPU per 1,000
               relayed tokens, answers stored

and prints one table with every target next to its figure. It never asserts on timing; every
wait is bounded, and the processes and the database are gone at the end, whatever happened.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402

from bench import client  # noqa: E402

OUT = ROOT / "bench" / "out"
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://root@127.0.0.1:5432")
HOST = "127.0.0.1"
INTERNAL_KEY = "bench-internal-key"

# The targets, for a 2-core machine and one worker.
LIST_RPS_MIN = 1500
TTFT_P99_MAX = {200: 0.150, 1000: 1.0}
CPU_MS_PER_1000_TOKENS_MAX = 80
OVERHEAD_MAX = 0.005

GENERATE_DEFAULTS = {"temperature": 0.8, "max_tokens": 1024, "top_k": 50}  # the service's defaults


def new_token() -> str:
    return f"user-{uuid.uuid4()}"  # what the auth stand-in accepts (dev/standins.py)


# ---------------------------------------------------------------------------------------------
# Results and the table


@dataclass
class Row:
    figure: str
    measured: str = ""
    reference: str = ""
    target: str = ""
    verdict: str = ""  # "met", "missed", "" (no target), or "not run"


@dataclass
class Report:
    sections: list[tuple[str, list[Row]]] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def section(self, title: str) -> list[Row]:
        rows: list[Row] = []
        self.sections.append((title, rows))
        return rows

    def render(self) -> str:
        headers = ("figure", "measured", "reference", "target", "")
        table = [headers]
        for title, rows in self.sections:
            table.append((title,))
            table += [(f"  {r.figure}", r.measured, r.reference, r.target, r.verdict) for r in rows]
            if not rows:
                table.append(("  (interrupted)", "", "", "", ""))
        widths = [max(len(line[i]) for line in table if len(line) > 1) for i in range(5)]
        out = []
        for line in table:
            if len(line) == 1:
                out.append(line[0])
            else:
                out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
            if line is headers:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def ms(seconds: float | None, digits: int = 1) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.{digits}f} ms"


def us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:,.0f} µs"


def per_core(cpu_per_request: float | None) -> str:
    return "—" if not cpu_per_request else f"{1 / cpu_per_request:,.0f}"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


# ---------------------------------------------------------------------------------------------
# Processes: database, stand-ins, server, profiler


def raise_open_file_limit() -> None:
    """1,000 streams are 2,000+ sockets in the server and the client; children inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (max(hard, 65536), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
            return
        except (ValueError, OSError):
            continue


NICENESS: int | None = None  # set from --niceness


def prioritise(pid: int, niceness: int | None) -> bool:
    """Run `pid` (and its session) at `niceness`: the process's own nice value, and its autogroup's.

    With kernel autogroups (sched_autogroup_enabled) every session is scheduled as one group, and a
    process's nice value only counts inside its session: the server and the stand-ins are sessions
    of their own, so their autogroups get the niceness too. PostgreSQL is left as it is.
    """
    if niceness is None:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Source:
    """Where the service's code comes from: the working tree, or a commit exported with `git archive`."""

    path: Path
    label: str

    def procfile(self, kind: str) -> str:
        for line in (self.path / "Procfile").read_text().splitlines():
            if line.startswith(f"{kind}:"):
                return line.split(":", 1)[1].strip()
        raise LookupError(f"no {kind}: line in the Procfile")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process run from this source (its package first on the path)."""
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
        if self.path != ROOT:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.path), extra.get("PYTHONPATH", "")) if p)
        return env


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def source(ref: str | None) -> Iterator[Source]:
    if ref is None:
        label = "working tree"
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            head = _git("rev-parse", "--short", "HEAD")
            dirty = _git("status", "--porcelain", "--", "samosachat_api", "migrations", "Procfile", "pyproject.toml")
            label = f"working tree at {head}{' + uncommitted changes' if dirty else ''}"
        yield Source(ROOT, label)
        return
    commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
    path = Path(tempfile.mkdtemp(prefix="samosachat-bench-src-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
        yield Source(path, f"commit {commit} (git archive, run with PYTHONPATH)")
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def database(src: Source):
    """A database of its own, migrated with the Procfile's `release:` command; dropped at the end."""
    name = f"samosachat_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_SERVER}/{name}"
        try:
            done = subprocess.run(src.procfile("release"), shell=True, cwd=src.path, env=src.env(DATABASE_URL=url),
                                  capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"release command failed: {(done.stdout + done.stderr)[-1500:]}")
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.contextmanager
def stand_ins(kind: str, src: Source) -> Iterator[tuple[str, str, psutil.Process]]:
    """fast: bench/standin.py (see its docstring for why); tests: dev/standins.py."""
    auth_port, inference_port = free_port(), free_port()
    module, cwd, env = ("bench.standin", ROOT, None) if kind == "fast" else ("dev.standins", src.path, src.env())
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--auth-port", str(auth_port), "--inference-port", str(inference_port),
         "--internal-key", INTERNAL_KEY],
        cwd=cwd, env=env, stdout=subprocess.PIPE, start_new_session=True,
    )
    prioritise(process.pid, NICENESS)
    try:
        _readline_within(process, 30)
        yield f"http://{HOST}:{auth_port}", f"http://{HOST}:{inference_port}", psutil.Process(process.pid)
    finally:
        _kill_group(process)


@contextlib.contextmanager
def web_service(src: Source, database_url: str, auth_url: str, inference_url: str, log_path: Path,
                extra_env: dict[str, str]):
    """The Procfile's `web:` command with PORT and WEB_CONCURRENCY=1, as a PaaS runs it."""
    port = free_port()
    env = src.env(PORT=str(port), WEB_CONCURRENCY="1", DATABASE_URL=database_url, AUTH_SERVICE_URL=auth_url,
                  INFERENCE_SERVICE_URL=inference_url, INTERNAL_API_KEY=INTERNAL_KEY, **extra_env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(src.procfile("web"), shell=True, cwd=src.path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    prioritise(process.pid, NICENESS)  # before Sanic starts its worker, which inherits it
    try:
        base_url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"the server did not start (exit status {process.poll()}); {log_path}:\n{tail}")
            try:
                if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process, base_url
    finally:
        _kill_group(process)


def _readline_within(process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    os.set_blocking(process.stdout.fileno(), False)
    data = b""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stand-ins exited with {process.returncode}")
        data += process.stdout.read() or b""
        if b"\n" in data:
            return data.decode()
        time.sleep(0.05)
    raise TimeoutError("stand-ins did not start")


def become_subreaper() -> None:
    """Adopt the orphans of our children (Sanic's processes once `sh` is gone), so that they are reaped."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group (the shell, Sanic's main process and its workers) and reap every one."""
    try:
        descendants = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    deadline = time.monotonic() + 5
    for pid in descendants:  # our children since become_subreaper(); not reaped by anyone else
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.02)


class Server:
    """The `web:` process tree: the shell, Sanic's main process, its worker."""

    def __init__(self, process: subprocess.Popen, base_url: str) -> None:
        self.root = psutil.Process(process.pid)
        self.base_url = base_url
        self.port = int(base_url.rsplit(":", 1)[1])

    def processes(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def worker_pid(self) -> int:
        """The busiest process of the tree: with one worker, the process that serves requests."""
        def cpu(proc: psutil.Process) -> float:
            try:
                times = proc.cpu_times()
                return times.user + times.system
            except psutil.NoSuchProcess:
                return -1
        return max(self.processes(), key=cpu).pid


def cpu_of(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    try:
        return sum(p.cpu_times().user + p.cpu_times().system for p in [proc, *proc.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0.0


class Meter:
    """CPU seconds used on the whole machine, and by this benchmark's own processes, between snapshots.

    The machine is shared: whatever else ran during a phase ("other load") is reported with it.
    """

    def __init__(self, server: Server, standin: psutil.Process | None, db_name: str) -> None:
        self.server, self.standin, self.db_name = server, standin, db_name

    def _postgres_backends(self) -> float:
        total = 0.0
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                if proc.info["name"] == "postgres" and self.db_name in " ".join(proc.info["cmdline"] or ()):
                    times = proc.cpu_times()
                    total += times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def snapshot(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        me = os.times()
        return {
            "wall": time.monotonic(),
            "busy": sum(getattr(machine, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")),
            "server": self.server.cpu_seconds(),
            "stand-in": cpu_of(self.standin),
            "client": me.user + me.system + me.children_user + me.children_system,  # wrk, py-spy: waited children
            "postgres": self._postgres_backends(),
        }

    @staticmethod
    def usage(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Cores used on average between the snapshots, by each and by everything else."""
        wall = max(after["wall"] - before["wall"], 1e-9)
        used = {key: (after[key] - before[key]) / wall for key in before if key != "wall"}
        used["other"] = max(0.0, used["busy"] - sum(v for k, v in used.items() if k != "busy"))
        return used

    @staticmethod
    def describe(used: dict[str, float]) -> str:
        parts = ", ".join(f"{key} {used[key]:.2f}" for key in ("server", "postgres", "stand-in", "client", "other"))
        return f"cores used: {parts} (machine busy {used['busy']:.2f} of {os.cpu_count()})"


class Profiler:
    """py-spy on the worker while one phase runs: a flame graph (SVG) and collapsed stacks (raw)."""

    def __init__(self, phases: set[str], rate: int) -> None:
        self.phases, self.rate = phases, rate
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    @contextlib.asynccontextmanager
    async def around(self, phase: str, pid: int, report: Report):
        if phase not in self.phases:
            yield
            return
        OUT.mkdir(parents=True, exist_ok=True)
        processes = []
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            path = OUT / f"profile-{phase}.{suffix}"
            processes.append((path, subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pid), "--rate", str(self.rate),
                 "--format", fmt, "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            )))
        await asyncio.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            for path, process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            for path, process in processes:
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    _kill_group(process)
                if path.exists():
                    report.notes.append(f"profile of {phase}: {path.relative_to(ROOT)}")
                else:
                    err = (process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                    report.notes.append(f"profile of {phase} failed: {err[-1] if err else process.returncode}")


# ---------------------------------------------------------------------------------------------
# Set-up through the API (untimed)


async def create_conversations(http: httpx.AsyncClient, tokens: list[str], parallel: int = 32) -> list[str]:
    gate = asyncio.Semaphore(parallel)

    async def one(token: str) -> str:
        async with gate:
            response = await http.post("/api/conversations", json={}, headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            return response.json()["id"]

    return list(await asyncio.wait_for(asyncio.gather(*(one(t) for t in tokens)), 120))


async def ask(http: httpx.AsyncClient, token: str, conversation_id: str, content: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("POST", f"/api/conversations/{conversation_id}/messages", json={"content": content},
                           headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"done"' in line:
                return
    raise RuntimeError("answer ended without done")


async def upstream_connections(b: "Bench") -> int | None:
    """Connections the inference stand-in has accepted so far (bench/standin.py only)."""
    try:
        response = await b.http.get(f"http://{HOST}:{b.inference_port}/stats", headers={"X-Internal-API-Key": INTERNAL_KEY})
        return response.json()["connections"]["inference"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


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


# ---------------------------------------------------------------------------------------------
# The phases


@dataclass
class Bench:
    args: argparse.Namespace
    report: Report
    server: Server
    inference_port: int
    standin: psutil.Process | None
    db_url: str
    http: httpx.AsyncClient
    profiler: Profiler
    meter: Meter

    @property
    def host(self) -> str:
        return f"{HOST}:{self.server.port}"


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


async def phase_crud(b: Bench) -> None:
    args = b.args
    rows = b.report.section(
        f"CRUD — {args.connections} connections, {args.crud_rounds} rounds x {args.crud_seconds:g} s each, median of rounds"
    )
    token = new_token()
    conversation_ids = await create_conversations(b.http, [token] * 30, parallel=1)
    busiest = conversation_ids[-1]
    for i in range(10):  # 10 questions and their answers: 20 messages
        await ask(b.http, token, busiest, f"question {i} tokens=5")
    auth = {"Authorization": f"Bearer {token}"}
    listed = (await b.http.get("/api/conversations", headers=auth)).json()
    opened = (await b.http.get(f"/api/conversations/{busiest}", headers=auth)).json()
    if len(listed["items"]) != 30 or len(opened["messages"]) != 20:
        raise RuntimeError(f"seeding gave {len(listed['items'])} conversations, {len(opened['messages'])} messages")

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
        headers = {"Authorization": f"Bearer {token}"} if token else {}
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
        target, ok = ("", None)
        if key == "list":
            target, ok = f"≥ {LIST_RPS_MIN:,} req/s", f["rps"] >= LIST_RPS_MIN
        rows.append(Row(f"{label} req/s", f"{f['rps']:,.0f}", share, target, verdict(ok)))
        rows.append(Row(f"{label} p99", ms(f["p99"]), f"{ms(health['p99'])} health"))
        rows.append(Row(f"{label} server CPU per request", us(f["cpu_per_request"]),
                        f"≈ {per_core(f['cpu_per_request'])} req/s on a whole core"))
    errors = sum(f["errors"] for f in figures.values())
    if errors:
        rows.append(Row("CRUD errors (non-2xx, socket errors, timeouts)", str(errors), "", "0", "MISSED"))


async def phase_single(b: Bench) -> None:
    args = b.args
    rows = b.report.section(f"Single answer — one token, {args.single_iterations} alternating pairs, keep-alive")
    token = new_token()
    total = args.single_iterations + args.single_warmup
    conversation_ids = await create_conversations(b.http, [token] * total, parallel=8)
    prompt = "tokens=1"
    direct_request = client.post(
        "/generate", f"{HOST}:{b.inference_port}",
        json.dumps({"messages": [{"role": "user", "content": prompt}], **GENERATE_DEFAULTS}).encode(),
        {"X-Internal-API-Key": INTERNAL_KEY},
    )
    body = json.dumps({"content": prompt}).encode()
    auth = {"Authorization": f"Bearer {token}"}
    conns = {"service": await client.connect(HOST, b.server.port), "direct": await client.connect(HOST, b.inference_port)}
    ports = {"service": b.server.port, "direct": b.inference_port}
    times: dict[str, list[float]] = {"service": [], "direct": []}
    failures = 0

    direct_reconnects = 0

    async def one(kind: str, request: bytes) -> None:
        nonlocal failures, direct_reconnects
        if conns[kind].lost:
            conns[kind] = await client.connect(HOST, ports[kind])
            direct_reconnects += kind == "direct"
        result = await asyncio.wait_for(conns[kind].send(request, close_on_done=False), 10)
        if result.done and result.error is None:
            if i >= args.single_warmup:
                times[kind].append(result.total)
        else:
            failures += 1

    upstream_before = await upstream_connections(b)
    before = b.meter.snapshot()
    async with b.profiler.around("single", b.server.worker_pid(), b.report):
        for i, cid in enumerate(conversation_ids):
            service_request = client.post(f"/api/conversations/{cid}/messages", b.host, body, auth)
            order = [("direct", direct_request), ("service", service_request)]
            if i % 2:
                order.reverse()
            for kind, request in order:
                await one(kind, request)
    used = Meter.usage(before, b.meter.snapshot())
    b.report.notes.append(f"single: {Meter.describe(used)}")
    upstream_after = await upstream_connections(b)
    for conn in conns.values():
        conn.close()
    service, direct = statistics.median(times["service"]), statistics.median(times["direct"])
    overhead = service - direct
    b.report.data["single"] = {"service": times["service"], "direct": times["direct"], "failures": failures,
                               "cores_used": used}
    rows.append(Row("median time to done", ms(service, 2), f"{ms(direct, 2)} direct"))
    rows.append(Row("p90 time to done", ms(percentile(times["service"], 90), 2),
                    f"{ms(percentile(times['direct'], 90), 2)} direct"))
    rows.append(Row("overhead (median service − median direct)", ms(overhead, 2), "",
                    f"≤ {ms(OVERHEAD_MAX, 0)}", verdict(overhead <= OVERHEAD_MAX)))
    if upstream_before is not None and upstream_after is not None:
        # The direct requests above share one keep-alive connection (re-opened only if closed).
        rows.append(Row("upstream connections opened by the service", f"{upstream_after - upstream_before - direct_reconnects:,}",
                        f"for {len(conversation_ids):,} answers"))
    if failures:
        rows.append(Row("failed answers", str(failures), "", "0", "MISSED"))


async def phase_stream(b: Bench, n: int) -> None:
    args = b.args
    tokens_per_answer, delay = args.tokens, args.delay_ms
    rows = b.report.section(
        f"Streaming — {n:,} concurrent answers x {tokens_per_answer} tokens at {1000 / delay:g} tokens/s, "
        "one conversation per user, clients close at done"
    )
    prompt = f"tokens={tokens_per_answer} delay={delay}"
    run_timeout = max(60.0, 20 * tokens_per_answer * delay / 1000)

    # Warm both paths (httpx pool, database pool, the stand-in), untimed.
    warm_users = [new_token() for _ in range(min(50, n))]
    warm_ids = await create_conversations(b.http, warm_users)
    warm_conns = await client.connect_many(HOST, b.server.port, len(warm_ids))
    await client.run_all(warm_conns, [
        client.post(f"/api/conversations/{cid}/messages", b.host, json.dumps({"content": "warm-up tokens=5 delay=5"}).encode(),
                    {"Authorization": f"Bearer {tok}"}) for cid, tok in zip(warm_ids, warm_users)
    ], 60)

    users = [new_token() for _ in range(n)]
    conversation_ids = await create_conversations(b.http, users)  # also puts each token in the auth cache
    body = json.dumps({"content": prompt}).encode()
    service_requests = [
        client.post(f"/api/conversations/{cid}/messages", b.host, body, {"Authorization": f"Bearer {tok}"})
        for cid, tok in zip(conversation_ids, users)
    ]
    direct_request = client.post(
        "/generate", f"{HOST}:{b.inference_port}",
        json.dumps({"messages": [{"role": "user", "content": prompt}], **GENERATE_DEFAULTS}).encode(),
        {"X-Internal-API-Key": INTERNAL_KEY},
    )

    # Reference: the same answers straight from the inference stand-in.
    conns = await client.connect_many(HOST, b.inference_port, n)
    direct_before = b.meter.snapshot()
    direct = await client.run_all(conns, [direct_request] * n, run_timeout)
    direct_used = Meter.usage(direct_before, b.meter.snapshot())
    await asyncio.sleep(1.0)

    # Through the service.
    conns = await client.connect_many(HOST, b.server.port, n)
    upstream_before = await upstream_connections(b)
    async with b.profiler.around(f"stream-{n}", b.server.worker_pid(), b.report):
        before = b.meter.snapshot()
        started = time.perf_counter()
        service = await client.run_all(conns, service_requests, run_timeout)
        elapsed = time.perf_counter() - started
        after = b.meter.snapshot()
        cpu = after["server"] - before["server"]
        used = Meter.usage(before, after)
    stored = await stored_answers(b.db_url, conversation_ids, n)
    upstream_after = await upstream_connections(b)
    opened = None if upstream_before is None or upstream_after is None else upstream_after - upstream_before

    def ttfts(results: list[client.Result]) -> list[float]:
        return [r.ttft for r in results if r.ttft is not None]

    relayed = sum(r.tokens for r in service)
    cpu_per_1000 = cpu * 1000 / (relayed / 1000) if relayed else None
    s_p50, s_p99 = percentile(ttfts(service), 50), percentile(ttfts(service), 99)
    d_p50, d_p99 = percentile(ttfts(direct), 50), percentile(ttfts(direct), 99)
    s_errors = [r.error for r in service if r.error or not r.done]
    d_errors = [r.error for r in direct if r.error or not r.done]
    b.report.data[f"stream-{n}"] = {
        "service_ttft": ttfts(service), "direct_ttft": ttfts(direct), "server_cpu_s": cpu, "relayed_tokens": relayed,
        "elapsed_s": elapsed, "stored": stored, "service_errors": s_errors[:20], "direct_errors": d_errors[:20],
        "cores_used": used, "direct_cores_used": direct_used, "upstream_connections_opened": opened,
        "direct_total_p50": percentile([r.total for r in direct if r.total], 50),
        "service_total_p50": percentile([r.total for r in service if r.total], 50),
    }
    ttft_max = TTFT_P99_MAX.get(n)
    rows.append(Row("time to first token p50", ms(s_p50), f"{ms(d_p50)} direct"))
    rows.append(Row("time to first token p99", ms(s_p99), f"{ms(d_p99)} direct",
                    f"≤ {ms(ttft_max, 0)}" if ttft_max else "",
                    verdict(s_p99 is not None and s_p99 <= ttft_max) if ttft_max else ""))
    rows.append(Row("server CPU per 1,000 relayed tokens",
                    "—" if cpu_per_1000 is None else f"{cpu_per_1000:,.0f} ms",
                    f"{cpu:.2f} s CPU / {relayed:,} tokens in {elapsed:.1f} s",
                    f"≤ {CPU_MS_PER_1000_TOKENS_MAX} ms",
                    verdict(cpu_per_1000 is not None and cpu_per_1000 <= CPU_MS_PER_1000_TOKENS_MAX)))
    rows.append(Row("answers stored", f"{stored:,} / {n:,}", "", "all", verdict(stored == n)))
    if opened is not None:
        rows.append(Row("upstream connections opened", f"{opened:,}", f"for {n:,} answers"))
    rows.append(Row("streams with an error or no done", f"{len(s_errors)}", f"{len(d_errors)} direct",
                    "0", verdict(not s_errors)))
    if s_errors:
        b.report.notes.append(f"stream-{n} errors (first): {sorted(set(map(str, s_errors)))[:3]}")
    b.report.notes.append(f"stream-{n} (through the service): {Meter.describe(used)}")
    b.report.notes.append(f"stream-{n} (direct): {Meter.describe(direct_used)}")


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the chat API (see bench/README.md).")
    parser.add_argument("--only", nargs="+", metavar="PHASE",
                        help="phases to run: crud, single, stream-N (default: crud single stream-200 stream-1000)")
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
                        help="an extra environment variable for the server (experiments, e.g. LOG_LEVEL=WARNING)")
    parser.add_argument("--db-params", metavar="QUERY",
                        help="appended to the server's DATABASE_URL as ?QUERY (experiments, e.g. maxsize=20)")
    parser.add_argument("--standins", choices=["fast", "tests"], default="fast",
                        help="fast: bench/standin.py (default); tests: dev/standins.py")
    parser.add_argument("--profile", nargs="*", default=[], metavar="PHASE",
                        help="py-spy the worker during these phases: health, list, get, single, stream-N "
                             "(figures of a profiled phase are not comparable)")
    parser.add_argument("--profile-rate", type=int, default=100)
    parser.add_argument("--niceness", type=int, default=-10,
                        help="run the benchmark's processes (server, stand-ins, wrk) at this niceness, "
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
    args.phases = args.only or ["crud", "single", *(f"stream-{n}" for n in args.streams)]
    return args


async def run(args: argparse.Namespace, report: Report) -> None:
    raise_open_file_limit()
    become_subreaper()
    global NICENESS
    if args.niceness is not None and not prioritise(os.getpid(), args.niceness):
        report.notes.append(f"could not set niceness {args.niceness} (not root?): figures at normal priority")
        args.niceness = None
    NICENESS = args.niceness
    OUT.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        src = stack.enter_context(source(args.at))
        report.data["source"] = src.label
        db_url = await stack.enter_async_context(database(src))
        auth_url, inference_url, standin = stack.enter_context(stand_ins(args.standins, src))
        server_db_url = f"{db_url}?{args.db_params}" if args.db_params else db_url
        extra_env = dict(item.split("=", 1) for item in args.server_env)
        process, base_url = stack.enter_context(
            web_service(src, server_db_url, auth_url, inference_url, OUT / "server.log", extra_env))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
        server = Server(process, base_url)
        bench = Bench(args, report, server, int(inference_url.rsplit(":", 1)[1]), standin, db_url, http,
                      Profiler(set(args.profile), args.profile_rate), Meter(server, standin, db_url.rsplit("/", 1)[1]))
        for phase in args.phases:
            started = time.monotonic()
            print(f"... {phase}", file=sys.stderr, flush=True)
            try:
                if phase == "crud":
                    await phase_crud(bench)
                elif phase == "single":
                    await phase_single(bench)
                elif phase.startswith("stream-"):
                    await phase_stream(bench, int(phase.split("-", 1)[1]))
                else:
                    raise ValueError(f"unknown phase {phase!r}")
            except Exception as exc:  # a phase that breaks is reported, and the others still run
                traceback.print_exc()
                report.section(f"{phase} — not run to the end").append(Row(type(exc).__name__, verdict="not run"))
                report.notes.append(f"{phase} failed: {type(exc).__name__}: {str(exc)[:300]}")
            report.data.setdefault("phase_seconds", {})[phase] = round(time.monotonic() - started, 1)
            if process.poll() is not None:
                report.notes.append(f"the server exited with {process.returncode} during {phase}; see bench/out/server.log")
                break
        report.data["server_log_errors"] = count_log_errors(OUT / "server.log")


def count_log_errors(path: Path) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, "rb") as log:
        for line in log:
            if b'"level": "error"' in line or b'"level": "critical"' in line or b'"level": "exception"' in line:
                count += 1
    return count


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
    print()
    print(f"samosaChaat chat API benchmark — {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, WEB_CONCURRENCY=1, "
          f"{args.standins} stand-ins, {wrk_version}, "
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
    if report.data.get("server_log_errors"):
        report.notes.append(f"{report.data['server_log_errors']} error lines in bench/out/server.log")
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
