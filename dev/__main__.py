"""Try the chat API in one command: the service on SQLite next to the stand-in upstreams.

    .venv/bin/python -m dev [--port 8000]

Starts the stand-in auth and inference services, then the service itself with the Procfile's
`web:` command (the production code path) on a SQLite file, and prints a curl line that works.
If the port is taken, a free one is used (and printed). Ctrl-C, SIGTERM or SIGHUP stops it all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from .processes import INTERNAL_KEY, free_port, stand_ins, web_service
from .standins import new_token


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the chat API on SQLite with stand-in upstreams.")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    port = args.port if port_is_free(args.port) else free_port()
    if port != args.port:
        print(f"port {args.port} is taken; using {port}", flush=True)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # leave through the `with` blocks: they stop the children
        signal.signal(signum, lambda *_: sys.exit(0))
    workdir = Path(tempfile.mkdtemp(prefix="samosachat-try-"))
    database_url = f"sqlite://{workdir / 'chat.sqlite3'}"
    try:
        with stand_ins() as (auth_url, inference_url), web_service(
            database_url, auth_url, inference_url, workdir / "server.log", port=port
        ) as (_, base_url):
            print(instructions(base_url, auth_url, inference_url, workdir), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except (RuntimeError, TimeoutError) as exc:
        print(f"samosachat-api: the service did not start: {exc}", file=sys.stderr)
        return 1
    return 0


def instructions(base_url: str, auth_url: str, inference_url: str, workdir: Path) -> str:
    token = new_token(admin=True)
    return f"""
samosaChaat chat API on {base_url}  (SQLite: {workdir / 'chat.sqlite3'}, logs: {workdir / 'server.log'})
stand-in auth {auth_url}, stand-in inference {inference_url}, internal key {INTERNAL_KEY!r}

  export TOKEN={token}
  ID=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"title":"Samosa"}}' {base_url}/api/conversations | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -N -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"content":"Hello! tokens=20 delay=100"}}' {base_url}/api/conversations/$ID/messages
  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/api/conversations/$ID

Any token `user-<uuid>` (or `admin-<uuid>`) is valid. Ctrl-C to stop."""


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
