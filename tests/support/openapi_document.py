"""The OpenAPI document the service publishes, produced without a server, so that schemathesis can
make one test per operation when pytest collects them.

A child process builds the app the way the Procfile's `web:` command does (`create_app()` from the
environment dev/processes.web_service gives the service) and asks for /docs/openapi.json through
sanic-testing's ASGI client. In a child, not in the test process: starting the app sets up logging,
Tortoise's global context and sanic-ext's singletons, which the tests' own apps must not inherit.
No database is contacted (Tortoise connects on the first query), nor the upstreams.

    python -m tests.support.openapi_document OUT.json
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from dev.processes import INTERNAL_KEY, ROOT, server_environment

UNUSED_URL = "http://127.0.0.1:9"  # discard: nothing is sent to the upstreams while the spec is built


def published_document() -> dict:
    """What the service's /docs/openapi.json answers, as JSON, in a stable order."""
    with tempfile.TemporaryDirectory(prefix="samosachat-openapi-") as tmp:
        out = Path(tmp) / "openapi.json"
        env = server_environment(
            DATABASE_URL="postgres://127.0.0.1:9/unused", AUTH_SERVICE_URL=UNUSED_URL,
            INFERENCE_SERVICE_URL=UNUSED_URL, INTERNAL_API_KEY=INTERNAL_KEY, TMPDIR=tmp,
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # as web_service: a metrics directory in `tmp`
        child = subprocess.run(
            [sys.executable, "-m", __name__, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the OpenAPI document could not be built:\n{child.stdout}{child.stderr}")
        # Every object's keys sorted: sanic-ext's order of paths and methods changes from process
        # to process, and xdist's workers must collect the same tests in the same order.
        return json.loads(out.read_text(), object_pairs_hook=lambda pairs: dict(sorted(pairs)))


def _write_document(out: Path) -> None:
    from samosachat_api.app import create_app

    _, response = asyncio.run(create_app().asgi_client.get("/docs/openapi.json"))
    if response.status_code != 200:
        raise SystemExit(f"/docs/openapi.json answered {response.status_code}: {response.text}")
    out.write_text(response.text)


if __name__ == "__main__":
    _write_document(Path(sys.argv[1]))
