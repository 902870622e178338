"""Settings come from the environment, with defaults; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from samosachat_api.settings import Settings, SettingsError, tortoise_config


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "postgres://localhost/samosachaat"
    assert settings.auth_service_url == "http://auth:8001"
    assert settings.inference_service_url == "http://inference:8000"
    assert settings.internal_api_key == ""
    assert (settings.max_conversation_history, settings.max_token_budget) == (50, 6000)
    assert settings.frontend_url == ("http://localhost:3000",)
    assert (settings.auth_cache_ttl_seconds, settings.auth_cache_max_size) == (300, 1024)
    assert (settings.inference_default_temperature, settings.inference_default_max_tokens, settings.inference_default_top_k) == (0.8, 1024, 50)
    assert settings.admin_emails == ()
    assert (settings.sse_heartbeat_seconds, settings.graceful_shutdown_timeout) == (15, 20)


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@db:5432/chat", "postgresql://u:p@db:5432/chat", "postgresql+asyncpg://u:p@db:5432/chat"],
)
def test_database_url_forms(url):
    assert Settings.from_env({"DATABASE_URL": url}).database_url == "postgres://u:p@db:5432/chat"


def test_lists_are_comma_separated():
    settings = Settings.from_env({"FRONTEND_URL": "https://a.example, https://b.example", "ADMIN_EMAILS": "A@x.com,b@x.com"})
    assert settings.frontend_url == ("https://a.example", "https://b.example")
    assert settings.admin_emails == ("a@x.com", "b@x.com")


@pytest.mark.parametrize(
    "name,value",
    [
        ("MAX_TOKEN_BUDGET", "abc"),
        ("MAX_CONVERSATION_HISTORY", "0"),
        ("AUTH_CACHE_TTL_SECONDS", "-1"),
        ("SSE_HEARTBEAT_SECONDS", "nan"),
        ("GRACEFUL_SHUTDOWN_TIMEOUT", "inf"),
        ("INFERENCE_DEFAULT_TEMPERATURE", "3"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "sqlite:///tmp/chat.sqlite3"),  # PostgreSQL only
        ("AUTH_SERVICE_URL", "auth:8001"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_repr_hides_secrets():
    settings = Settings.from_env({"INTERNAL_API_KEY": "k3y", "DATABASE_URL": "postgres://u:pw@h/db"})
    assert "k3y" not in repr(settings) and "pw" not in repr(settings)


def test_bad_value_stops_the_server_with_one_line():
    env = {**os.environ, "MAX_TOKEN_BUDGET": "abc"}
    sanic = os.path.join(os.path.dirname(sys.executable), "sanic")
    result = subprocess.run(
        [sanic, "samosachat_api.app:create_app", "--factory", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["samosachat-api: invalid MAX_TOKEN_BUDGET='abc': invalid literal for int() with base 10: 'abc'"]


def test_pool_size_goes_into_the_url_unless_it_names_one():
    assert tortoise_config("postgres://h/db", 20)["connections"]["default"] == "postgres://h/db?maxsize=20"
    assert tortoise_config("postgres://h/db?ssl=true", 7)["connections"]["default"] == "postgres://h/db?ssl=true&maxsize=7"
    assert tortoise_config("postgres://h/db?maxsize=3", 7)["connections"]["default"] == "postgres://h/db?maxsize=3"


def test_tortoise_config_points_at_models_and_migrations():
    config = tortoise_config("postgres://h/db")
    assert config["connections"]["default"] == "postgres://h/db"
    assert config["apps"]["models"]["models"] == ["samosachat_api.models"]
    assert config["apps"]["models"]["migrations"] == "migrations"


def test_example_environment_lists_every_setting_with_its_default():
    from pathlib import Path

    from samosachat_api.settings import VARIABLES

    example = Path(__file__).resolve().parent.parent / "config" / "example.env"
    values = dict(
        line.split("=", 1) for line in example.read_text().splitlines() if line.strip() and not line.startswith("#")
    )
    assert set(values) == set(VARIABLES) | {"PORT", "WEB_CONCURRENCY"}
    assert all(values[name] == default for name, (_, default) in VARIABLES.items())
