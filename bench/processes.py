"""The benchmark's processes: the service's source, its database, Redis keys, the stand-ins and the `web:` service.

Each is a context manager that leaves nothing behind (processes killed and reaped, database dropped,
Redis keys deleted), whatever happened in between.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
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

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://root@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HOST = "127.0.0.1"
INTERNAL_KEY = "bench-internal-key"


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
async def database(src: Source) -> AsyncIterator[str]:
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
def stand_ins(kind: str, src: Source, niceness: int | None) -> Iterator[tuple[str, str, psutil.Process]]:
    """fast: bench/standin.py (see its docstring for why); tests: dev/standins.py."""
    auth_port, inference_port = free_port(), free_port()
    tests_module = "dev.standins" if (src.path / "dev" / "standins.py").exists() else "tests.support.standins"  # older commits
    module, cwd, env = ("bench.standin", ROOT, None) if kind == "fast" else (tests_module, src.path, src.env())
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--auth-port", str(auth_port), "--inference-port", str(inference_port),
         "--internal-key", INTERNAL_KEY],
        cwd=cwd, env=env, stdout=subprocess.PIPE, start_new_session=True,
    )
    prioritise(process.pid, niceness)
    try:
        _readline_within(process, 30)
        yield f"http://{HOST}:{auth_port}", f"http://{HOST}:{inference_port}", psutil.Process(process.pid)
    finally:
        kill_group(process)


@contextlib.contextmanager
def web_service(src: Source, env: dict[str, str], log_path: Path, niceness: int | None,
                ready_path: str = "/api/health") -> Iterator[tuple[subprocess.Popen, str]]:
    """The Procfile's `web:` command with PORT and `env` (WEB_CONCURRENCY, the URLs...), as a PaaS runs it."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(src.procfile("web"), shell=True, cwd=src.path, env=src.env(PORT=str(port), **env),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    prioritise(process.pid, niceness)  # before Sanic starts its workers, which inherit it
    try:
        base_url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"the server did not start (exit status {process.poll()}); {log_path}:\n{tail}")
            try:
                if httpx.get(f"{base_url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process, base_url
    finally:
        kill_group(process)


def count_log_errors(path: Path) -> int:
    count = 0
    with contextlib.suppress(OSError), open(path, "rb") as log:
        for line in log:
            if b'"level": "error"' in line or b'"level": "critical"' in line or b'"level": "exception"' in line:
                count += 1
    return count


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


def kill_group(process: subprocess.Popen) -> None:
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
