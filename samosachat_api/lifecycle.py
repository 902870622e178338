"""What each worker opens before it serves and closes after it stopped, in the order written here
(closed in reverse): its metrics, the database, the upstream clients, the running answers, the drain.
The main process resets the metrics directory before workers start and removes it at the end.

On SIGTERM Sanic runs `before_server_stop` (the drain starts: no new answers), closes the listening
socket, waits for open streams, then `after_server_stop`: the drain ends (every answer stored),
then the answers, the upstream clients and the database close, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from sanic import Sanic
from tortoise import Tortoise

from . import metrics
from .settings import tortoise_config

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.asynccontextmanager
async def worker_metrics(app: Sanic) -> AsyncIterator[None]:
    yield
    if app.ctx.settings.metrics_enabled:
        metrics.worker_stopped()


@contextlib.asynccontextmanager
async def database(app: Sanic) -> AsyncIterator[None]:
    settings = app.ctx.settings
    # The global fallback, as register_tortoise sets it: handlers run in tasks Sanic makes.
    await Tortoise.init(
        config=tortoise_config(settings.database_url, settings.database_pool_size), _enable_global_fallback=True
    )
    try:
        yield
    finally:
        await Tortoise.close_connections()


@contextlib.asynccontextmanager
async def upstream_clients(app: Sanic) -> AsyncIterator[None]:
    """Made with the app (its dependencies hold them), closed here."""
    yield
    for client in app.ctx.http_clients:
        await client.aclose()


@contextlib.asynccontextmanager
async def answers(app: Sanic) -> AsyncIterator[None]:
    await app.ctx.answers.open()
    try:
        yield
    finally:
        await app.ctx.answers.close()


@contextlib.asynccontextmanager
async def drain(app: Sanic) -> AsyncIterator[None]:
    """Running answers finish and are stored before the worker stops (see `_start_draining`)."""
    yield
    if app.ctx.draining is not None:
        await app.ctx.draining
    loop = asyncio.get_running_loop()
    for signum in SHUTDOWN_SIGNALS:
        loop.remove_signal_handler(signum)


STEPS = (worker_metrics, database, upstream_clients, answers, drain)


def manage(app: Sanic) -> None:
    """Register the life cycle's listeners: the only ones the app has."""
    app.ctx.draining = None
    app.ctx.running = contextlib.AsyncExitStack()
    app.before_server_start(_start)
    app.before_server_stop(_start_draining)
    app.after_server_stop(_stop)
    if app.ctx.settings.metrics_enabled:
        app.main_process_start(lambda _: metrics.reset_directory())
        app.main_process_stop(lambda _: metrics.remove_own_directory())


async def _start(app: Sanic) -> None:
    async with contextlib.AsyncExitStack() as steps:
        for step in STEPS:
            await steps.enter_async_context(step(app))
        app.ctx.running = steps.pop_all()


async def _stop(app: Sanic) -> None:
    await app.ctx.running.aclose()


async def _start_draining(app: Sanic) -> None:
    # A PaaS sends SIGTERM to every process and Sanic's main process relays it to this worker
    # too: a repeated signal must not stop the event loop while answers are being stored.
    loop = asyncio.get_running_loop()
    for signum in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(signum, lambda: None)
    if app.ctx.draining is None:  # Sanic may run this listener twice after a signal
        # Not awaited: Sanic closes the listening socket only once this listener returns, and
        # then keeps open streams going while the answers finish.
        app.ctx.draining = asyncio.create_task(app.ctx.answers.drain(app.ctx.settings.graceful_shutdown_timeout))
