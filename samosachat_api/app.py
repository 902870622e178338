"""The application factory: `sanic samosachat_api.app:create_app --factory`."""

from __future__ import annotations

from sanic import Sanic
from sanic.exceptions import RequestCancelled
from tortoise.contrib.sanic import register_tortoise

from . import blueprints, metrics
from .answers import STORE_GRACE_SECONDS, Answers, build_answers
from .auth import (
    Administrator,
    Authenticator,
    current_administrator,
    current_user,
    owned_conversation,
)
from .blueprints.metrics import record_request
from .clients import AuthClient, AuthenticatedUser, InferenceClient, new_http_client
from .errors import render_error
from .logging import bind_request_context, configure_logging, log_access
from .models import Conversation
from .schemas import AdminUsersQuery, ListQuery
from .settings import Settings, SettingsError, tortoise_config
from .shutdown import drain_answers_on_shutdown
from .streaming import Answering, store_salvaged

MAX_BODY_BYTES = 1024 * 1024


def create_app(*, settings: Settings | None = None) -> Sanic:
    """Build the service from its settings.

    One factory, so that the Procfile, `sanic --dev` and the tests wire the app the same way;
    every worker process calls it for itself.
    """
    if settings is None:
        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            raise SystemExit(f"samosachat-api: {exc}") from None
    configure_logging(settings.log_level)

    app = Sanic("samosachat_api", configure_logging=False)
    app.config.update(
        REQUEST_MAX_SIZE=MAX_BODY_BYTES,
        ACCESS_LOG=False,  # log_access writes the access line, with trace_id and user_id
        MOTD=False,
        # Sanic rewrites its HTTP code at start-up to leave out an empty Alt-Svc header, but not
        # in debug mode (`sanic --dev`) unless asked to.
        TOUCHUP=True,
        FALLBACK_ERROR_FORMAT="json",
        # Open streams may outlive the answers' deadline by the time it takes to store them.
        GRACEFUL_SHUTDOWN_TIMEOUT=settings.graceful_shutdown_timeout + STORE_GRACE_SECONDS,
        # Each send restarts it, and a quiet stream sends a heartbeat, so it must be longer.
        RESPONSE_TIMEOUT=max(60, settings.sse_heartbeat_seconds + 30),
        INJECTION_SIGNAL="http.handler.before",  # after the request middleware has bound the trace id
        CORS_ORIGINS=",".join(settings.frontend_url),
        CORS_SUPPORTS_CREDENTIALS=True,
        # Listed, not "*": with credentials a browser takes "*" literally, and never for Authorization.
        CORS_ALLOW_HEADERS="authorization,content-type,last-event-id,x-trace-id,x-request-id",
        CORS_EXPOSE_HEADERS="x-trace-id",
        OAS_UI_DEFAULT="swagger",
        OAS_URL_PREFIX="/docs",
    )
    app.ctx.settings = settings
    app.ext.openapi.describe("samosaChaat chat API", version="1.0.0")
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    _wire_dependencies(app, settings)

    register_tortoise(app, config=tortoise_config(settings.database_url, settings.database_pool_size))
    app.blueprint([blueprints.health, blueprints.api])
    app.on_request(bind_request_context, priority=1)  # first: the API group's authentication logs with it
    app.error_handler.add(Exception, render_error)
    app.error_handler.add(RequestCancelled, render_error)  # a CancelledError, not an Exception
    app.register_middleware(log_access, "response")
    if settings.metrics_enabled:
        _add_metrics(app)
    drain_answers_on_shutdown(app)
    return app


def _wire_dependencies(app: Sanic, settings: Settings) -> None:
    auth_http = new_http_client(settings.auth_service_url, settings.internal_api_key)
    inference_http = new_http_client(settings.inference_service_url, settings.internal_api_key)
    app.ctx.http_clients = (auth_http, inference_http)
    app.ctx.authenticator = Authenticator(
        AuthClient(auth_http), settings.auth_cache_ttl_seconds, settings.auth_cache_max_size
    )
    answers = app.ctx.answers = build_answers(settings, store_salvaged)
    app.ext.dependency(settings)
    inference = InferenceClient(inference_http, settings.inference_generate_url)
    app.ext.add_dependency(Answers, lambda: answers)  # by the interface, whichever implementation runs
    app.ext.dependency(inference)
    app.ext.dependency(Answering(answers, inference, settings))
    app.ext.add_dependency(AuthenticatedUser, current_user)
    app.ext.add_dependency(Administrator, current_administrator)
    app.ext.add_dependency(Conversation, owned_conversation)
    app.ext.add_dependency(ListQuery, ListQuery.from_request)
    app.ext.add_dependency(AdminUsersQuery, AdminUsersQuery.from_request)
    app.after_server_stop(_close_clients)
    # Opened once the worker's loop runs; closed after the drain (registered before it, so run after it).
    app.before_server_start(lambda app: app.ctx.answers.open())
    app.after_server_stop(lambda app: app.ctx.answers.close())


def _add_metrics(app: Sanic) -> None:
    app.blueprint(blueprints.metrics)
    app.register_middleware(record_request, "response")
    app.main_process_start(lambda _: metrics.reset_directory())
    app.after_server_stop(lambda _: metrics.worker_stopped())
    app.main_process_stop(lambda _: metrics.remove_own_directory())


async def _close_clients(app: Sanic) -> None:
    for client in app.ctx.http_clients:
        await client.aclose()
