"""Try the chat API in one command, on a machine with Python alone:

    .venv/bin/python -m dev [--port 8000] [--fresh] [--data-dir .data]

Starts an embedded PostgreSQL (data kept in `.data/postgres` between runs; `--fresh` starts
empty) and the stand-in auth and inference services, runs the Procfile's `release:` command, then
its `web:` command, exactly as a PaaS does, and prints a curl line that works. Whatever is set
among DATABASE_URL, REDIS_URL, AUTH_SERVICE_URL, INFERENCE_SERVICE_URL and INTERNAL_API_KEY is used
instead of the embedded or stand-in part. If the port is taken, a free one is used (and printed).
Ctrl-C, SIGTERM or SIGHUP stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .embedded import create_database, postgres_server
from .processes import INTERNAL_KEY, ROOT, free_port, release, stand_ins, web_service
from .standins import new_token

DATABASE_NAME = "samosachat"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def database(data_dir: Path, fresh: bool) -> Iterator[str]:
    """DATABASE_URL if it is set, else the embedded PostgreSQL's database."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    if fresh:
        shutil.rmtree(data_dir / "postgres", ignore_errors=True)
        (data_dir / "token").unlink(missing_ok=True)
    with postgres_server(data_dir / "postgres") as server_url:
        yield asyncio.run(create_database(server_url, DATABASE_NAME))


@contextlib.contextmanager
def upstreams(internal_key: str) -> Iterator[tuple[str, str]]:
    """AUTH_SERVICE_URL and INFERENCE_SERVICE_URL where they are set, the stand-ins' elsewhere."""
    given = os.environ.get("AUTH_SERVICE_URL"), os.environ.get("INFERENCE_SERVICE_URL")
    if all(given):
        yield given
        return
    with stand_ins(internal_key=internal_key) as stand_in_urls:
        yield tuple(url or stand_in for url, stand_in in zip(given, stand_in_urls))


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev", description="Run the chat API with an embedded PostgreSQL and stand-in upstreams."
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fresh", action="store_true", help="start with an empty database (deletes DATA_DIR/postgres)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="the database and the log (default: .data)")
    args = parser.parse_args()
    port = args.port if port_is_free(args.port) else free_port()
    if port != args.port:
        print(f"port {args.port} is taken; using {port}", flush=True)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # leave through the `with` blocks: they stop the children
        signal.signal(signum, lambda *_: sys.exit(0))
    # Ctrl-C even when started by a parent that ignores SIGINT (Python then leaves it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    internal_key = os.environ.get("INTERNAL_API_KEY") or INTERNAL_KEY
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "web.log"
    try:
        with database(data_dir, args.fresh) as database_url, upstreams(internal_key) as (auth_url, inference_url):
            release(database_url)
            with web_service(database_url, auth_url, inference_url, log, port=port, internal_key=internal_key) as (_, url):
                print(instructions(url, auth_url, inference_url, data_dir, log), flush=True)
                signal.pause()
    except KeyboardInterrupt:  # Ctrl-C, at any point: the `with` blocks have stopped what they started
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"samosachat-api: {exc.cmd!r} failed:\n{exc.stderr or exc.stdout}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"samosachat-api: the service did not start: {exc}", file=sys.stderr)
        return 1
    return 0


def kept_token(data_dir: Path) -> str:
    """The token of the user whose data is kept: the same from one run to the next."""
    saved = data_dir / "token"
    if not saved.exists():
        saved.write_text(new_token(admin=True))
    return saved.read_text().strip()


def instructions(base_url: str, auth_url: str, inference_url: str, data_dir: Path, log: Path) -> str:
    token = kept_token(data_dir)

    def origin(variable: str, embedded: str) -> str:
        return f"from {variable}" if os.environ.get(variable) else embedded

    return f"""
samosaChaat chat API on {base_url}  (log: {log})
  database:  {origin("DATABASE_URL", f"embedded PostgreSQL, data in {data_dir / 'postgres'}")}
  auth:      {auth_url} ({origin("AUTH_SERVICE_URL", "stand-in")})
  inference: {inference_url} ({origin("INFERENCE_SERVICE_URL", "stand-in")})
  answers:   {origin("REDIS_URL", "in memory (set REDIS_URL to share them between instances)")}

  export TOKEN={token}
  ID=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"title":"Samosa"}}' {base_url}/api/conversations | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -N -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"content":"Hello! tokens=20 delay=100"}}' {base_url}/api/conversations/$ID/messages
  curl -s -H "Authorization: Bearer $TOKEN" {base_url}/api/conversations/$ID

With the stand-in auth service, any token `user-<uuid>` (or `admin-<uuid>`) is valid. Ctrl-C to stop."""


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
