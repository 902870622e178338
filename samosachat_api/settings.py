"""Every setting the service reads, parsed once from the environment."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any


class SettingsError(ValueError):
    """A bad environment value; the message names the variable."""


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not 0 < number < math.inf:  # also refuses "nan" and "inf", which float() accepts
        raise ValueError("must be a number greater than 0")
    return number


def _temperature(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 2:
        raise ValueError("must be between 0 and 2")
    return number


def _top_k(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 200:
        raise ValueError("must be between 0 and 200")
    return number


def _database_url(value: str) -> str:
    """Accept the URL forms PaaS providers and the old service use; Tortoise wants postgres://."""
    for prefix in ("postgresql+asyncpg://", "postgresql://"):
        if value.startswith(prefix):
            return "postgres://" + value[len(prefix) :]
    if not value.startswith("postgres://"):
        raise ValueError("must start with postgres:// or postgresql://")
    return value


def _http_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return url


def _redis_url(value: str) -> str:
    url = value.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return url


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _optional_http_url(value: str) -> str:
    return _http_url(value) if value.strip() else ""


def _emails(value: str) -> tuple[str, ...]:
    return tuple(email.lower() for email in _split(value))


SYSTEM_PROMPT = (
    "You are samosaChaat, a friendly and helpful assistant. You can use two tools: web_search, "
    "for recent or factual information, and calculator, for arithmetic. Answer clearly and briefly."
)
THINKING_SYSTEM_PROMPT = (
    SYSTEM_PROMPT + " Before your final answer, think the problem through step by step inside "
    "<think>...</think>; then give the final answer after the closing tag."
)

# Environment variable -> (parser, default). Field names are the lower-cased variable names.
VARIABLES: dict[str, tuple[Callable[[str], Any], str]] = {
    "DATABASE_URL": (_database_url, "postgres://localhost/samosachaat"),
    "AUTH_SERVICE_URL": (_http_url, "http://auth:8001"),
    "INFERENCE_SERVICE_URL": (_http_url, "http://inference:8000"),
    "INTERNAL_API_KEY": (str, ""),
    "MAX_CONVERSATION_HISTORY": (_positive_int, "50"),
    "MAX_TOKEN_BUDGET": (_positive_int, "6000"),
    "FRONTEND_URL": (_split, "http://localhost:3000"),
    "LOG_LEVEL": (_log_level, "INFO"),
    "AUTH_CACHE_TTL_SECONDS": (_positive_float, "300"),
    "AUTH_CACHE_MAX_SIZE": (_positive_int, "1024"),
    "INFERENCE_DEFAULT_TEMPERATURE": (_temperature, "0.8"),
    "INFERENCE_DEFAULT_MAX_TOKENS": (_positive_int, "1024"),
    "INFERENCE_DEFAULT_TOP_K": (_top_k, "50"),
    "ADMIN_EMAILS": (_emails, ""),
    "ADMIN_EMAIL": (_emails, ""),  # the newest predecessor's name for one address; both count
    "SSE_HEARTBEAT_SECONDS": (_positive_float, "15"),
    "GRACEFUL_SHUTDOWN_TIMEOUT": (_positive_float, "20"),  # + 5 s to store: inside a 30 s SIGKILL
    "METRICS_ENABLED": (_bool, "true"),
    "METRICS_TOKEN": (str, ""),  # when set, /metrics wants `Authorization: Bearer <it>`
    "DATABASE_POOL_SIZE": (_positive_int, "20"),
    "REDIS_URL": (_redis_url, ""),
    "REDIS_KEY_PREFIX": (str, "samosachat:"),
    "REDIS_POOL_SIZE": (_positive_int, "100"),  # per worker; a burst waits for a free connection
    "ANSWER_LEASE_SECONDS": (_positive_float, "10"),
    "MAX_RUNNING_ANSWERS_PER_USER": (_positive_int, "3"),
    "ANSWER_TIMEOUT_SECONDS": (_positive_float, "600"),
    "INFERENCE_GENERATE_URL": (_optional_http_url, ""),  # empty: {INFERENCE_SERVICE_URL}/generate
    "SYSTEM_PROMPT": (str, SYSTEM_PROMPT),  # empty: no prompt is added
    "THINKING_SYSTEM_PROMPT": (str, THINKING_SYSTEM_PROMPT),
}


@dataclass(frozen=True)
class Settings:
    database_url: str
    auth_service_url: str
    inference_service_url: str
    internal_api_key: str
    max_conversation_history: int
    max_token_budget: int
    frontend_url: tuple[str, ...]
    log_level: str
    auth_cache_ttl_seconds: float
    auth_cache_max_size: int
    inference_default_temperature: float
    inference_default_max_tokens: int
    inference_default_top_k: int
    admin_emails: tuple[str, ...]
    sse_heartbeat_seconds: float
    graceful_shutdown_timeout: float
    metrics_enabled: bool
    metrics_token: str
    database_pool_size: int
    redis_url: str
    redis_key_prefix: str
    redis_pool_size: int
    answer_lease_seconds: float
    max_running_answers_per_user: int
    answer_timeout_seconds: float
    inference_generate_url: str
    system_prompt: str
    thinking_system_prompt: str
    admin_email: tuple[str, ...]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        values = {}
        for name, (parse, default) in VARIABLES.items():
            raw = environ.get(name, default)
            try:
                values[name.lower()] = parse(raw)
            except ValueError as exc:
                raise SettingsError(f"invalid {name}={raw!r}: {exc}") from None
        values["inference_generate_url"] = values["inference_generate_url"] or f"{values['inference_service_url']}/generate"
        return cls(**values)

    def is_admin(self, email: str, is_admin_claim: bool) -> bool:
        """Admins: `is_admin` from the auth service, or an address in ADMIN_EMAILS / ADMIN_EMAIL."""
        return is_admin_claim or email.lower() in (*self.admin_emails, *self.admin_email)

    def __repr__(self) -> str:  # keep the internal key and DB password out of tracebacks
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["internal_api_key"] = "***" if self.internal_api_key else ""
        shown["metrics_token"] = "***" if self.metrics_token else ""
        shown["database_url"] = "***"
        shown["redis_url"] = "***" if self.redis_url else ""
        return f"Settings({shown})"


def metrics_directory(value: str) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: an existing directory, or None when unset (one is made)."""
    if not value:
        return None
    if not os.path.isdir(value):
        raise SettingsError(f"invalid PROMETHEUS_MULTIPROC_DIR={value!r}: not an existing directory")
    return value


MODELS_MODULE = "samosachat_api.models"


def tortoise_config(database_url: str, pool_size: int | None = None) -> dict[str, Any]:
    if pool_size and "maxsize=" not in database_url:
        database_url += f"{'&' if '?' in database_url else '?'}maxsize={pool_size}"
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # `tortoise migrate` reads TORTOISE_ORM from here ([tool.tortoise] in pyproject.toml);
    # built lazily so importing this module never reads the environment.
    if name == "TORTOISE_ORM":
        try:
            return tortoise_config(Settings.from_env().database_url)
        except SettingsError as exc:  # one line, not the migration tool's traceback
            raise SystemExit(f"samosachat-api: {exc}") from None
    raise AttributeError(name)
