"""Fakes for the operator's tests: an in-memory cluster with real compare-and-set status patches, and
resource bodies shaped as the API server returns them."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monaco.core.native import binary
from monaco.core.resource import API_VERSION, KIND, SUBMITTED_AT_ANNOTATION
from monaco.core.settings import Settings
from monaco.operator import names
from monaco.operator.admission import Indexes
from monaco.operator.state import job_record, pod_record, submission_record

NS = "monaco-sandbox"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds: float = 0) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def settings() -> Settings:
    return Settings(namespace=NS, max_workers=2, start_deadline_seconds=30, output_limit_bytes=65536,
                    finished_ttl_seconds=3600, sandbox_run_as_user=65534, sandbox_work_mb=64)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def submission(name: str, *, language: str = "python", created: float = 0, phase: str | None = None,
               uid: str | None = None, rv: str = "1", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid or f"uid-{name}",
            "resourceVersion": rv,
            "creationTimestamp": ts(int(created)),
            "annotations": {SUBMITTED_AT_ANNOTATION: ts(created)},
        },
        "spec": {"language": language, "code": "print(input())", "input": "hi\n",
                 "limits": {"timeoutSeconds": 5, "memoryMb": 128}},
    }
    if phase is not None:
        body["status"] = {"phase": phase, **status}
    return body


def container_status(name: str, *, running: bool = False, terminated: str | None = None, exit_code: int = 0,
                     waiting: str | None = None, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {}
    if running:
        state["running"] = {"startedAt": ts()}
    elif terminated:
        state["terminated"] = {"reason": terminated, "exitCode": exit_code}
    elif waiting:
        state["waiting"] = {"reason": waiting, "message": message}
    return {"name": name, "state": state}


def pod(name: str, *, phase: str = "Running", created: float = 0, containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, reason: str = "", message: str = "", deleting: bool = False,
        unschedulable: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "containerStatuses": containers or []}
    if init:
        status["initContainerStatuses"] = init
    if reason:
        status["reason"], status["message"] = reason, message
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": unschedulable}]
    meta: dict[str, Any] = {"name": f"{names.child_name(name)}-abcde", "namespace": NS,
                            "creationTimestamp": ts(created), "labels": names.labels(name)}
    if deleting:
        meta["deletionTimestamp"] = ts(created + 1)
    return {"metadata": meta, "status": status}


def job(name: str, *, owner_uid: str | None = None, start: float | None = 0, deadline: int = 30,
        conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions or []}
    if start is not None:
        status["startTime"] = ts(start)
    return {
        "metadata": {
            "name": names.child_name(name),
            "namespace": NS,
            "labels": names.labels(name),
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": name,
                                 "uid": owner_uid or f"uid-{name}", "controller": True}],
        },
        "spec": {"activeDeadlineSeconds": deadline},
        "status": status,
    }


def indexes(subs: list[dict[str, Any]] = (), jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
            pods: list[dict[str, Any]] = ()) -> Indexes:  # type: ignore[assignment]
    """Indexes shaped like kopf's: key -> collection of records."""
    ix = Indexes({}, {}, {})
    for b in subs:
        rec = submission_record(b)
        ix.submissions.setdefault(rec.key, []).append(rec)  # type: ignore[attr-defined]
    for b in jobs:
        jrec = job_record(b)
        ix.jobs.setdefault(jrec.key, []).append(jrec)  # type: ignore[attr-defined]
    for b in pods:
        prec = pod_record(b)
        ix.pods.setdefault(prec.key, []).append(prec)  # type: ignore[attr-defined]
    return ix


class PatchFailed(Exception):
    pass


def apply_json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The subset of RFC 6902 the operator uses (test, add, replace), applied as the API server does: all or none."""
    out = copy.deepcopy(obj)
    for op in ops:
        parts = op["path"].strip("/").split("/")
        parent = out
        for part in parts[:-1]:
            if part not in parent:
                raise PatchFailed(f"missing {op['path']}")
            parent = parent[part]
        if op["op"] == "test":
            if parts[-1] not in parent or parent[parts[-1]] != op["value"]:
                raise PatchFailed(f"test {op['path']} failed")
        elif op["op"] == "replace":
            if parts[-1] not in parent:
                raise PatchFailed(f"missing {op['path']}")
            parent[parts[-1]] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            parent[parts[-1]] = copy.deepcopy(op["value"])
        else:
            raise AssertionError(f"unexpected op {op}")
    return out


def _escape_keys(body: dict[str, Any]) -> dict[str, Any]:
    """Label keys hold '/', which JSON pointers write as '~1': the fake patches with '/' as a NUL."""
    out = copy.deepcopy(body)
    out["metadata"]["labels"] = {k.replace("/", "\x00"): v for k, v in out["metadata"].get("labels", {}).items()}
    return out


def _unescape_keys(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["labels"] = {k.replace("\x00", "/"): v for k, v in body["metadata"]["labels"].items()}
    return body


class FakeCluster:
    """The operator's Cluster, in memory: objects by name, every call recorded."""

    def __init__(self, *subs: dict[str, Any]) -> None:
        self.namespace = NS
        self.submissions = {s["metadata"]["name"]: copy.deepcopy(s) for s in subs}
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.network_policies: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.status_writes: list[tuple[str, list[dict[str, Any]]]] = []
        self.pods: dict[str, dict[str, Any]] = {}  # pool pods, by name
        self.attached: list[tuple[str, str, bytes]] = []
        self.acknowledge = True  # the pool runner answers a delivered job
        # pod, or (pod, container) -> what its runner prints on the attach stream
        self.streams: dict[str | tuple[str, str], bytes] = {}
        # (pod, container) -> what its runner logs after it acknowledged a job (a compile envelope)
        self.printed_after_ack: dict[tuple[str, str], bytes] = {}
        self.fail_create: Exception | None = None
        self.refuse_status: Callable[[list[dict[str, Any]]], bool] = lambda ops: False
        self._rv = 100

    async def get_submission(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_submission", name))
        body = self.submissions.get(name)
        return copy.deepcopy(body) if body is not None else None

    async def patch_status(self, name: str, ops: list[dict[str, Any]]) -> bool:
        self.calls.append(("patch_status", name))
        body = self.submissions.get(name)
        if body is None or self.refuse_status(ops):
            return False
        try:
            new = apply_json_patch(body, ops)
        except PatchFailed:
            return False
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        self.submissions[name] = new
        self.status_writes.append((name, ops))
        return True

    async def delete_submission(self, name: str, uid: str) -> None:
        self.calls.append(("delete_submission", name, uid))
        if name in self.submissions and self.submissions[name]["metadata"]["uid"] == uid:
            del self.submissions[name]

    async def _create(self, store: dict[str, dict[str, Any]], body: dict[str, Any], kind: str) -> bool:
        self.calls.append((f"create_{kind}", body["metadata"]["name"]))
        if self.fail_create is not None:
            raise self.fail_create
        if body["metadata"]["name"] in store:
            return False
        store[body["metadata"]["name"]] = copy.deepcopy(body)
        return True

    async def create_configmap(self, body: dict[str, Any]) -> None:
        await self._create(self.configmaps, body, "configmap")

    async def create_network_policy(self, body: dict[str, Any]) -> None:
        await self._create(self.network_policies, body, "network_policy")

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if await self._create(self.jobs, body, "job"):
            return None
        return copy.deepcopy(self.jobs[body["metadata"]["name"]])

    async def get_job(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_job", name))
        return copy.deepcopy(self.jobs.get(name))

    async def delete_children(self, name: str, job: str = "") -> None:
        self.calls.append(("delete_children", name, job) if job else ("delete_children", name))
        child = names.child_name(name)
        if job and job != child:
            self.jobs.pop(job, None)
            return
        for store in (self.configmaps, self.network_policies, self.jobs):
            store.pop(child, None)

    # ---- warm pools
    async def create_pool_job(self, body: dict[str, Any]) -> str:
        self._rv += 1
        name = f"{body['metadata']['generateName']}{self._rv}"
        self.calls.append(("create_pool_job", name))
        if self.fail_create is not None:
            raise self.fail_create
        self.jobs[name] = {**copy.deepcopy(body), "metadata": {**body["metadata"], "name": name}}
        return name

    async def delete_job(self, name: str) -> None:
        self.calls.append(("delete_job", name))
        self.jobs.pop(name, None)
        for pod_name, p in list(self.pods.items()):
            if p["metadata"]["labels"].get("job-name") == name:
                del self.pods[pod_name]

    async def patch_pod(self, name: str, ops: list[dict[str, Any]]) -> bool:
        self.calls.append(("patch_pod", name))
        body = self.pods.get(name)
        if body is None:
            return False
        unescaped = [{**op, "path": op["path"].replace("~1", "\x00")} for op in ops]
        try:
            new = apply_json_patch(_escape_keys(body), unescaped)
        except PatchFailed:
            return False
        self._rv += 1
        new = _unescape_keys(new)
        new["metadata"]["resourceVersion"] = str(self._rv)
        self.pods[name] = new
        return True

    async def patch_job(self, name: str, body: dict[str, Any]) -> bool:
        self.calls.append(("patch_job", name))
        job = self.jobs.get(name)
        if job is None:
            return False
        meta = body.get("metadata") or {}
        job["metadata"].setdefault("labels", {}).update(meta.get("labels") or {})
        if "ownerReferences" in meta:
            job["metadata"]["ownerReferences"] = meta["ownerReferences"]
        return True

    async def attach(self, pod: str, container: str, data: bytes, expect: bytes,
                     linger: float = 0) -> tuple[bool, asyncio.Future[bytes]]:
        self.calls.append(("attach", pod, container))
        output: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        output.set_result(self.streams.get((pod, container), self.streams.get(pod, b"")))
        if pod not in self.pods:
            return False, output
        self.attached.append((pod, container, data))
        if self.acknowledge and expect:
            after = self.printed_after_ack.get((pod, container), b"")
            self.logs[(pod, container)] = self.logs.get((pod, container), b"") + expect + b"\n" + after
        return self.acknowledge, output

    async def read_log(self, pod: str, container: str, tail_lines: int, limit_bytes: int) -> bytes | None:
        self.calls.append(("read_log", pod, container, tail_lines, limit_bytes))
        return self.logs.get((pod, container))

    def phase(self, name: str) -> str | None:
        return (self.submissions[name].get("status") or {}).get("phase")

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.submissions[name].get("status") or {})


@pytest.fixture
def runner(tmp_path: Path) -> Callable[..., bytes]:
    """Runs the real runner (core/monaco-init.c, not as PID 1) and returns its stdout: a real envelope."""

    def run(phase: str, command: str, *, source: str = "", stdin: str = "", timeout_ms: int = 5000,
            output_limit: int = 65536, build: Path | None = None) -> bytes:
        src = tmp_path / "src"
        src.mkdir(exist_ok=True)
        (src / "main.sh").write_text(source)
        (src / "stdin").write_text(stdin)
        build_dir = build or tmp_path / "build"
        build_dir.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TMPDIR": str(tmp_path),
            "MONACO_SRC_DIR": str(src),
            "MONACO_SOURCE_FILE": "main.sh",
            "MONACO_BUILD_DIR": str(build_dir),
            "MONACO_WORK_DIR": str(tmp_path / "work"),
            "MONACO_COMMAND": command,
            "MONACO_TIMEOUT_MS": str(timeout_ms),
            "MONACO_OUTPUT_LIMIT": str(output_limit),
        }
        done = subprocess.run([str(binary("monaco-init")), phase], env=env, capture_output=True, timeout=30,
                              check=True)
        return done.stdout

    return run
