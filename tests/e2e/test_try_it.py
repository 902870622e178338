"""`python -m dev`, as a newcomer runs it: a busy port, then SIGTERM or SIGHUP, which must stop
everything it started."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from dev.processes import ROOT


def read_until_token(process: subprocess.Popen, timeout: float = 60) -> str:
    deadline, out = time.monotonic() + timeout, ""
    while "export TOKEN=" not in out:
        assert time.monotonic() < deadline and process.poll() is None, out
        out += process.stdout.readline()
    return out + process.stdout.readline()


def refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return True
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_busy_port_then_a_signal_stops_everything(signum):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "dev", "--port", str(taken)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            out = read_until_token(process)
        except BaseException:
            process.kill()
            raise
    assert f"port {taken} is taken; using" in out
    base_url = re.search(r"chat API on (http://\S+)", out)[1]
    upstreams = re.findall(r"stand-in \w+ (http://\S+),", out)
    token = re.search(r"export TOKEN=(\S+)", out)[1]
    assert not base_url.endswith(f":{taken}")
    listed = httpx.get(f"{base_url}/api/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.status_code == 200

    process.send_signal(signum)
    assert process.wait(timeout=45) == 0
    for url in (f"{base_url}/api/health", *upstreams):
        assert refused(url), url
