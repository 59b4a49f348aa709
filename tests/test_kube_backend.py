"""The Kubernetes back end against a fake API server, through the real kubernetes client.

The fake speaks just enough of the API server's HTTP for CodeSubmissions: create, paged list with a
resourceVersion, watch as a chunked stream of JSON lines (ADDED, MODIFIED, DELETED, and ERROR 410 for
a version that was compacted away), get and delete. Tests change the fake's state the way the operator
or another replica would, and wait (with a deadline) for the back end to see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from kubernetes import client

from monaco.api import kube_cache
from monaco.api.app import create_app
from monaco.api.backend import Invalid, NotCancellable, QueueFull, StoreUnavailable
from monaco.api.drain import DrainRate
from monaco.api.kube import KubernetesBackend
from monaco.api.metrics import Metrics
from monaco.core import crd
from monaco.core.models import Limits, RunSpec, SourceFile, Status, TestCase, Verdict
from monaco.core.options import spec_of_resource
from monaco.core.settings import Settings
from tests.support import free_port, wait_until

pytestmark = pytest.mark.anyio

NS = "monaco-test"
PREFIX = f"/apis/monaco.dev/v1alpha1/namespaces/{NS}/codesubmissions"
LIMITS = Limits(timeout_seconds=5, memory_mb=128)


def schema_errors(value: Any, schema: dict[str, Any], path: str) -> list[dict[str, str]]:
    """The causes the API server would give for `value`, for the parts of OpenAPI the CRD uses."""
    kinds: dict[str, type | tuple[type, ...]] = {"object": dict, "string": str, "integer": int, "number": (int, float),
                                                 "boolean": bool, "array": list}
    kind = schema.get("type")
    if kind and (not isinstance(value, kinds[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return [{"field": path, "message": f"Invalid value: must be of type {kind}"}]
    causes = []
    if isinstance(value, dict):
        causes += [{"field": f"{path}.{k}", "message": "Required value"} for k in schema.get("required", [])
                   if k not in value]  # fmt: skip
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                causes += schema_errors(value[k], sub, f"{path}.{k}")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", math.inf):
            causes.append({"field": path, "message": f"Too many: must have at most {schema['maxItems']} items"})
        for i, item in enumerate(value):
            causes += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, str):
        if len(value.encode()) > schema.get("maxLength", math.inf):
            causes.append({"field": path, "message": f"Too long: may not be more than {schema['maxLength']} bytes"})
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append({"field": path, "message": f"Invalid value: should match '{schema['pattern']}'"})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
        if value < low or value > high or (schema.get("exclusiveMinimum") and value == low):
            causes.append({"field": path, "message": f"Invalid value: {value}: out of range"})
    return causes


def _status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code, "details": details}  # fmt: skip


class FakeApiServer:
    """An in-memory API server for one namespace of CodeSubmissions, on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.rv = 1
        self.compacted = 0  # a watch from this version or older gets 410 Gone
        self.generation = 0  # bumped to end every open watch
        self.closing = False
        self.cond = threading.Condition()
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.hold_posts = threading.Event()  # set: store the create, then never answer it
        self.release = threading.Event()
        self.silent_creates = False  # True: creates reach no watch, as if their events were compacted
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # ---- what the operator, another replica or etcd would do
    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, kind, copy.deepcopy(obj)))
        self.cond.notify_all()

    def add(self, name: str, status: dict[str, Any] | None = None, language: str = "python") -> None:
        with self.cond:
            obj: dict[str, Any] = {
                "apiVersion": "monaco.dev/v1alpha1", "kind": "CodeSubmission",
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-02T03:04:05Z"},
                "spec": {"language": language, "code": "print(1)", "input": "", "limits": {}},
            }  # fmt: skip
            if status:
                obj["status"] = status
            self.objects[name] = obj
            self._event("ADDED", obj)

    def set_status(self, name: str, **status: Any) -> None:
        with self.cond:
            obj = self.objects[name]
            obj["status"] = {**obj.get("status", {}), **status}
            self._event("MODIFIED", obj)

    def mark_deleting(self, name: str) -> None:
        """A DELETE held back by a finalizer: the resource stays, with a deletionTimestamp."""
        with self.cond:
            obj = self.objects[name]
            obj["metadata"]["deletionTimestamp"] = "2026-01-02T03:05:00Z"
            self._event("MODIFIED", obj)

    def delete(self, name: str) -> bool:
        with self.cond:
            obj = self.objects.pop(name, None)
            if obj is not None:
                self._event("DELETED", obj)
            return obj is not None

    def compact(self, change: Callable[[], object]) -> None:
        """Apply `change` without telling any watch, forget all history and end the open watches."""
        with self.cond:
            change()
            self.events.clear()
            self.compacted = self.rv
            self.rv += 1
            self.generation += 1
            self.cond.notify_all()

    def stirred(self, since: int, generation: int) -> bool:
        """Whether a watch that has seen `since` must wake up."""
        return self.closing or self.generation != generation or any(rv > since for rv, _, _ in self.events)

    def fail_next(self, method: str, code: int, body: dict[str, Any]) -> None:
        self.failures.setdefault(method, []).append((code, body))

    def count(self, method: str, *, watch: bool | None = None, name: str | None = None) -> int:
        return sum(
            1
            for m, path, query in list(self.requests)
            if m == method
            and (watch is None or ("watch" in query) == watch)
            and (name is None or path == f"{PREFIX}/{name}")
        )

    # ---- HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")  # so a stopped server is unreachable at once
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def _route(self, method: str) -> tuple[str | None, dict[str, list[str]]] | None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                fake.requests.append((method, parts.path, query))
                if fake.failures.get(method):
                    code, body = fake.failures[method].pop(0)
                    self._send(code, body)
                    return None
                if parts.path == PREFIX:
                    return None, query
                if parts.path.startswith(PREFIX + "/"):
                    return parts.path[len(PREFIX) + 1 :], query
                self._send(404, _status_body(404, "NotFound", f"no route {parts.path}"))
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self._route("POST") is None:
                    return
                causes = schema_errors(body.get("spec"), crd.spec_schema(), "spec")
                if causes:  # the CRD's own schema, as the API server would apply it
                    self._send(422, _status_body(422, "Invalid", "CodeSubmission is invalid", causes=causes))
                    return
                with fake.cond:
                    meta = body["metadata"]
                    meta.update(namespace=NS, uid=meta["name"], creationTimestamp=_now_seconds())
                    fake.objects[meta["name"]] = body
                    if fake.silent_creates:
                        fake.rv += 1
                        meta["resourceVersion"] = str(fake.rv)
                    else:
                        fake._event("ADDED", body)
                    answer = copy.deepcopy(body)
                if fake.hold_posts.is_set():
                    fake.release.wait(30)
                    return
                self._send(201, answer)

            def do_DELETE(self) -> None:
                route = self._route("DELETE")
                if route is None:
                    return
                name = route[0] or ""
                if fake.delete(name):
                    self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                else:
                    self._send(404, _status_body(404, "NotFound", f'codesubmissions "{name}" not found'))

            def do_GET(self) -> None:
                route = self._route("GET")
                if route is None:
                    return
                name, query = route
                if name is not None:
                    with fake.cond:
                        obj = copy.deepcopy(fake.objects.get(name))
                    if obj is None:
                        self._send(404, _status_body(404, "NotFound", f'codesubmissions "{name}" not found'))
                    else:
                        self._send(200, obj)
                elif query.get("watch") == ["true"]:
                    self._watch(query)
                else:
                    self._list(query)

            def _list(self, query: dict[str, list[str]]) -> None:
                limit = int(query.get("limit", ["500"])[0])
                start = int(query.get("continue", ["0"])[0])
                with fake.cond:
                    names = sorted(fake.objects)
                    items = [copy.deepcopy(fake.objects[n]) for n in names[start : start + limit]]
                    meta: dict[str, Any] = {"resourceVersion": str(fake.rv)}
                    if start + limit < len(names):
                        meta["continue"] = str(start + limit)
                self._send(200, {"apiVersion": "monaco.dev/v1alpha1", "kind": "CodeSubmissionList",
                                 "metadata": meta, "items": items})  # fmt: skip

            def _chunk(self, payload: dict[str, Any] | None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, query: dict[str, list[str]]) -> None:
                since = int(query["resourceVersion"][0])
                deadline = time.monotonic() + int(query.get("timeoutSeconds", ["60"])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    with fake.cond:
                        generation = fake.generation
                        if since <= fake.compacted:
                            gone = _status_body(410, "Expired", f"too old resource version: {since}")
                            self._chunk({"type": "ERROR", "object": gone})
                            self._chunk(None)
                            return
                    while True:
                        with fake.cond:
                            fake.cond.wait_for(
                                functools.partial(fake.stirred, since, generation),
                                timeout=max(0.0, deadline - time.monotonic()),
                            )
                            if fake.closing or fake.generation != generation or time.monotonic() >= deadline:
                                break
                            news = [(rv, k, o) for rv, k, o in fake.events if rv > since]
                        for rv, kind, obj in news:
                            self._chunk({"type": kind, "object": obj})
                            since = rv
                    self._chunk(None)

        return Handler


def _now_seconds() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


def make_settings(**overrides: Any) -> Settings:
    return Settings(**{"backend": "kubernetes", "namespace": NS, "queue_size": 100, "max_workers": 2, **overrides})


@contextlib.asynccontextmanager
async def backend_at(url: str, **overrides: Any) -> AsyncIterator[KubernetesBackend]:
    api_client = client.ApiClient(client.Configuration(host=url))
    backend = KubernetesBackend(make_settings(**overrides), Metrics(), api_client)
    backend.request_timeout = (1.0, 2.0)
    try:
        yield backend
    finally:
        began = time.monotonic()
        await backend.stop()
        assert time.monotonic() - began < 2, "stop() should end the watch promptly"
        api_client.close()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def started(fake: FakeApiServer, **overrides: Any) -> AsyncIterator[KubernetesBackend]:
    async with backend_at(fake.url, **overrides) as backend:
        await backend.start()
        assert backend.ready() == (True, "ok")
        yield backend


async def python(backend: KubernetesBackend, code: str = "print(1)") -> str:
    language = make_settings().registry.get("python")
    assert language is not None
    return (await backend.submit(language, code, "input", LIMITS)).id


async def caught_up(backend: KubernetesBackend, fake: FakeApiServer) -> None:
    """Events arrive in order, so once a new marker resource is seen, everything before it was too."""
    marker = f"marker-{time.monotonic_ns()}"
    fake.add(marker, {"phase": "completed", "verdict": "ok"}, language="marker")
    await wait_until(lambda: marker in backend.cache.views, 5, f"the watch to deliver {marker}")


def finished_total(backend: KubernetesBackend, verdict: str) -> float:
    metrics = backend.cache.metrics
    value = metrics.registry.get_sample_value("monaco_submissions_total", {"language": "python", "verdict": verdict})
    return value or 0.0


# ---- the tests


async def test_submit_creates_the_resource_and_its_status_flows_back_through_the_watch(
    fake: FakeApiServer,
) -> None:
    async with started(fake) as backend:
        sid = await python(backend, "print(input())")
        obj = fake.objects[sid]
        assert obj["apiVersion"] == "monaco.dev/v1alpha1" and obj["kind"] == "CodeSubmission"
        assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "monaco"}
        assert obj["spec"] == {"language": "python", "code": "print(input())", "input": "input",
                               "limits": {"timeoutSeconds": 5.0, "memoryMb": 128}}  # fmt: skip
        view = await backend.get(sid)
        assert view is not None and view.status is Status.PENDING and view.outcome is None

        fake.set_status(sid, phase="queued", queuedAt="2026-01-02T03:04:06.250Z")
        await wait_until(lambda: _status(backend, sid, Status.QUEUED), 5, "queued")
        view = await backend.get(sid)
        assert view is not None and view.queued_at == datetime(2026, 1, 2, 3, 4, 6, 250000, tzinfo=UTC)

        fake.set_status(sid, phase="running", startedAt="2026-01-02T03:04:07Z")
        await wait_until(lambda: _status(backend, sid, Status.RUNNING), 5, "running")
        assert (await backend.stats()).running_jobs == 1

        waiter = asyncio.create_task(backend.wait(sid, 10))
        await asyncio.sleep(0)
        assert not waiter.done()
        fake.set_status(
            sid, phase="completed", verdict="ok", completedAt="2026-01-02T03:04:08Z", output="input\n",
            stderr="", compileOutput="", exitCode=0, executionTimeMs=12.5, memoryKb=9000, truncated=False,
        )  # fmt: skip
        done = await asyncio.wait_for(waiter, 5)
        assert done is not None and done.status is Status.COMPLETED and done.outcome is not None
        assert done.outcome.verdict is Verdict.OK and done.outcome.output == "input\n"
        assert (done.outcome.exit_code, done.outcome.execution_ms, done.outcome.memory_kb) == (0, 12.5, 9000)
        assert done.result_body()["executionTime"] == 13 and done.result_body()["executionTimeMs"] == 12.5
        # the seed's totalTime: completedAt - queuedAt, the queue included (status queuedAt 03:04:06.250)
        assert done.result_body()["totalTime"] == 1750

        fake.set_status(sid, message="same result, patched again")
        await caught_up(backend, fake)
        assert finished_total(backend, "ok") == 1  # observed once per submission, not once per event

        lists = fake.count("GET", watch=False)
        for _ in range(50):
            await backend.get(sid)
            await backend.stats()
        assert fake.count("GET", watch=False) == lists == 1, "reads must come from the cache"


def _status(backend: KubernetesBackend, sid: str, status: Status) -> bool:
    view = backend.cache.views.get(sid)
    return view is not None and view.status is status


async def test_the_first_list_is_paged_and_maps_every_field(fake: FakeApiServer) -> None:
    for i in range(23):
        fake.add(f"old-{i:02}", {"phase": "completed", "verdict": "ok", "completedAt": "2026-01-02T03:04:09Z"})
    fake.add("pending-one")
    compile_error = {"phase": "failed", "verdict": "compile_error", "compileOutput": "x.c:1: error"}
    fake.add("failed-one", {**compile_error, "compileTimeMs": 80.0, "exitCode": 1, "truncated": True, "message": "no"})
    async with backend_at(fake.url) as backend:
        backend.list_page = 10
        assert backend.ready() == (False, "watch cache not synced yet")
        await backend.start()
        assert backend.ready() == (True, "ok")
        assert fake.count("GET", watch=False) == 3
        stats = await backend.stats()
        assert (stats.submissions, stats.queue_length, stats.running_jobs, stats.max_workers) == (25, 1, 0, 2)
        pending = await backend.get("pending-one")
        assert pending is not None and pending.status is Status.PENDING
        assert pending.queued_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # creationTimestamp
        failed = await backend.get("failed-one")
        assert failed is not None and failed.outcome is not None
        assert failed.status is Status.FAILED and failed.outcome.verdict is Verdict.COMPILE_ERROR
        assert failed.outcome.compile_output == "x.c:1: error" and failed.outcome.compile_ms == 80.0
        assert failed.outcome.truncated and failed.result_body()["message"] == "no"
        # Accepted by another replica (or an earlier process): counted there, not again here.
        assert finished_total(backend, "ok") == 0


async def test_queue_size_is_enforced_from_the_cache(fake: FakeApiServer) -> None:
    fake.add("waiting-already", {"phase": "queued"})
    async with started(fake, queue_size=3, max_workers=1) as backend:
        first = await python(backend)
        await python(backend)
        with pytest.raises(QueueFull) as full:
            await python(backend)
        assert full.value.retry_after == DrainRate.fallback  # no finish seen yet
        assert len(fake.objects) == 3, "a refused submission must not be created"
        fake.set_status(first, phase="running")
        await wait_until(lambda: _status(backend, first, Status.RUNNING), 5, "running")
        await python(backend)  # one left the queue, so there is room again


async def test_retry_after_follows_the_finishes_the_watch_sees(fake: FakeApiServer) -> None:
    fake.add("finished-long-ago", {"phase": "completed", "verdict": "ok", "completedAt": "2026-01-02T03:04:09Z"})
    async with started(fake, queue_size=2, max_workers=1) as backend:
        assert backend.cache.drain.per_second() is None, "a listed result is no finish seen now"
        first = await python(backend)
        await python(backend)
        fake.set_status(first, phase="completed", verdict="ok", completedAt="2026-01-02T03:04:09Z")
        await wait_until(lambda: _status(backend, first, Status.COMPLETED), 5, "completed")
        assert backend.cache.drain.per_second() is not None
        backend.cache.drain.began -= 600  # as if the watch had run for long: 1 finish in the last 60 s
        await python(backend)
        with pytest.raises(QueueFull) as full:
            await python(backend)
        assert full.value.retry_after == 120  # 2 waiting at 1/60 per second


async def test_a_validation_error_of_the_api_server_is_invalid(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        with pytest.raises(Invalid, match=r"^spec\.code: Too long: may not be more than 65536 bytes$"):
            await python(backend, code="x" * 70_000)
        assert fake.objects == {}
        assert (await backend.stats()).queue_length == 0


async def test_a_server_error_is_store_unavailable_and_nothing_is_left_behind(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        fake.fail_next("POST", 500, _status_body(500, "InternalError", "etcdserver: request timed out"))
        with pytest.raises(StoreUnavailable, match="the Kubernetes API server is unreachable: 500"):
            await python(backend)
        assert fake.objects == {}
        assert (await backend.stats()).queue_length == 0


async def test_a_create_that_times_out_is_taken_back(fake: FakeApiServer) -> None:
    """The API server stored it but never answered: the 503 must not leave a run behind."""
    async with started(fake) as backend:
        backend.request_timeout = (1.0, 0.3)
        fake.hold_posts.set()
        with pytest.raises(StoreUnavailable, match="the Kubernetes API server is unreachable"):
            await python(backend)
        assert fake.count("DELETE") == 1
        assert fake.objects == {}


async def test_an_api_server_that_went_away_is_store_unavailable(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        fake.stop()
        with pytest.raises(StoreUnavailable, match="the Kubernetes API server is unreachable"):
            await python(backend)
        await wait_until(lambda: _failing(backend), 5, "the watch to notice")
        assert backend.ready()[0], "a synced cache stays ready; submits answer 503 themselves"


def _failing(backend: KubernetesBackend) -> bool:
    return bool(backend._failure)


async def test_an_unreachable_api_server_at_start(anyio_backend: str) -> None:
    async with backend_at(f"http://127.0.0.1:{free_port()}") as backend:
        began = time.monotonic()
        await backend.start()
        assert time.monotonic() - began < 2, "start() returns after the first failed attempt"
        ok, why = backend.ready()
        assert not ok and why.startswith("watch cache not synced yet: the Kubernetes API server is unreachable")
        with pytest.raises(StoreUnavailable, match="not ready: watch cache not synced yet"):
            await python(backend)


async def test_cancel_deletes_the_resource_and_keeps_a_tombstone(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        sid = await python(backend)
        fake.set_status(sid, phase="running", startedAt="2026-01-02T03:04:07Z")
        await wait_until(lambda: _status(backend, sid, Status.RUNNING), 5, "running")
        waiter = asyncio.create_task(backend.wait(sid, 10))
        await asyncio.sleep(0)

        view = await backend.cancel(sid)
        assert fake.count("DELETE", name=sid) == 1 and sid not in fake.objects
        assert view is not None and view.status is Status.FAILED and view.outcome is not None
        assert view.outcome.verdict is Verdict.CANCELLED and view.outcome.message == "cancelled by request"
        assert view.started_at is not None and view.completed_at is not None
        assert await asyncio.wait_for(waiter, 5) == view

        await caught_up(backend, fake)  # the DELETED event came back and changed nothing
        assert await backend.get(sid) == view
        assert finished_total(backend, "cancelled") == 1
        with pytest.raises(NotCancellable):
            await backend.cancel(sid)
        assert await backend.cancel("no-such-submission") is None


async def test_a_cancel_the_api_server_cannot_take_is_store_unavailable(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        sid = await python(backend)
        fake.fail_next("DELETE", 503, _status_body(503, "ServiceUnavailable", "etcd is down"))
        with pytest.raises(StoreUnavailable, match="unreachable: 503"):
            await backend.cancel(sid)
        view = await backend.get(sid)
        assert view is not None and view.status is Status.PENDING and sid in fake.objects


async def test_the_gauges_follow_the_cache(fake: FakeApiServer) -> None:
    fake.add("a", {"phase": "queued"})
    fake.add("b", {"phase": "running"})
    async with started(fake) as backend:
        registry = backend.cache.metrics.registry
        assert registry.get_sample_value("monaco_queue_length") == 1
        assert registry.get_sample_value("monaco_running_jobs") == 1
        fake.set_status("a", phase="running")
        await caught_up(backend, fake)
        assert registry.get_sample_value("monaco_queue_length") == 0
        assert registry.get_sample_value("monaco_running_jobs") == 2


async def test_outputs_past_the_budget_are_read_from_the_api_server(fake: FakeApiServer) -> None:
    async with backend_at(fake.url) as backend:
        backend.cache.output_budget_chars = 250
        for i in range(3):
            fake.add(f"big-{i}", {"phase": "completed", "verdict": "ok", "output": str(i) * 100})
        await backend.start()
        assert backend.cache.output_chars <= 250 and backend.cache.stripped == {"big-0"}
        assert backend.cache.views["big-0"].outcome is not None and backend.cache.views["big-0"].outcome.output == ""

        newest = await backend.get("big-2")
        assert newest is not None and newest.outcome is not None and newest.outcome.output == "2" * 100
        assert fake.count("GET", name="big-2") == 0, "a result within the budget is served from the cache"
        oldest = await backend.wait("big-0", 1)
        assert oldest is not None and oldest.outcome is not None and oldest.outcome.output == "0" * 100
        assert fake.count("GET", name="big-0") == 1

        fake.delete("big-1")  # the TTL cleanup frees its share of the budget
        await caught_up(backend, fake)
        assert backend.cache.output_chars == 100 and "big-1" not in backend.cache.outputs


async def test_deletions_seen_by_the_watch(fake: FakeApiServer) -> None:
    """What another replica's cancel, a finalizer and the TTL cleanup look like from here."""
    fake.add("running", {"phase": "running"})
    fake.add("finalizing", {"phase": "queued"})
    fake.add("expired", {"phase": "completed", "verdict": "ok"})
    async with started(fake) as backend:
        fake.delete("running")
        fake.mark_deleting("finalizing")
        fake.delete("expired")
        await caught_up(backend, fake)
        for name in ("running", "finalizing"):
            view = await backend.get(name)
            assert view is not None and view.outcome is not None and view.outcome.verdict is Verdict.CANCELLED
        assert await backend.get("expired") is None


async def test_tombstones_are_forgotten_after_their_time(fake: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_cache, "TOMBSTONE_SECONDS", 0.0)
    async with started(fake) as backend:
        sid = await python(backend)
        await backend.cancel(sid)
        await backend.stats()
        assert await backend.get(sid) is None


async def test_410_gone_makes_it_list_again(fake: FakeApiServer) -> None:
    fake.add("lost-while-away", {"phase": "running"})
    fake.add("theirs-finished-while-away", {"phase": "running"})
    async with started(fake) as backend:
        assert fake.count("GET", watch=False) == 1
        mine = await python(backend)
        await caught_up(backend, fake)

        def behind_the_watchs_back() -> None:
            del fake.objects["lost-while-away"]
            for name in (mine, "theirs-finished-while-away"):
                fake.objects[name]["status"] = {"phase": "failed", "verdict": "timeout"}

        fake.compact(behind_the_watchs_back)
        await wait_until(lambda: fake.count("GET", watch=False) == 2, 5, "a second list")
        await wait_until(lambda: _status(backend, mine, Status.FAILED), 5, "the relisted status")
        assert _status(backend, "theirs-finished-while-away", Status.FAILED)
        lost = await backend.get("lost-while-away")
        assert lost is not None and lost.outcome is not None and lost.outcome.verdict is Verdict.CANCELLED
        # Each replica counts the submissions it accepted, so that the replicas' counters add up.
        assert finished_total(backend, "timeout") == 1

        await caught_up(backend, fake)  # and it watches again from the new list
        assert fake.count("GET", watch=False) == 2

        # Created here, then deleted behind the watch's back before it ever saw it: the next list
        # proves it gone, so it cannot sit in the queue for ever.
        fake.silent_creates = True
        sid = await python(backend)
        assert sid in backend.cache.unconfirmed
        fake.compact(lambda: fake.objects.pop(sid))
        await wait_until(lambda: fake.count("GET", watch=False) == 3, 5, "a third list")
        await wait_until(lambda: _status(backend, sid, Status.FAILED), 5, "the vanished submission to end")
        assert (await backend.stats()).queue_length == 0


async def test_an_unreadable_status_does_not_stop_the_watch(fake: FakeApiServer) -> None:
    fake.add("odd", {"phase": "running"})
    async with started(fake) as backend:
        fake.set_status("odd", phase="completed", verdict="ok", exitCode="zero")
        await caught_up(backend, fake)
        view = await backend.get("odd")
        assert view is not None and view.outcome is not None
        assert view.outcome.verdict is Verdict.SYSTEM_ERROR and view.outcome.message.startswith("unreadable status")


async def test_wait_returns_the_current_view_on_timeout(fake: FakeApiServer) -> None:
    async with started(fake) as backend:
        sid = await python(backend)
        view = await backend.wait(sid, 0.05)
        assert view is not None and view.status is Status.PENDING
        assert await backend.wait("no-such-submission", 0.05) is None


async def test_kubeconfig_is_used_without_a_client(
    fake: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
        "users": [{"name": "fake", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    backend = KubernetesBackend(make_settings(), Metrics())
    await backend.start()
    try:
        assert backend.ready() == (True, "ok")
    finally:
        await backend.stop()


@contextlib.asynccontextmanager
async def http_on(fake: FakeApiServer, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app on this back end, started, and a client of it."""
    api_client = client.ApiClient(client.Configuration(host=fake.url))
    settings = make_settings(**overrides)
    app = create_app(settings, KubernetesBackend(settings, Metrics(), api_client))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http,
        ):
            yield http
    finally:
        api_client.close()  # type: ignore[no-untyped-call]


async def test_the_http_contract_on_this_back_end(fake: FakeApiServer) -> None:
    async with http_on(fake) as http:
        response = await http.post("/submit", json={"language": "python", "code": "print(1)"})
        assert response.status_code == 202, response.text
        sid = response.json()["id"]
        assert (await http.get("/status", params={"id": sid})).json()["status"] == "pending"
        fake.set_status(sid, phase="running")
        await wait_until(lambda: _running(http, sid), 5, "running over HTTP")
        stats = (await http.get("/queue-stats")).json()
        assert stats["queue_stats"] == {"queue_length": 0, "max_workers": 2, "running_jobs": 1}
        cancelled = await http.delete(f"/submissions/{sid}")
        assert cancelled.status_code == 200 and cancelled.json()["verdict"] == "cancelled"
        assert (await http.get("/result", params={"id": sid})).json()["message"] == "cancelled by request"
        # what the API server's own validation refuses is the client's to change: a 400 in its words
        cause = {"field": "spec.code", "message": "Invalid value: rejected by a policy"}
        fake.fail_next("POST", 422, _status_body(422, "Invalid", "CodeSubmission is invalid", causes=[cause]))
        refused = await http.post("/submit", json={"language": "python", "code": "print(2)"})
        assert refused.status_code == 400
        assert refused.json()["error"] == "spec.code: Invalid value: rejected by a policy"
        assert (await http.get("/readyz")).status_code == 200


async def _running(http: httpx.AsyncClient, sid: str) -> bool:
    status: str = (await http.get("/status", params={"id": sid})).json()["status"]
    return status == "running"


async def test_the_judge_fields_go_into_the_spec_and_results_come_back(fake: FakeApiServer) -> None:
    """Issue 11's fields round-trip: the resource's spec holds them (valid against the CRD, which the fake
    server checks), and a status with test cases, a signal and wrong_answer reads back as the API shows it."""
    spec = RunSpec(expected_output=None, args=("a b", "$(id)"), files=(SourceFile(name="h.py", content="X = 1"),),
                   redirect_stderr_to_stdout=True,
                   test_cases=(TestCase(input="1", expected_output="1"), TestCase(input="2")))
    language = make_settings().registry.get("python")
    assert language is not None
    async with started(fake) as backend:
        sid = (await backend.submit(language, "print(input())", "", LIMITS, spec)).id
        obj = fake.objects[sid]
        assert obj["spec"]["args"] == ["a b", "$(id)"]
        assert obj["spec"]["files"] == [{"name": "h.py", "content": "X = 1"}]
        assert obj["spec"]["testCases"] == [{"input": "1", "expectedOutput": "1"}, {"input": "2"}]
        assert obj["spec"]["redirectStderrToStdout"] is True and "compilerOptions" not in obj["spec"]
        assert spec_of_resource(obj["spec"]) == spec
        fake.set_status(
            sid, phase="failed", verdict="wrong_answer", completedAt="2026-01-02T03:04:08Z", output="3\n",
            exitCode=0, signal=None, message="test case 1: differs",
            testCases=[{"verdict": "wrong_answer", "output": "3\n", "exitCode": 0, "executionTimeMs": 1.5},
                       {"verdict": "runtime_error", "output": "", "exitCode": 139, "signal": 11}],
        )
        done = await backend.wait(sid, 5)
        assert done is not None and done.outcome is not None
        body = done.result_body()
        assert body["verdict"] == "wrong_answer" and body["status"] == "failed"
        assert [c["verdict"] for c in body["testCases"]] == ["wrong_answer", "runtime_error"]
        assert body["testCases"][1]["signal"] == 11 and body["signal"] is None and body["signalName"] is None


async def test_a_callback_url_goes_into_the_spec_and_its_delivery_comes_back_in_the_result(
    fake: FakeApiServer,
) -> None:
    async with http_on(fake, callback_allow="hooks.example.com") as http:
        refused = await http.post("/submit", json={"code": "print(1)", "callbackUrl": "http://10.96.0.1/"})
        assert refused.status_code == 400 and "not on this server's callback allowlist" in refused.json()["error"]
        assert fake.objects == {}
        url = "https://hooks.example.com/monaco?t=1"
        response = await http.post("/submit", json={"code": "print(1)", "callbackUrl": url})
        assert response.status_code == 202, response.text
        sid = response.json()["id"]
        assert fake.objects[sid]["spec"]["callbackUrl"] == url and "callbackFormat" not in fake.objects[sid]["spec"]
        result = (await http.get("/result", params={"id": sid})).json()
        assert result["callback"] == {"state": "pending", "attempts": 0, "lastError": None}
        fake.set_status(sid, phase="completed", verdict="ok", output="1\n", completedAt=_now_seconds(),
                        callback={"state": "failed", "attempts": 5, "lastError": "HTTP 503",
                                  "nextAttemptAt": _now_seconds()})  # fmt: skip

        async def settled() -> bool:
            body = (await http.get("/result", params={"id": sid})).json()
            return bool(body["callback"]["state"] == "failed")

        await wait_until(settled, 5, "the callback state over HTTP")
        result = (await http.get("/result", params={"id": sid})).json()
        assert result["callback"] == {"state": "failed", "attempts": 5, "lastError": "HTTP 503"}
        plain = (await http.post("/submit", json={"code": "print(1)"})).json()["id"]
        assert "callbackUrl" not in fake.objects[plain]["spec"]
        assert (await http.get("/result", params={"id": plain})).json()["callback"] is None


async def test_the_judge0_api_asks_the_operator_for_judge0s_callback(fake: FakeApiServer) -> None:
    async with http_on(fake, callback_allow="hooks.example.com") as http:
        url = "https://hooks.example.com/judge0"
        body = {"source_code": "print(1)", "language_id": 71, "callback_url": url}
        response = await http.post("/judge0/submissions", json=body)
        assert response.status_code == 201, response.text
        spec = fake.objects[response.json()["token"]]["spec"]
        assert spec["callbackUrl"] == url and spec["callbackFormat"] == "judge0"
        plain = (await http.post("/judge0/submissions", json={"source_code": "print(1)", "language_id": 71})).json()
        assert "callbackFormat" not in fake.objects[plain["token"]]["spec"]
