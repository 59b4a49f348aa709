"""The Kubernetes back end: every submission is a CodeSubmission resource; reads come from a watch cache.

Clients poll /status many times per submission, so reads never go to the API server: one background
thread lists the namespace's CodeSubmissions and then watches them, feeding a cache of small views
(kube_cache.py says what the events mean). Writes do go to the API server, and a submit answers only
once the API server has accepted the resource, because etcd is the store and a 202 promises that
nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any
from uuid import uuid4

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from monaco.api.backend import Invalid, NotCancellable, QueueStats, StoreUnavailable
from monaco.api.metrics import Metrics
from monaco.core import kube
from monaco.core.callback import Format
from monaco.core.languages import Language
from monaco.core.models import Limits, RunSpec, SubmissionView, iso, utcnow
from monaco.core.resource import API_VERSION, GROUP, KIND, PLURAL, SUBMITTED_AT_ANNOTATION, VERSION
from monaco.core.settings import Settings

from .kube_cache import ViewCache, read_resource

log = logging.getLogger("monaco.kube")

LABELS = {"app.kubernetes.io/managed-by": "monaco"}


def _unavailable(exc: Exception) -> StoreUnavailable:
    if isinstance(exc, ApiException) and exc.status and exc.status < 500:
        why = kube.api_message(exc)
        return StoreUnavailable(f"the Kubernetes API server refused the request ({exc.status}): {why}")
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
    list_page = 250  # pages bound the memory a list takes, however large the outputs are
    backoff_max = 30.0

    def __init__(self, settings: Settings, metrics: Metrics, api_client: client.ApiClient | None = None) -> None:
        self.settings = settings
        self.cache = ViewCache(metrics)
        self._owns_client = api_client is None
        self._client: Any = api_client if api_client is not None else kube.api_client()
        self._api: Any = client.CustomObjectsApi(self._client)  # its custom-object calls return plain dicts
        self._synced = threading.Event()
        self._attempted = threading.Event()  # the first list succeeded or failed
        self._stopping = threading.Event()
        self._failure = ""  # why the watch last failed, for ready()
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
    async def submit(self, language: Language, code: str, stdin: str, limits: Limits,
                     spec: RunSpec | None = None, callback_url: str | None = None,
                     callback_format: Format = "monaco") -> SubmissionView:
        if not self._synced.is_set():  # without the cache, QUEUE_SIZE cannot be enforced
            raise StoreUnavailable(f"the Kubernetes back end is not ready: {self.ready()[1]}")
        self.cache.reserve(self.settings.queue_size)
        name = str(uuid4())
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "labels": LABELS, "annotations": {SUBMITTED_AT_ANNOTATION: iso(utcnow())}},
            "spec": {
                "language": language.name,
                "code": code,
                "input": stdin,
                "limits": limits.model_dump(by_alias=True),
                **(spec.wire() if spec is not None else {}),
                **({"callbackUrl": callback_url} if callback_url else {}),
                **({"callbackFormat": callback_format} if callback_url and callback_format != "monaco" else {}),
            },
        }
        try:
            created = await asyncio.to_thread(self._create, name, body)
        except BaseException:
            self.cache.abandon()
            raise
        return self.cache.created(name, read_resource(created)[1])

    async def get(self, submission_id: str) -> SubmissionView | None:
        view, stripped = self.cache.get(submission_id)
        if view is None or not stripped:
            return view
        return await asyncio.to_thread(self._fetch, submission_id, view)

    async def wait(self, submission_id: str, timeout: float) -> SubmissionView | None:
        view = await self.cache.wait(submission_id, timeout)
        return await self.get(submission_id) if view is not None and view.status.finished else view

    async def cancel(self, submission_id: str) -> SubmissionView | None:
        view, _ = self.cache.get(submission_id)
        if view is None:
            return None
        if view.status.finished:
            raise NotCancellable(f"submission {submission_id} has already finished ({view.status.value})")
        await asyncio.to_thread(self._delete, submission_id)
        return self.cache.cancelled(submission_id, view)

    async def stats(self) -> QueueStats:
        waiting, running, total = self.cache.counts_now()
        return QueueStats(waiting, self.settings.max_workers, running, total)

    # ---- requests to the API server (in worker threads)
    def _create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        ns = self.settings.namespace
        try:
            created: dict[str, Any] = self._api.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, body, _request_timeout=self.request_timeout
            )
            return created
        except ApiException as exc:
            if exc.status == 422:
                raise Invalid(kube.api_message(exc)) from None
            if exc.status and exc.status >= 500:
                self._take_back(name)
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            self._take_back(name)
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc

    def _take_back(self, name: str) -> None:
        """The create may have been stored although it failed for us: delete it, so that a 503 means
        nothing was stored and the client's retry does not run the program twice."""
        try:
            self._delete(name)
        except StoreUnavailable as exc:
            log.warning("could not take back a failed create", extra={"submission": name, "error": str(exc)})

    def _delete(self, name: str) -> None:
        try:
            self._api.delete_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, name,
                propagation_policy="Background", _request_timeout=self.request_timeout,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc

    def _fetch(self, name: str, stripped: SubmissionView) -> SubmissionView:
        """A result whose outputs the cache dropped to stay within its budget."""
        try:
            obj = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, name, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:  # deleted meanwhile; its DELETED event is on the way
                return stripped
            raise _unavailable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unavailable(exc) from exc
        return read_resource(obj)[1]

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
                GROUP, VERSION, self.settings.namespace, PLURAL,
                limit=self.list_page, _continue=token, _request_timeout=self.request_timeout,
            )  # fmt: skip
            items = [read_resource(obj) for obj in page.get("items") or []]
            meta = page.get("metadata") or {}
            del page  # before the next page arrives
            self.cache.take_page(items)
            listed.update(name for name, _, _ in items)
            token = meta.get("continue") or None
            if token is None:
                self.cache.forget_unlisted(listed, began)
                return str(meta.get("resourceVersion", ""))

    def _watch_from(self, version: str) -> str:
        """One watch request, until the API server ends it; the version to resume from."""
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(
            self._api.list_namespaced_custom_object,
            GROUP, VERSION, self.settings.namespace, PLURAL,
            resource_version=version, allow_watch_bookmarks=True, timeout_seconds=self.watch_seconds,
            _request_timeout=(self.request_timeout[0], self.watch_seconds + 30),
        )  # fmt: skip
        for event in stream:
            obj = event["raw_object"]
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                self.cache.apply(event["type"], obj)
            if self._stopping.is_set():
                break
        return version
