"""Clean shutdown: on SIGTERM, running answers finish and are stored before the worker exits.

Sanic's order on SIGTERM: before_server_stop listeners, then it closes the listening socket and
waits (up to GRACEFUL_SHUTDOWN_TIMEOUT) for open connections, then after_server_stop listeners
(in reverse order of registration).
"""

from __future__ import annotations

import asyncio
import signal

from sanic import Sanic

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def drain_answers_on_shutdown(app: Sanic) -> None:
    """Register the listeners; call after register_tortoise so the database outlives the drain."""
    app.before_server_stop(_start_draining)
    app.after_server_stop(_finish_draining)


async def _start_draining(app: Sanic) -> None:
    # A PaaS sends SIGTERM to every process and Sanic's main process relays it to this worker
    # too: a repeated signal must not stop the event loop while answers are being stored.
    loop = asyncio.get_running_loop()
    for signum in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(signum, lambda: None)
    if not hasattr(app.ctx, "draining"):  # Sanic may run this listener twice after a signal
        # Not awaited: Sanic closes the listening socket only once this listener returns, and
        # then keeps open streams going while the answers finish.
        timeout = app.ctx.settings.graceful_shutdown_timeout
        app.ctx.draining = asyncio.create_task(app.ctx.answers.drain(timeout))


async def _finish_draining(app: Sanic) -> None:
    await app.ctx.draining
    loop = asyncio.get_running_loop()
    for signum in SHUTDOWN_SIGNALS:
        loop.remove_signal_handler(signum)
