"""The Kubernetes back end: every submission is a CodeSubmission resource; reads come from a watch cache.

Clients poll /status many times per submission, so reads never go to the API server: one background
thread lists the namespace's CodeSubmissions and then watches them, keeping a small view of each in
memory. Writes (create, delete) do go to the API server, and a submit answers only once the API server
has accepted the resource, because etcd is the store and a 202 promises durability.

Every API replica runs its own cache, and they agree because each one derives its views from the same
events: a resource deleted before it finished is a cancelled submission (kept as a tombstone for an
hour so that a client polling after its cancel still gets an answer), a finished one that is deleted
has only been cleaned up (TTL) and is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any
from uuid import uuid4

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from monaco.api.backend import NotCancellable, QueueFull, QueueStats, StoreUnavailable
from monaco.api.metrics import Metrics
from monaco.core.languages import Language
from monaco.core.models import Limits, Outcome, Status, SubmissionView, Verdict, iso, utcnow
from monaco.core.settings import Settings

log = logging.getLogger("monaco.kube")

GROUP, VERSION, PLURAL, KIND = "monaco.dev", "v1alpha1", "codesubmissions", "CodeSubmission"
LABELS = {"app.kubernetes.io/managed-by": "monaco"}
# creationTimestamp has whole seconds; this keeps the queuedAt we answer with the same on every replica.
SUBMITTED_AT = "monaco.dev/submitted-at"
TOMBSTONE_SECONDS = 3600.0
CANCELLED = "cancelled by request"
_PHASES = {s.value: s for s in Status}
_VERDICTS = {v.value: v for v in Verdict}


def _client_from_environment() -> client.ApiClient:
    """In a pod, the service account; elsewhere KUBECONFIG. Never the library's global default config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # Read KUBECONFIG now: the library reads it once, when it is imported.
        kubeconfig = os.environ.get("KUBECONFIG") or None
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _read(obj: dict[str, Any]) -> tuple[str, SubmissionView, bool]:
    """(name, view, being deleted) of a resource; the view keeps no code, input or raw dict."""
    meta = obj.get("metadata") or {}
    st = obj.get("status") or {}
    name = str(meta.get("name", ""))
    phase = _PHASES.get(st.get("phase") or "", Status.PENDING)
    queued_at = (
        _time(st.get("queuedAt"))
        or _time((meta.get("annotations") or {}).get(SUBMITTED_AT))
        or _time(meta.get("creationTimestamp"))
        or utcnow()
    )
    outcome = None
    if phase.finished:
        default = Verdict.OK if phase is Status.COMPLETED else Verdict.SYSTEM_ERROR
        try:
            outcome = Outcome(
                verdict=_VERDICTS.get(st.get("verdict") or "", default),
                output=st.get("output") or "",
                stderr=st.get("stderr") or "",
                compile_output=st.get("compileOutput") or "",
                exit_code=st.get("exitCode"),
                execution_ms=st.get("executionTimeMs"),
                compile_ms=st.get("compileTimeMs"),
                memory_kb=st.get("memoryKb"),
                truncated=bool(st.get("truncated")),
                message=st.get("message") or "",
            )
        except ValidationError as exc:  # one bad status must not stall the watch of all the others
            outcome = Outcome(verdict=Verdict.SYSTEM_ERROR, message=f"unreadable status: {exc.errors()[0]['msg']}")
    view = SubmissionView(
        id=name,
        language=str((obj.get("spec") or {}).get("language", "")),
        status=phase,
        queued_at=queued_at,
        started_at=_time(st.get("startedAt")),
        completed_at=_time(st.get("completedAt")),
        outcome=outcome,
        message=st.get("message") or "",
    )
    return name, view, bool(meta.get("deletionTimestamp"))


def _api_message(exc: ApiException) -> str:
    """The API server's own words (a Status object), field by field when it names the fields."""
    try:
        body = json.loads(exc.body or "")
        causes = (body.get("details") or {}).get("causes") or []
        parts = [f"{c['field']}: {c.get('message', '')}" if c.get("field") else c.get("message", "") for c in causes]
        return "; ".join(p for p in parts if p) or body.get("message") or str(exc.reason)
    except (ValueError, AttributeError, TypeError, KeyError):
        return str(exc.reason)


def _unavailable(exc: Exception) -> StoreUnavailable:
    if isinstance(exc, ApiException) and exc.status and exc.status < 500:
        return StoreUnavailable(f"the Kubernetes API server refused the request ({exc.status}): {_api_message(exc)}")
    if isinstance(exc, ApiException):
        why = f"{exc.status} {exc.reason}"
    elif isinstance(exc, urllib3.exceptions.MaxRetryError):
        why = str(exc.reason)
    else:
        why = f"{type(exc).__name__}: {exc}"
    return StoreUnavailable(f"the Kubernetes API server is unreachable: {why}")


class KubernetesBackend:
    name = "kubernetes"
    request_timeout: tuple[float, float] = (5.0, 15.0)  # (connect, read) of every request but the watch
    watch_seconds = 300  # the API server ends each watch after this; it resumes from the last version
    list_page = 250  # pages bound the memory a relist takes, whatever the size of the outputs
    backoff_max = 30.0
    # Outputs can be large (the CRD allows 256 KiB per result); past this many characters in all, the
    # oldest results keep only their status here, and get() reads their outputs from the API server.
    output_budget_chars = 64 * 1024 * 1024

    def __init__(self, settings: Settings, metrics: Metrics, api_client: client.ApiClient | None = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._owns_client = api_client is None
        self._client: Any = api_client if api_client is not None else _client_from_environment()
        self._api: Any = client.CustomObjectsApi(self._client)  # its custom-object calls return plain dicts
        self._lock = threading.Lock()  # guards everything below; the watch thread and the loop share it
        self._views: dict[str, SubmissionView] = {}
        self._counts: Counter[Status] = Counter()  # of the views above, kept as they change
        self._outputs: dict[str, int] = {}  # name -> characters of output, oldest change first
        self._output_chars = 0
        self._stripped: set[str] = set()  # views whose outputs were dropped to stay in the budget
        self._unconfirmed: dict[str, float] = {}  # created here, not yet seen by the watch: name -> when
        self._tombstones: dict[str, float] = {}  # name -> monotonic time it is forgotten
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._creating = 0
        self._run_seconds = 1.0  # moving average of start-to-end time, for Retry-After
        self._synced = threading.Event()
        self._attempted = threading.Event()
        self._stopping = threading.Event()
        self._failure = ""
        self._watch: Any = None  # the current watch.Watch, which stop() interrupts
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    async def start(self) -> None:
        """Start the watch and wait for its first list (or first failure), so a healthy start is ready."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="monaco-kube-watch", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._attempted.wait, sum(self.request_timeout))

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._end_watch, self._thread)
        if self._owns_client:
            self._client.close()

    def _end_watch(self, thread: threading.Thread) -> None:
        # Watch.stop() shuts the socket down, but only once the stream exists, so repeat it until the
        # thread notices; a thread stuck in a list request is a daemon and is left to its timeout.
        deadline = time.monotonic() + 5
        while thread.is_alive() and time.monotonic() < deadline:
            if self._watch is not None:
                self._watch.stop()
            thread.join(0.05)

    def ready(self) -> tuple[bool, str]:
        # Once synced it stays ready through API-server outages: submits then answer 503 themselves,
        # which tells clients more than a replica that vanished from the Service.
        if self._synced.is_set():
            return True, "ok"
        return False, "watch cache not synced yet" + (f": {self._failure}" if self._failure else "")

    # ---- the contract
    async def submit(self, language: Language, code: str, stdin: str, limits: Limits) -> SubmissionView:
        if not self._synced.is_set():
            raise StoreUnavailable(f"the Kubernetes back end is not ready: {self.ready()[1]}")
        with self._lock:
            waiting = self._counts[Status.PENDING] + self._counts[Status.QUEUED] + self._creating
            if waiting >= self._settings.queue_size:
                raise QueueFull(self._settings.queue_size, self._retry_after(waiting))
            self._creating += 1  # so that concurrent submits count each other
        name, now = str(uuid4()), utcnow()
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "labels": LABELS, "annotations": {SUBMITTED_AT: iso(now)}},
            "spec": {
                "language": language.name,
                "code": code,
                "input": stdin,
                "limits": limits.model_dump(by_alias=True),
            },
        }
        try:
            created = await asyncio.to_thread(self._create, name, body)
        except BaseException:
            with self._lock:
                self._creating -= 1
            raise
        _, view, _ = _read(created)
        with self._lock:
            self._creating -= 1
            if name in self._views:  # the watch was faster
                return self._views[name]
            self._set(name, view)
            self._unconfirmed[name] = time.monotonic()
        return view

    async def get(self, submission_id: str) -> SubmissionView | None:
        with self._lock:
            view = self._views.get(submission_id)
            stripped = submission_id in self._stripped
        if view is None or not stripped:
            return view
        return await asyncio.to_thread(self._fetch, submission_id, view)

    async def wait(self, submission_id: str, timeout: float) -> SubmissionView | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:  # look and register at once, so no event slips between the two
                view = self._views.get(submission_id)
                if view is None or view.status.finished or loop.time() >= deadline:
                    break
                woken: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(submission_id, set()).add(woken)
            try:
                await asyncio.wait_for(woken, deadline - loop.time())
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    self._waiters.get(submission_id, set()).discard(woken)
                    if not self._waiters.get(submission_id, True):
                        del self._waiters[submission_id]
        return await self.get(submission_id) if view is not None and view.status.finished else view

    async def cancel(self, submission_id: str) -> SubmissionView | None:
        with self._lock:
            view = self._views.get(submission_id)
        if view is None:
            return None
        if view.status.finished:
            raise NotCancellable(f"submission {submission_id} has already finished ({view.status.value})")
        await asyncio.to_thread(self._delete, submission_id)
        with self._lock:
            current = self._views.get(submission_id, view)
            if not current.status.finished:
                self._bury(submission_id, current)
            view = self._views.get(submission_id, current)
        self._wake(submission_id)
        return view

    async def stats(self) -> QueueStats:
        with self._lock:
            self._prune()
            waiting = self._counts[Status.PENDING] + self._counts[Status.QUEUED]
            return QueueStats(waiting, self._settings.max_workers, self._counts[Status.RUNNING], len(self._views))

    # ---- writes to the API server (in a worker thread)
    def _create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        ns = self._settings.namespace
        try:
            created: dict[str, Any] = self._api.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, body, _request_timeout=self.request_timeout
            )
            return created
        except ApiException as exc:
            if exc.status == 422:
                raise ValueError(_api_message(exc)) from None
            if exc.status and exc.status >= 500:
                self._take_back(name)
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            self._take_back(name)
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc

    def _fetch(self, name: str, stripped: SubmissionView) -> SubmissionView:
        try:
            obj = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self._settings.namespace, PLURAL, name, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile; its DELETED event is on the way
                return stripped
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc
        return _read(obj)[1]

    def _take_back(self, name: str) -> None:
        """The create may have been stored although it failed for us: delete it, so a 503 means nothing
        was stored and the client's retry does not run the program twice."""
        try:
            self._delete(name)
        except StoreUnavailable as exc:
            log.warning("could not take back a failed create", extra={"submission": name, "error": str(exc)})

    def _delete(self, name: str) -> None:
        try:
            self._api.delete_namespaced_custom_object(
                GROUP, VERSION, self._settings.namespace, PLURAL, name,
                propagation_policy="Background", _request_timeout=self.request_timeout,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc

    # ---- the cache (callers hold the lock)
    def _set(self, name: str, view: SubmissionView | None) -> None:
        """The one place the cache changes, so that the counts, the output budget and the gauges follow."""
        before = self._views.pop(name, None)
        if before is not None:
            self._counts[before.status] -= 1
            self._output_chars -= self._outputs.pop(name, 0)
            self._stripped.discard(name)
        if view is not None:
            self._views[name] = view
            self._counts[view.status] += 1
            o = view.outcome
            size = len(o.output) + len(o.stderr) + len(o.compile_output) if o else 0
            if size:
                self._outputs[name] = size
                self._output_chars += size
            while self._output_chars > self.output_budget_chars:
                self._strip(next(iter(self._outputs)))
        self._metrics.queue_length.set(self._counts[Status.PENDING] + self._counts[Status.QUEUED])
        self._metrics.running.set(self._counts[Status.RUNNING])

    def _strip(self, name: str) -> None:
        """Drop the outputs of the result that changed longest ago; get() fetches them if they are asked for."""
        self._output_chars -= self._outputs.pop(name)
        view = self._views[name]
        if view.outcome is not None:
            outcome = view.outcome.model_copy(update={"output": "", "stderr": "", "compile_output": ""})
            self._views[name] = view.model_copy(update={"outcome": outcome})
            self._stripped.add(name)

    def _retry_after(self, waiting: int) -> int:
        workers: int = self._settings.max_workers
        return max(1, min(300, math.ceil(waiting / workers * self._run_seconds)))

    def _put(self, name: str, view: SubmissionView) -> None:
        before = self._views.get(name)
        self._set(name, view)
        if view.status.finished and (before is None or not before.status.finished):
            if view.started_at and view.completed_at:
                spent = (view.completed_at - view.started_at).total_seconds()
                self._run_seconds = 0.8 * self._run_seconds + 0.2 * max(spent, 0.1)
            # What had finished before this process started was counted by the process that saw it.
            if self._synced.is_set():
                self._metrics.observe_finished(view)

    def _bury(self, name: str, view: SubmissionView) -> None:
        """A resource deleted before it finished is a cancelled submission, on every replica alike."""
        if not view.status.finished:
            view = view.model_copy(
                update={
                    "status": Status.FAILED,
                    "completed_at": utcnow(),
                    "outcome": Outcome(verdict=Verdict.CANCELLED, message=CANCELLED),
                    "message": CANCELLED,
                }
            )
        self._put(name, view)
        self._unconfirmed.pop(name, None)
        self._tombstones[name] = time.monotonic() + TOMBSTONE_SECONDS

    def _gone(self, name: str, last: SubmissionView) -> None:
        if name in self._tombstones:
            return
        if not last.status.finished or (last.outcome and last.outcome.verdict is Verdict.CANCELLED):
            self._bury(name, last)
        else:
            self._set(name, None)  # finished and cleaned up after its TTL

    def _prune(self) -> None:
        now = time.monotonic()
        for name in [n for n, until in self._tombstones.items() if until <= now]:
            del self._tombstones[name]
            self._set(name, None)

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        name, view, deleting = _read(obj)
        with self._lock:
            if kind == "DELETED":
                self._unconfirmed.pop(name, None)
                self._gone(name, view)
            else:
                self._take(name, view, deleting)
            self._prune()
        self._wake(name)

    def _take(self, name: str, view: SubmissionView, deleting: bool) -> None:
        """A resource as the API server has it now (an ADDED or MODIFIED event, or a listed item)."""
        self._unconfirmed.pop(name, None)
        if name in self._tombstones:
            pass  # late news of a submission already cancelled
        elif deleting and not view.status.finished:
            self._bury(name, view)
        else:
            self._put(name, view)

    def _forget_unlisted(self, listed: set[str], began: float) -> None:
        """After a full list, read what vanished while nobody watched as DELETED events would; a
        submission created here after the list began may be missing from it and still exist."""
        with self._lock:
            for name, last in list(self._views.items()):
                if name not in listed and self._unconfirmed.get(name, 0.0) < began:
                    self._unconfirmed.pop(name, None)
                    self._gone(name, last)
            self._prune()
            names = list(self._waiters)
        for name in names:
            self._wake(name)

    def _wake(self, name: str) -> None:
        """Resolve the waiters of `name` on their own loops; safe from any thread."""
        with self._lock:
            waiters = self._waiters.pop(name, set())
        for woken in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
                woken.get_loop().call_soon_threadsafe(_resolve, woken)

    # ---- the watch thread
    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                version = self._relist()
                self._synced.set()
                self._failure, delay = "", 0.5
                self._attempted.set()
                while not self._stopping.is_set():
                    version = self._watch_from(version)
            except ApiException as exc:
                if exc.status == 410:  # our version was compacted away: list again, at once
                    log.info("watch expired; listing again")
                    continue
                self._note(exc)
            except Exception as exc:  # whatever broke the stream, list again after a pause
                self._note(exc)
            self._attempted.set()
            self._stopping.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _note(self, exc: Exception) -> None:
        if not self._stopping.is_set():
            self._failure = str(_unavailable(exc))
            log.warning("watch of codesubmissions failed; retrying", extra={"error": self._failure})

    def _relist(self) -> str:
        """List page by page into the cache, so that memory stays within one page plus the budget."""
        listed: set[str] = set()
        token: str | None = None
        began = time.monotonic()
        while True:
            page = self._api.list_namespaced_custom_object(
                GROUP, VERSION, self._settings.namespace, PLURAL,
                limit=self.list_page, _continue=token, _request_timeout=self.request_timeout,
            )  # fmt: skip
            items = [_read(obj) for obj in page.get("items") or []]
            meta = page.get("metadata") or {}
            del page  # before the next page arrives
            with self._lock:
                for name, view, deleting in items:
                    listed.add(name)
                    self._take(name, view, deleting)
            token = meta.get("continue") or None
            if token is None:
                self._forget_unlisted(listed, began)
                return str(meta.get("resourceVersion", ""))

    def _watch_from(self, version: str) -> str:
        """One watch request, until the API server ends it; the version to resume from."""
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(
            self._api.list_namespaced_custom_object,
            GROUP, VERSION, self._settings.namespace, PLURAL,
            resource_version=version, allow_watch_bookmarks=True, timeout_seconds=self.watch_seconds,
            _request_timeout=(self.request_timeout[0], self.watch_seconds + 30),
        )  # fmt: skip
        for event in stream:
            obj = event["raw_object"]
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(event["type"], obj)
            if self._stopping.is_set():
                break
        return version


def _resolve(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
