"""Try the chat API in one command: the service on SQLite next to the stand-in upstreams.

    .venv/bin/python -m tests.support.try_it [--port 8000]

Starts the stand-in auth and inference services, then the service itself with the Procfile's
`web:` command (the production code path) on a SQLite file, and prints a curl line that works.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from ..processes import INTERNAL_KEY, stand_ins, web_service
from .standins import new_token


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the chat API on SQLite with stand-in upstreams.")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="samosachat-try-"))
    database_url = f"sqlite://{workdir / 'chat.sqlite3'}"
    with stand_ins() as (auth_url, inference_url), web_service(
        database_url, auth_url, inference_url, workdir / "server.log", port=args.port
    ) as (_, base_url):
        token = new_token(admin=True)
        print(
            f"""
samosaChaat chat API on {base_url}  (SQLite: {workdir / 'chat.sqlite3'}, logs: {workdir / 'server.log'})
stand-in auth {auth_url}, stand-in inference {inference_url}, internal key {INTERNAL_KEY!r}

  export TOKEN={token}
  ID=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"title":"Samosa"}}' {base_url}/api/conversations | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -N -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"content":"Hello! tokens=20 delay=100"}}' {base_url}/api/conversations/$ID/messages
  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/api/conversations/$ID

Any token `user-<uuid>` (or `admin-<uuid>`) is valid. Ctrl-C to stop.""",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
