"""The processes as they are run: the Procfile's `web:` (exec'd, so a platform's signal reaches
Sanic itself) and `sanic ... --dev` stopped with Ctrl-C (quiet: one access line per request, one
shutdown line, no stray traceback). Neither sends an empty header."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dev.processes import ROOT, free_port, wait_until_up, web_service


def assert_no_header_is_empty(base_url: str) -> None:
    for path in ("/api/health", "/nope"):
        response = httpx.get(base_url + path)
        assert all(value.strip() for value in response.headers.values()), response.headers  # Sanic's alt-svc


def test_the_web_command_is_sanic_itself_not_a_shell(database_url, tmp_path):
    with web_service(database_url, "http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path / "web.log") as (process, base_url):
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert any(part.endswith(b"/sanic") for part in command[:2]), command  # not `sh -c "sanic ..."`
        assert_no_header_is_empty(base_url)


def test_ctrl_c_on_the_dev_server_is_quiet(database_url):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "AUTH_SERVICE_URL": "http://127.0.0.1:9"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    sanic = Path(sys.executable).parent / "sanic"
    process = subprocess.Popen(
        [sanic, "samosachat_api.app:create_app", "--factory", "--dev", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/health", process)
        assert_no_header_is_empty(f"http://127.0.0.1:{port}")
        httpx.get(f"http://127.0.0.1:{port}/api/health")
        time.sleep(0.3)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # never left running after the test
            raise
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sum(line["event"] == "request" for line in lines) >= 4
    assert not [line for line in lines if line["logger"] == "sanic.access" or not line["event"]]
    assert sum(line["event"] == "Tortoise-ORM shutdown" for line in lines) == 1
    for noise in ("never retrieved", "never awaited", "Traceback"):
        assert noise not in out
