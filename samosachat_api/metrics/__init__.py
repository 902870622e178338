"""Prometheus metrics, added up over every worker process (prometheus_client's multiprocess mode).

Labels are bounded: route templates (never raw paths or ids), methods, statuses, outcomes, kinds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..settings import SettingsError, metrics_directory

# Each worker writes its samples to files in this directory; it has to be known before
# prometheus_client is imported. Workers inherit it from Sanic's main process, so only the first
# process to import this module makes one (and removes it when it stops).
try:
    DIRECTORY, OWN_DIRECTORY = metrics_directory(os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")), False
except SettingsError as exc:
    raise SystemExit(f"samosachat-api: {exc}") from None
if DIRECTORY is None:
    DIRECTORY, OWN_DIRECTORY = tempfile.mkdtemp(prefix="samosachat-metrics-"), True
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = DIRECTORY

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("chat_api_requests_total", "HTTP requests answered", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("chat_api_request_duration_seconds", "Time to the response head", ["route"], buckets=_SECONDS)
ANSWERS = Counter("chat_api_answers_total", "Answers by outcome: started, completed, failed, stopped", ["outcome"])
ANSWERS_RUNNING = Gauge("chat_api_answers_running", "Answers being generated now", multiprocess_mode="livesum")
TOKENS_RELAYED = Counter("chat_api_tokens_relayed_total", "Token events relayed from the inference service")
TIME_TO_FIRST_TOKEN = Histogram("chat_api_time_to_first_token_seconds", "Upstream request start to first token", buckets=_SECONDS)
ANSWER_SECONDS = Histogram("chat_api_answer_duration_seconds", "Upstream request start to the answer's end", buckets=_SECONDS)
AUTH_CACHE = Counter("chat_api_auth_cache_total", "Bearer token look-ups in the auth cache", ["result"])
AUTH_CALL_SECONDS = Histogram("chat_api_auth_call_duration_seconds", "Calls to the auth service", buckets=_SECONDS)
UPSTREAM_ERRORS = Counter("chat_api_upstream_errors_total", "Upstream failures", ["service", "kind"])


def exposition() -> tuple[bytes, str]:
    """Every worker's metrics in the Prometheus text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def reset_directory() -> None:
    """Forget samples of earlier runs (called once, in the main process, before workers start).

    Only prometheus_client's own files go: the directory may be one an operator shares.
    """
    for samples in Path(DIRECTORY).glob("*.db"):
        samples.unlink(missing_ok=True)


def remove_own_directory() -> None:
    """Remove the directory this process made (called in the main process, once workers stopped)."""
    if OWN_DIRECTORY:
        shutil.rmtree(DIRECTORY, ignore_errors=True)


def worker_stopped() -> None:
    multiprocess.mark_process_dead(os.getpid())
