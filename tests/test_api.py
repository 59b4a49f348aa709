"""The HTTP contract against the real app and the real local back end: every endpoint, every error code."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monaco.api.app import create_app
from monaco.api.backend import QueueStats, StoreUnavailable
from monaco.core.callback import Format
from monaco.core.languages import Language
from monaco.core.models import Limits, RunSpec, SubmissionView
from monaco.core.settings import Settings
from tests.contract_cases import BAD_REQUESTS

pytestmark = pytest.mark.anyio

HELLO = 'print("hello")'



@contextlib.asynccontextmanager
async def serve(settings: Settings, backend: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, backend)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


@pytest.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(Settings(data_dir=data_dir)) as c:
        yield c


async def finished(client: httpx.AsyncClient, sid: str, timeout: float = 30) -> dict[str, Any]:
    """Poll /status until the submission ends (the contract's way), with a deadline."""
    async with asyncio.timeout(timeout):
        while True:
            body = (await client.get("/status", params={"id": sid})).json()
            if body["status"] in ("completed", "failed"):
                result: dict[str, Any] = (await client.get("/result", params={"id": sid})).json()
                return result
            await asyncio.sleep(0.02)


# ---- POST /submit and the reads
async def test_submit_then_status_and_result(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit", json={"language": "python", "code": HELLO})
    assert r.status_code == 202
    assert set(r.json()) == {"id"}
    sid = r.json()["id"]
    status = (await client.get("/status", params={"id": sid})).json()
    assert status["id"] == sid and status["status"] in ("queued", "running", "completed")
    assert status["queuedAt"].endswith("Z")
    result = await finished(client, sid)
    assert result["status"] == "completed" and result["verdict"] == "ok"
    assert result["output"] == "hello\n"
    assert result["language"] == "python"
    assert result["exitCode"] == 0 and result["stderr"] == "" and result["compileOutput"] == ""
    assert result["executionTime"] > 0 and result["totalTime"] >= result["executionTime"]
    assert result["executionTimeFormatted"].endswith(("ms", "s"))
    assert result["startedAt"] >= result["queuedAt"] and result["completedAt"] >= result["startedAt"]
    assert result["truncated"] is False


async def test_default_language_is_used_when_left_out(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit?wait=30", json={"code": HELLO})
    assert r.status_code == 200
    assert r.json()["language"] == "python" and r.json()["output"] == "hello\n"


async def test_wait_returns_the_result_or_the_202(client: httpx.AsyncClient) -> None:
    done = await client.post("/submit?wait=30", json={"language": "python", "code": "print(6 * 7)"})
    assert done.status_code == 200 and done.json()["output"] == "42\n"
    slow = await client.post(
        "/submit?wait=0.2", json={"language": "python", "code": "import time; time.sleep(2)", "timeoutSeconds": 5}
    )
    assert slow.status_code == 202 and set(slow.json()) == {"id"}


@pytest.mark.parametrize(("body", "fragment"), BAD_REQUESTS)
async def test_bad_requests_are_400_with_a_message(client: httpx.AsyncClient, body: str, fragment: str) -> None:
    r = await client.post("/submit", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]


async def test_bad_wait_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit?wait=soon", json={"code": HELLO})
    assert r.status_code == 400 and "'wait'" in r.json()["error"]


async def test_oversized_code_and_input_are_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/submit", json={"language": "python", "code": "#" * (64 * 1024 + 1)})
    assert r.status_code == 413 and "65536" in r.json()["error"]
    r = await client.post("/submit", json={"language": "python", "code": HELLO, "input": "x" * (1024 * 1024 + 1)})
    assert r.status_code == 413 and "'input'" in r.json()["error"]
    r = await client.post(
        "/submit", content=b"{" + b" " * (3 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


async def test_status_and_result_need_a_known_id(client: httpx.AsyncClient) -> None:
    for path in ("/status", "/result"):
        r = await client.get(path)
        assert r.status_code == 400 and "'id'" in r.json()["error"]
        r = await client.get(path, params={"id": "no-such-id"})
        assert r.status_code == 404 and "no-such-id" in r.json()["error"]


async def test_queue_stats_shape_and_counts(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir, max_workers=2)) as client:
        body = (await client.get("/queue-stats")).json()
        assert body == {"queue_stats": {"queue_length": 0, "max_workers": 2, "running_jobs": 0}, "submissions": 0}
        await client.post("/submit?wait=30", json={"code": HELLO})
        body = (await client.get("/queue-stats")).json()
        assert body["submissions"] == 1


async def test_queue_full_is_429_with_retry_after(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir, max_workers=1, queue_size=2)) as client:
        sleeper = {"code": "import time; time.sleep(30)", "timeoutSeconds": 30}
        ids = [(await client.post("/submit", json=sleeper)).json()["id"]]
        # wait until the first one runs, so the queue holds exactly what follows
        async with asyncio.timeout(10):
            while (await client.get("/status", params={"id": ids[0]})).json()["status"] != "running":
                await asyncio.sleep(0.02)
        for _ in range(2):
            r = await client.post("/submit", json=sleeper)
            assert r.status_code == 202
            ids.append(r.json()["id"])
        r = await client.post("/submit", json=sleeper)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert "queue is full" in r.json()["error"]
        stats = (await client.get("/queue-stats")).json()["queue_stats"]
        assert stats == {"queue_length": 2, "max_workers": 1, "running_jobs": 1}
        # nothing accepted is lost: cancel them all and each ends as cancelled
        for sid in ids:
            assert (await client.delete(f"/submissions/{sid}")).status_code == 200
        for sid in ids:
            result = (await client.get("/result", params={"id": sid})).json()
            assert result["status"] == "failed" and result["verdict"] == "cancelled"


async def test_cancel_unknown_and_finished(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/submissions/nope")).status_code == 404
    sid = (await client.post("/submit?wait=30", json={"code": HELLO})).json()["id"]
    r = await client.delete(f"/submissions/{sid}")
    assert r.status_code == 409 and "already finished" in r.json()["error"]


class _DownBackend:
    """A back end whose store is unreachable, to check the 503 path without breaking a disk."""

    name = "down"

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, language: Language, code: str, stdin: str, limits: Limits,
                     spec: RunSpec | None = None, callback_url: str | None = None,
                     callback_format: Format = "monaco") -> SubmissionView:
        raise StoreUnavailable("the store is unreachable: disk I/O error")

    async def get(self, submission_id: str) -> SubmissionView | None:
        raise StoreUnavailable("the store is unreachable: disk I/O error")

    async def wait(self, submission_id: str, timeout: float) -> SubmissionView | None:
        return None

    async def cancel(self, submission_id: str) -> SubmissionView | None:
        return None

    async def stats(self) -> QueueStats:
        return QueueStats(0, 1, 0, 0)

    def ready(self) -> tuple[bool, str]:
        return False, "the store is unreachable"


async def test_store_unreachable_is_503(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir), _DownBackend()) as client:
        r = await client.post("/submit", json={"code": HELLO})
        assert r.status_code == 503 and "unreachable" in r.json()["error"]
        assert (await client.get("/status", params={"id": "x"})).status_code == 503
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "the store is unreachable"


async def test_a_broken_database_file_is_503_not_a_lost_submission(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir)) as client:
        ok = (await client.post("/submit?wait=30", json={"code": HELLO})).json()["id"]
        db = data_dir / "db" / "monaco.db"
        store = client._transport.app.state.backend.store  # type: ignore[attr-defined]
        store.close()  # the writer is gone: as if the disk had vanished
        r = await client.post("/submit", json={"code": HELLO})
        assert r.status_code == 503
        assert db.exists()
    async with serve(Settings(data_dir=data_dir)) as client:
        assert (await client.get("/result", params={"id": ok})).json()["output"] == "hello\n"


# ---- the other endpoints
async def test_languages_health_ready_metrics_openapi(client: httpx.AsyncClient) -> None:
    langs = (await client.get("/languages")).json()
    assert langs["default"] == "python"
    by_name = {lang["name"]: lang for lang in langs["languages"]}
    assert set(by_name) == {"python", "java", "c", "cpp"}
    assert by_name["java"]["limits"]["timeoutSeconds"] == 15 and by_name["java"]["limits"]["memoryMb"] == 400
    assert by_name["python"]["limits"] == {
        "timeoutSeconds": 10,
        "memoryMb": 100,
        "maxTimeoutSeconds": 30,
        "maxMemoryMb": 512,
    }
    assert by_name["cpp"]["compiled"] is True and "17" in by_name["cpp"]["version"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    await client.post("/submit?wait=30", json={"code": HELLO})
    metrics = (await client.get("/metrics")).text
    assert 'monaco_submissions_total{language="python",verdict="ok"} 1.0' in metrics
    assert "monaco_queue_length" in metrics and "monaco_execution_seconds_bucket" in metrics
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and {"/submit", "/status", "/result", "/queue-stats"} <= set(spec["paths"])


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404 and "openapi.json" in r.json()["error"]
    r = await client.get("/submit")
    assert r.status_code == 405 and "GET" in r.json()["error"]


async def test_cors_is_configurable(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir, cors_origins="https://class.example")) as client:
        r = await client.options(
            "/submit",
            headers={"origin": "https://class.example", "access-control-request-method": "POST"},
        )
        assert r.headers["access-control-allow-origin"] == "https://class.example"
        r = await client.get("/healthz", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_concurrent_submissions_all_finish_once(data_dir: Path) -> None:
    async with serve(Settings(data_dir=data_dir, max_workers=3)) as client:
        posts = await asyncio.gather(*(client.post("/submit", json={"code": f"print({i})"}) for i in range(30)))
        assert all(p.status_code == 202 for p in posts)
        results = await asyncio.gather(*(finished(client, p.json()["id"], 60) for p in posts))
        assert [r["output"] for r in results] == [f"{i}\n" for i in range(30)]
        assert (await client.get("/queue-stats")).json()["submissions"] == 30


def test_openapi_document_is_json_serialisable() -> None:
    from monaco.api.openapi import build_openapi

    assert json.loads(json.dumps(build_openapi("1")))["info"]["title"] == "Monaco"


async def test_refused_submissions_are_counted_by_reason(client: httpx.AsyncClient) -> None:
    """What the dashboard's rejection panel shows: every refusal of POST /submit, by reason."""

    def rejected(text: str) -> dict[str, float]:
        prefix = 'monaco_submissions_rejected_total{reason="'
        return {line[len(prefix):].split('"')[0]: float(line.split()[-1])
                for line in text.splitlines() if line.startswith(prefix)}

    assert (await client.post("/submit", json={"language": "cobol", "code": "x"})).status_code == 400
    assert (await client.post("/submit", json={"code": "x" * (64 * 1024 + 1)})).status_code == 413
    r = await client.post("/submit", content=b'{"code": "x"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert (await client.get("/status", params={"id": "nope"})).status_code == 404  # not a submission: not counted
    counts = rejected((await client.get("/metrics")).text)
    assert counts == {"bad_request": 1.0, "too_large": 1.0, "not_json": 1.0}
