"""The service and the stand-ins as real processes, started the way a PaaS starts them.

`root` is where the service's code is: this working tree, or (the benchmark's `--at`) a commit
exported elsewhere, imported first through PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
INTERNAL_KEY = "process-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_command(kind: str, root: Path = ROOT) -> str:
    for line in (root / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise LookupError(kind)


def server_environment(root: Path = ROOT, **variables: str) -> dict[str, str]:
    """This environment with `variables`, this virtual environment's commands first on PATH, and the
    code at `root` first on the import path."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **variables}
    if root != ROOT:  # this working tree is installed (editable): a copy elsewhere is not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def release(database_url: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the Procfile's `release:` command (the migrations) against `database_url`, as a PaaS does."""
    return subprocess.run(
        procfile_command("release", root), shell=True, cwd=root,
        env=server_environment(root, DATABASE_URL=database_url), check=True, capture_output=True, text=True,
    )


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until `url` (the service's liveness route) answers as the chat API, while `process` lives:
    whatever else may listen on the port does not count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError, ValueError):
            if httpx.get(url, timeout=1).json().get("service") == "chat-api":
                return
        time.sleep(0.1)
    raise TimeoutError(url)


def wait_for_exit(process: subprocess.Popen, timeout: float) -> None:
    """Wait until every process of the group (the shell, Sanic's main process, its workers) is gone."""
    process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise TimeoutError("server processes still running")


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process group as a platform does (SIGTERM), and insist that all of it exits."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        wait_for_exit(process, timeout)
    except (TimeoutError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"process {process.args!r} did not exit within {timeout} s of SIGTERM") from None


@contextlib.contextmanager
def stand_ins(auth_delay_ms: int = 0, internal_key: str = INTERNAL_KEY) -> Iterator[tuple[str, str]]:
    """The stand-in auth and inference services (dev/standins.py); yields their two URLs."""
    with stand_ins_process(auth_delay_ms, internal_key) as (_, auth_url, inference_url):
        yield auth_url, inference_url


@contextlib.contextmanager
def stand_ins_process(auth_delay_ms: int = 0, internal_key: str = INTERNAL_KEY) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """`stand_ins()`, yielding their process too (the benchmark meters its CPU)."""
    auth_port, inference_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.standins", "--auth-port", str(auth_port),
         "--inference-port", str(inference_port), "--internal-key", internal_key,
         "--auth-delay-ms", str(auth_delay_ms)],
        cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        if not process.stdout.readline().startswith(b"stand-ins ready"):
            raise RuntimeError(f"stand-ins did not start (exit status {process.wait()})")
        yield process, f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{inference_port}"
    finally:
        stop(process)


@contextlib.contextmanager
def web_service(
    database_url: str, auth_url: str, inference_url: str, log_path: Path, port: int = 0,
    internal_key: str = INTERNAL_KEY, root: Path = ROOT, **extra_env: str,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """The Procfile's `web:` command with PORT set, as a PaaS runs it, with a temporary directory
    of its own (Sanic's workers leave `pymp-*` folders there), removed when it stops."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="samosachat-web-") as tmp, open(log_path, "wb") as log:
        env = server_environment(
            root, PORT=str(port), DATABASE_URL=database_url, AUTH_SERVICE_URL=auth_url, INFERENCE_SERVICE_URL=inference_url,
            INTERNAL_API_KEY=internal_key, TMPDIR=tmp, **extra_env,
        )
        # Not this process's metrics directory (set when it imported samosachat_api.metrics):
        # the server's main process empties that directory when it starts.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        process = subprocess.Popen(
            procfile_command("web", root), shell=True, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_service(port, process, log_path)
            yield process, f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def _wait_for_service(port: int, process: subprocess.Popen, log_path: Path) -> None:
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/health", process)
    except (RuntimeError, TimeoutError) as exc:
        tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-20:])
        raise type(exc)(f"{exc}; the end of {log_path}:\n{tail}") from None
