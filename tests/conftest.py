"""Shared fixtures: real settings in a private data dir, the real app with its lifespan, and helpers.

Async tests use pytest's anyio plugin: mark them `@pytest.mark.anyio` (the `anyio_backend` fixture
below pins asyncio). The `client` fixture starts the whole service in-process (local back end:
SQLite store, workers, the real sandbox) and talks to it over ASGI, so every request takes the same
path as one over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from monaco.api.app import create_app
from monaco.core import logs
from monaco.core.settings import Settings

# Sandboxes refuse dirs under /tmp, /var/tmp, /dev/shm (each sandbox covers them with a tmpfs), so the
# tests' data dirs live here, one per test, removed afterwards.
TEST_ROOT = Path("/var/lib/monaco-test")
WAIT_SECONDS = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """`monaco serve` and `monaco operator` set up the root logger (core/logs.py) when they start; a
    test that starts one in-process must not leave that set-up to the tests after it."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if isinstance(handler.formatter, logs.JsonFormatter | logs.PlainFormatter):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir outside /tmp that does not exist yet (the service creates it, as on a fresh install).

    The parents are world-readable like /var/lib, so that whatever keeps a sandboxed program out of the
    database and the other sandboxes is the service's own doing, not this fixture's.
    """
    TEST_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = TEST_ROOT / uuid.uuid4().hex
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Settings of a local back end whose database and sandboxes live in `data_dir`.

    Built with explicit values for what the tests rely on, so a MONACO_* variable in the developer's
    environment cannot change them; a test may still tweak fields before it asks for `app`/`client`.
    """
    return Settings(
        backend="local",
        data_dir=data_dir,
        db_path=None,
        sandbox_dir=None,
        max_workers=3,
        queue_size=100,
        default_language="python",
        output_limit_bytes=64 * 1024,
        wait_max_seconds=WAIT_SECONDS,
        # MONACO_TEST_SANDBOX=unshare runs the suite on the unshare path instead of the default nsrun one.
        sandbox=os.environ.get("MONACO_TEST_SANDBOX", "auto"),
        allow_unisolated=False,
        sandbox_tmp_mb=64,
        # Sandbox uids are per machine and RLIMIT_NPROC counts per uid: a fork bomb in another test run
        # on this machine (same default uids) would starve this one's programs of processes.
        sandbox_uid_base=random.randrange(100_000, 1_000_000_000, 16),
        languages_file=None,
    )


@pytest.fixture
def app(settings: Settings) -> Starlette:
    app: Starlette = create_app(settings)
    return app


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app` with its lifespan (workers, store, sandbox), yield a client of it, stop it afterwards."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=WAIT_SECONDS + 30
        ) as http,
    ):
        yield http


@pytest.fixture
async def client(app: Starlette, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, started with its lifespan and stopped afterwards."""
    async with serve(app) as http:
        yield http


def summary(result: dict[str, Any]) -> str:
    """What a failed assertion should show of a result: every field, the long ones cut short."""
    short = {k: (v[:300] + "..." if isinstance(v, str) and len(v) > 300 else v) for k, v in result.items()}
    return json.dumps(short)


async def wait_for_result(
    client: httpx.AsyncClient, submission_id: str, timeout: float = WAIT_SECONDS
) -> dict[str, Any]:
    """Poll GET /result until the submission has finished; fail the test if it does not in time."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/result", params={"id": submission_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"submission {submission_id} did not finish within {timeout} s: {body}")
        await asyncio.sleep(0.05)


async def submit(client: httpx.AsyncClient, language: str, code: str, input: str = "", **limits: Any) -> str:
    """POST /submit without waiting; returns the id."""
    response = await client.post("/submit", json={"language": language, "code": code, "input": input, **limits})
    assert response.status_code == 202, response.text
    submission_id: str = response.json()["id"]
    return submission_id


async def run_program(
    client: httpx.AsyncClient, language: str, code: str, input: str = "", **limits: Any
) -> dict[str, Any]:
    """Submit a program with `?wait=` and return its finished result (GET /result's JSON).

    `limits` are extra body fields such as `timeoutSeconds=1` or `memoryMb=64`.
    """
    body = {"language": language, "code": code, "input": input, **limits}
    response = await client.post("/submit", params={"wait": WAIT_SECONDS}, json=body)
    if response.status_code == 202:  # not finished within the wait: poll for it
        return await wait_for_result(client, response.json()["id"])
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["status"] in ("completed", "failed"), result
    return result
