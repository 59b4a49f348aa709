"""The operator's few Kubernetes API calls, each safe to repeat (409 on create and 404 on delete are fine).

Status writes are compare-and-set: a JSON patch that first tests the phase (or the resourceVersion)
the caller saw, so two writers can never both finish one submission, whatever crashed in between.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from monaco.core import resource as r
from monaco.core.kube import api_client, api_message
from monaco.operator import names

log = logging.getLogger("monaco.operator")
JSON_PATCH = "application/json-patch+json"
_CONFLICTS = (409, 422)
ATTACH_TIMEOUT = 10.0  # seconds for the runner to acknowledge a delivered job


class Rejected(Exception):
    """The API server refused an object for good (400 or 422): retrying the same request cannot help."""


def _status(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


def status_ops(fields: dict[str, Any], *, phase: str | None = None, resource_version: str | None = None,
               whole: bool = False) -> list[dict[str, Any]]:
    """A JSON patch that writes `fields` into .status only if the object is still as the caller saw it."""
    ops: list[dict[str, Any]] = []
    if resource_version is not None:
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
    if phase is not None:
        ops.append({"op": "test", "path": "/status/phase", "value": phase})
    if whole:
        ops.append({"op": "add", "path": "/status", "value": fields})
    else:
        ops += [{"op": "add", "path": f"/status/{k}", "value": v} for k, v in fields.items()]
    return ops


class Cluster:
    def __init__(self, namespace: str, api: client.ApiClient | None = None) -> None:
        self.namespace = namespace
        self._api = api or api_client()
        self.core = client.CoreV1Api(self._api)
        self.batch = client.BatchV1Api(self._api)
        self.networking = client.NetworkingV1Api(self._api)
        self.custom = client.CustomObjectsApi(self._api)

    # ---- submissions
    async def get_submission(self, name: str) -> dict[str, Any] | None:
        try:
            obj = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, r.GROUP, r.VERSION, self.namespace, r.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj if isinstance(obj, dict) else None

    async def patch_status(self, name: str, ops: list[dict[str, Any]]) -> bool:
        """Apply a compare-and-set status patch; False when the object changed (or is gone) meanwhile."""
        return await self._compare_and_set(
            self.custom.patch_namespaced_custom_object_status,
            r.GROUP, r.VERSION, self.namespace, r.PLURAL, name, ops, _content_type=JSON_PATCH,
        )

    async def delete_submission(self, name: str, uid: str) -> None:
        body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        await self._ignore_missing(
            self.custom.delete_namespaced_custom_object, r.GROUP, r.VERSION, self.namespace, r.PLURAL, name,
            body=body,
        )

    # ---- children
    async def create_configmap(self, body: dict[str, Any]) -> None:
        await self._create(self.core.create_namespaced_config_map, body)

    async def create_network_policy(self, body: dict[str, Any]) -> None:
        await self._create(self.networking.create_namespaced_network_policy, body)

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create the Job; None if it was created now, the existing Job's body if it existed already."""
        if await self._create(self.batch.create_namespaced_job, body):
            return None
        return await self.get_job(body["metadata"]["name"]) or {}

    async def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            job = await asyncio.to_thread(self.batch.read_namespaced_job, name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = self._api.sanitize_for_serialization(job)  # type: ignore[no-untyped-call]
        return data if isinstance(data, dict) else {}

    async def delete_children(self, name: str, job: str = "") -> None:
        """ConfigMap and NetworkPolicy first: while the Job exists, a retry knows there is work left.
        A submission that ran warm has only its claimed pool Job (`job`)."""
        child = names.child_name(name)
        if job and job != child:
            await self.delete_job(job)
            return
        await self._ignore_missing(self.core.delete_namespaced_config_map, child, self.namespace)
        await self._ignore_missing(self.networking.delete_namespaced_network_policy, child, self.namespace)
        await self._ignore_missing(
            self.batch.delete_namespaced_job, child, self.namespace, propagation_policy="Background"
        )

    # ---- warm pools
    async def create_pool_job(self, body: dict[str, Any]) -> str:
        """Create an idle pool Job (its name generated by the API server); returns the name."""
        create: Any = self.batch.create_namespaced_job
        job = await asyncio.to_thread(create, self.namespace, body)
        return str(job.metadata.name)

    async def delete_job(self, name: str) -> None:
        await self._ignore_missing(
            self.batch.delete_namespaced_job, name, self.namespace, propagation_policy="Background"
        )

    async def patch_pod(self, name: str, ops: list[dict[str, Any]]) -> bool:
        """A compare-and-set JSON patch of a pod's metadata; False when it changed (or is gone) meanwhile."""
        return await self._compare_and_set(self.core.patch_namespaced_pod, name, self.namespace, ops,
                                           _content_type=JSON_PATCH)

    async def patch_job(self, name: str, body: dict[str, Any]) -> bool:
        """A merge patch of a Job; False when it is gone."""
        try:
            await asyncio.to_thread(self.batch.patch_namespaced_job, name, self.namespace, body,
                                    _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def attach(self, pod: str, container: str, data: bytes, expect: bytes, linger: float = 0,
                     timeout: float = ATTACH_TIMEOUT) -> tuple[bool, asyncio.Future[bytes]]:
        """Write `data` to a container's stdin through pods/attach; True once its stdout shows `expect`.
        Empty `data` attaches without stdin (to read a container's output), acknowledged at once.

        The stream then stays open for up to `linger` seconds (until the container ends): the second
        value resolves to everything the container printed (b"" when nothing more came). A thread of its
        own per attach, so that long-lived streams never starve the API calls of asyncio's thread pool.
        """
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[bool] = loop.create_future()
        output: asyncio.Future[bytes] = loop.create_future()

        def settle(future: asyncio.Future[Any], value: Any) -> None:
            if not future.done():
                future.set_exception(value) if isinstance(value, BaseException) else future.set_result(value)

        def work() -> None:
            seen = b""
            try:
                seen = self._attach(pod, container, data, expect, timeout, linger,
                                    lambda: loop.call_soon_threadsafe(settle, acked, True))
            except Exception as exc:
                loop.call_soon_threadsafe(settle, acked, exc)
            loop.call_soon_threadsafe(settle, acked, False)
            loop.call_soon_threadsafe(settle, output, seen)

        threading.Thread(target=work, name=f"attach-{pod}", daemon=True).start()
        return await acked, output

    def _attach(self, pod: str, container: str, data: bytes, expect: bytes, timeout: float, linger: float,
                on_ack: Callable[[], object]) -> bytes:
        # stream() swaps the request method of the ApiClient it is given: its own client, not the shared one.
        api = client.CoreV1Api(client.ApiClient(self._api.configuration))
        ws = stream(api.connect_get_namespaced_pod_attach, pod, self.namespace, container=container,
                    stdin=bool(data), stdout=True, stderr=False, tty=False, binary=True, _preload_content=False)
        try:
            if data:
                ws.write_stdin(data)
            seen = b""
            deadline = time.monotonic() + timeout
            while ws.is_open() and time.monotonic() < deadline and expect not in seen:
                ws.update(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                seen += ws.read_stdout(timeout=0) or b""
            if expect not in seen:
                return seen
            on_ack()
            deadline = time.monotonic() + linger
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                seen += ws.read_stdout(timeout=0) or b""
            return seen
        finally:
            ws.close()

    async def read_log(self, pod: str, container: str, tail_lines: int, limit_bytes: int) -> bytes | None:
        """The last lines of a container's log, bounded; None when there is none to read."""
        try:
            resp = await asyncio.to_thread(
                self.core.read_namespaced_pod_log, pod, self.namespace, container=container,
                tail_lines=tail_lines, limit_bytes=limit_bytes, _preload_content=False,
            )
        except ApiException as exc:
            if exc.status in (400, 404):
                return None
            raise
        return _bytes(resp)

    # ---- helpers
    async def _create(self, create: Any, body: dict[str, Any]) -> bool:
        try:
            await asyncio.to_thread(create, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status in (400, 422):
                raise Rejected(f"{body.get('kind', 'object')} {body['metadata']['name']}: {api_message(exc)}") from exc
            raise
        return True

    async def _compare_and_set(self, call: Any, *args: Any, **kwargs: Any) -> bool:
        """A JSON patch whose `test` ops make it conditional: False when a test failed (409/422) or the object
        is gone (404), for the caller to re-read and decide again."""
        try:
            await asyncio.to_thread(call, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 or exc.status in _CONFLICTS:
                log.info("a conditional write was refused (%s): %s", exc.status, api_message(exc))
                return False
            raise
        return True

    async def _ignore_missing(self, call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await asyncio.to_thread(call, *args, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _bytes(resp: Any) -> bytes:
    if isinstance(resp, bytes):
        return resp
    if isinstance(resp, str):
        return resp.encode()
    data = getattr(resp, "data", b"")
    release = getattr(resp, "release_conn", None)
    if callable(release):
        release()
    return data if isinstance(data, bytes) else str(data).encode()

