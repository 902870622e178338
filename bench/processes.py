"""The benchmark's processes: the service's source, its database, Redis keys, the stand-ins and the `web:` service.

The stand-ins and the `web:` service are started by dev/processes.py, as for the end-to-end tests.
Each is a context manager that leaves nothing behind (processes stopped, database dropped, Redis
keys deleted), whatever happened in between.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil
import redis.asyncio

from dev import processes
from dev.processes import ROOT

OUT = ROOT / "bench" / "out"
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://root@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HOST = "127.0.0.1"


def raise_open_file_limit() -> None:
    """1,000 streams are 2,000+ sockets in the server and the client; children inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (max(hard, 65536), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
            return
        except (ValueError, OSError):
            continue


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


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of these processes (one that is gone, or not ours to read, counts 0)."""
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process and its descendants (just the process if they cannot be listed any more)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [proc]


# ---------------------------------------------------------------------------------------------
# The service's source, its database and its Redis keys


@dataclass
class Source:
    """Where the service's code comes from: the working tree, or a commit exported with `git archive`."""

    path: Path
    label: str


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


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """PG_SERVER if something answers there, else an embedded PostgreSQL of the run's own, as the
    tests choose (dev/embedded.py, which needs the `dev` extra)."""
    try:
        from dev import embedded
    except ImportError:  # the `bench` extra alone: PG_SERVER it is
        yield PG_SERVER
        return
    if embedded.reachable(PG_SERVER):
        yield PG_SERVER
        return
    with tempfile.TemporaryDirectory(prefix="samosachat-bench-postgres-") as data_dir:
        with embedded.postgres_server(Path(data_dir)) as server_url:
            yield server_url


@contextlib.asynccontextmanager
async def database(src: Source) -> AsyncIterator[str]:
    """A database of its own, migrated with the Procfile's `release:` command; dropped at the end."""
    name = f"samosachat_bench_{uuid.uuid4().hex[:12]}"
    with postgres_server() as server_url:
        admin = await asyncpg.connect(f"{server_url}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"{server_url}/{name}"
                release(url, src)
                yield url
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def release(database_url: str, src: Source) -> None:
    try:
        processes.release(database_url, src.path)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"release command failed: {(exc.stdout + exc.stderr)[-1500:]}") from None


@dataclass
class RedisKeys:
    """A key prefix of the run's own on the Redis server, and that server's process if it runs here."""

    url: str
    prefix: str
    process: psutil.Process | None
    removed: int = 0


@contextlib.asynccontextmanager
async def redis_keys(url: str = REDIS_URL) -> AsyncIterator[RedisKeys]:
    """A key prefix of the run's own; every key under it is deleted at the end (after the servers using it)."""
    keys = RedisKeys(url, f"samosachat_bench_{uuid.uuid4().hex[:12]}:", None)
    connection = redis.asyncio.from_url(url)
    try:
        info = await connection.info("server")  # fails early, and clearly, if Redis is not there
        if connection.connection_pool.connection_kwargs.get("host") in (HOST, "localhost"):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(int(info["process_id"]))
                keys.process = proc if proc.name().startswith("redis") else None
        try:
            yield keys
        finally:
            names = [name async for name in connection.scan_iter(match=f"{keys.prefix}*", count=1000)]
            for start in range(0, len(names), 1000):
                keys.removed += await connection.delete(*names[start:start + 1000])
    finally:
        await connection.aclose()


# ---------------------------------------------------------------------------------------------
# The stand-ins and the `web:` service


@contextlib.contextmanager
def stand_ins(niceness: int | None) -> Iterator[tuple[str, str, psutil.Process]]:
    """dev/standins.py, from this working tree whatever the source: every commit meets the same stand-ins."""
    with processes.stand_ins_process() as (process, auth_url, inference_url):
        prioritise(process.pid, niceness)
        yield auth_url, inference_url, psutil.Process(process.pid)


@contextlib.contextmanager
def web_service(src: Source, database_url: str, auth_url: str, inference_url: str, log_path: Path,
                niceness: int | None, ready: bool = False, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """The Procfile's `web:` command from `src` with PORT and `env` (WEB_CONCURRENCY...), as a PaaS runs it;
    `ready`: once its readiness route answers 200 too (the database, and Redis when it uses it)."""
    with processes.web_service(database_url, auth_url, inference_url, log_path, root=src.path, **env) as (process, url):
        # Its processes have the benchmark's own niceness already (inherited); this gives it to their session.
        prioritise(process.pid, niceness)
        if ready:
            wait_until_ready(url)
        yield process, url


def wait_until_ready(base_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base_url}/api/health/ready", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base_url}/api/health/ready did not answer 200")
        time.sleep(0.1)


def count_log_errors(path: Path) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, "rb") as log:
        for line in log:
            if b'"level": "error"' in line or b'"level": "critical"' in line or b'"level": "exception"' in line:
                count += 1
    return count


class Server:
    """The `web:` process tree: the shell, Sanic's main process, its workers."""

    def __init__(self, process: subprocess.Popen, base_url: str) -> None:
        self.process = process
        self.root = psutil.Process(process.pid)
        self.base_url = base_url
        self.port = int(base_url.rsplit(":", 1)[1])

    def processes(self) -> list[psutil.Process]:
        return tree(self.root)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.processes())

    def worker_pid(self) -> int:
        """The busiest process of the tree: with one worker, the process that serves requests."""
        return max(self.processes(), key=lambda proc: cpu_seconds([proc])).pid
