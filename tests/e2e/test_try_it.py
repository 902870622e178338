"""`python -m dev`, as a newcomer runs it on a machine with Python alone: an embedded PostgreSQL
whose data stays between runs, a busy port, then Ctrl-C, SIGTERM or SIGHUP, which must stop
everything it started (the database server included) and leave nothing in the temporary directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from dev.processes import ROOT, stand_ins

STOP_SECONDS = 10
OVERRIDES = ("DATABASE_URL", "REDIS_URL", "AUTH_SERVICE_URL", "INFERENCE_SERVICE_URL", "INTERNAL_API_KEY")


class TryIt:
    """One run of `python -m dev` in a data folder and a temporary directory of the test's own."""

    def __init__(self, data_dir: Path, tmp: Path, *args: str, **env: str) -> None:
        clean = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
        self.web_log = data_dir / "web.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dev", "--data-dir", str(data_dir), *args], cwd=ROOT, stdout=subprocess.PIPE,
            text=True, start_new_session=True, env={**clean, "TMPDIR": str(tmp), **env},
            # Started as a parent that ignores SIGINT would (as pytest-xdist's workers may): Ctrl-C still stops it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        try:
            self.out = self._read_until_token()
        except BaseException:
            self.process.kill()
            raise
        self.base_url = re.search(r"chat API on (http://\S+)", self.out)[1]
        self.token = re.search(r"export TOKEN=(\S+)", self.out)[1]
        self.database = re.search(r"database: +(.+)", self.out)[1]
        self.upstreams = re.findall(r"(http://\S+) \(stand-in\)", self.out)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def _read_until_token(self, timeout: float = 60) -> str:
        deadline, out = time.monotonic() + timeout, ""
        while "export TOKEN=" not in out:
            assert time.monotonic() < deadline and self.process.poll() is None, out
            out += self.process.stdout.readline()
        return out

    def stop(self, signum: int = signal.SIGTERM) -> float:
        """Signal it (SIGINT to the whole group, as Ctrl-C does in a terminal); seconds to exit."""
        started = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            assert self.process.wait(timeout=45) == 0
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            web_log = self.web_log.read_text()[-4000:] if self.web_log.exists() else "(no web log)"
            raise AssertionError(f"python -m dev did not stop within 45 s of {signal.Signals(signum).name}; its web log ends:\n{web_log}") from None
        return time.monotonic() - started

    def conversations(self, headers: dict[str, str] | None = None) -> list[dict]:
        """The list of the user of `headers` (default: this run's printed token)."""
        response = httpx.get(f"{self.base_url}/api/conversations", headers=headers or self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["items"]


def refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return True
    return False


def embedded_postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def tmp() -> Path:
    """An empty temporary directory for the run, on a short path: Sanic's manager puts a Unix
    socket in it, whose path may not exceed 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="try-"))


def assert_all_stopped(run: TryIt, signum: int, data_dir: Path, tmp: Path) -> None:
    assert run.stop(signum) < STOP_SECONDS
    for url in (f"{run.base_url}/api/health", *run.upstreams):
        assert refused(url), url
    assert not embedded_postgres_running(data_dir)
    assert list(tmp.iterdir()) == []


def test_kept_data_fresh_starts_and_every_signal_stops_everything(tmp_path, tmp):
    """Three runs on one data folder, each stopped another way: Ctrl-C, SIGTERM, SIGHUP."""
    data_dir = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        first = TryIt(data_dir, tmp, "--port", str(taken))
    assert f"port {taken} is taken; using" in first.out
    assert not first.base_url.endswith(f":{taken}")
    assert first.database.startswith("embedded PostgreSQL")
    assert len(first.upstreams) == 2
    assert embedded_postgres_running(data_dir)
    created = httpx.post(f"{first.base_url}/api/conversations", json={"title": "kept"}, headers=first.headers, timeout=10)
    assert created.status_code == 201
    assert_all_stopped(first, signal.SIGINT, data_dir, tmp)

    again = TryIt(data_dir, tmp)
    assert again.headers == first.headers  # the printed token is the kept data's user's
    assert [c["title"] for c in again.conversations()] == ["kept"]
    assert_all_stopped(again, signal.SIGTERM, data_dir, tmp)

    fresh = TryIt(data_dir, tmp, "--fresh")
    assert fresh.headers != first.headers
    assert fresh.conversations(first.headers) == []
    assert_all_stopped(fresh, signal.SIGHUP, data_dir, tmp)


def test_variables_that_are_set_replace_the_embedded_parts(database_url, tmp_path, tmp):
    with stand_ins(internal_key="own-key") as (auth_url, inference_url):
        run = TryIt(
            tmp_path / "data", tmp, DATABASE_URL=database_url, AUTH_SERVICE_URL=auth_url,
            INFERENCE_SERVICE_URL=inference_url, INTERNAL_API_KEY="own-key",
        )
        assert run.database == "from DATABASE_URL"
        assert run.upstreams == []  # no stand-ins of its own
        assert f"{auth_url} (from AUTH_SERVICE_URL)" in run.out
        assert run.conversations() == []  # the token was checked by this test's stand-in, with its key
        calls = httpx.get(f"{auth_url}/stats", headers={"X-Internal-API-Key": "own-key"}, timeout=10).json()
        assert calls["validate_calls"] == 1
        run.stop()
    assert not (tmp_path / "data" / "postgres").exists()
