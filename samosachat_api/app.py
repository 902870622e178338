"""The application factory: `sanic samosachat_api.app:create_app --factory`."""

from __future__ import annotations

from sanic import Blueprint, Sanic
from sanic.exceptions import RequestCancelled

from . import admin, conversations, health, lifecycle, llm_models, messages
from .metrics import routes as metrics_routes
from .answers import STORE_GRACE_SECONDS, Answers, build_answers
from .clients import AuthClient, AuthenticatedUser, InferenceClient, new_http_client
from .errors import render_error
from .logging import bind_request_context, configure_logging, log_access
from .messages.generation import store_salvaged
from .settings import Settings, SettingsError
from .web.auth import Administrator, Authenticator, authenticate, current_administrator, current_user
from .web.schemas import ListQuery

# The capabilities under /api, each a package with its blueprint (`bp`) and `register(app)`, which
# adds what its handlers have injected. Every route of these needs a bearer token.
API = (conversations, messages, llm_models, admin)
# Made once: Sanic registers a blueprint on every app that asks (tests build several).
api = Blueprint.group(*(capability.bp for capability in API), url_prefix="/api")
api.middleware(authenticate, "request")

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
    _configure(app, settings)
    _share(app, settings)
    for capability in API:
        capability.register(app)
    app.blueprint([health.bp, api])
    if settings.metrics_enabled:
        metrics_routes.register(app)

    app.on_request(bind_request_context, priority=1)  # first: the API group's authentication logs with it
    app.error_handler.add(Exception, render_error)
    app.error_handler.add(RequestCancelled, render_error)  # a CancelledError, not an Exception
    app.register_middleware(log_access, "response")
    lifecycle.manage(app)
    return app


def _configure(app: Sanic, settings: Settings) -> None:
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
    app.ext.openapi.describe("samosaChaat chat API", version="1.0.0")
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")


def _share(app: Sanic, settings: Settings) -> None:
    """What every capability may have injected: the settings, the upstream clients, the running
    answers, the user and the administrator, a page of a list."""
    auth_http = new_http_client(settings.auth_service_url, settings.internal_api_key)
    inference_http = new_http_client(settings.inference_service_url, settings.internal_api_key)
    app.ctx.settings = settings
    app.ctx.http_clients = (auth_http, inference_http)
    app.ctx.authenticator = Authenticator(
        AuthClient(auth_http), settings.auth_cache_ttl_seconds, settings.auth_cache_max_size
    )
    answers = app.ctx.answers = build_answers(settings, store_salvaged)
    app.ctx.inference = InferenceClient(inference_http, settings.inference_generate_url)
    app.ext.dependency(settings)
    app.ext.dependency(app.ctx.inference)
    app.ext.add_dependency(Answers, lambda: answers)  # by the interface, whichever implementation runs
    app.ext.add_dependency(AuthenticatedUser, current_user)
    app.ext.add_dependency(Administrator, current_administrator)
    app.ext.add_dependency(ListQuery, ListQuery.from_request)
