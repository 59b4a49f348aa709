"""The queue: new submissions become `queued`; FIFO admission keeps at most MAX_WORKERS sandboxes at once.

The count of sandboxes comes from the cluster (kopf indexes of submissions, Jobs and pods, rebuilt by
a full listing on every start), plus the submissions this process admitted whose Job the indexes have
not shown yet. A slot is held by a submission while any of these is true:
  - a sandbox pod of it has not ended (it uses a node's CPU and memory);
  - a sandbox Job of it exists and has not finished (it may create a pod any moment);
  - it is `running` (its Job may be on the way, or lost: the periodic check ends those);
  - this process admitted it moments ago.
Idle warm-pool pods hold no slot (they have no submission yet; `warmPool` sizes them apart); a claimed
one holds its submission's slot like a cold sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monaco.core.models import Status, utcnow
from monaco.core.resource import submitted_at
from monaco.core.settings import Settings
from monaco.operator import builders, names, results
from monaco.operator.cleanup import finish
from monaco.operator.cluster import Cluster, Rejected, status_ops
from monaco.operator.pool import Pool, PoolJobRecord, PoolPodRecord
from monaco.operator.state import IndexLike, JobRecord, PodRecord, SubmissionRecord, waiting
from monaco.operator.submission import SpecError, from_body

log = logging.getLogger("monaco.operator")
# How long an admission of this process counts on its own before the indexes must show it.
INFLIGHT_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Indexes:
    submissions: IndexLike[SubmissionRecord]
    jobs: IndexLike[JobRecord]
    pods: IndexLike[PodRecord]
    pool_pods: IndexLike[PoolPodRecord] = field(default_factory=dict)  # by language
    pool_jobs: IndexLike[PoolJobRecord] = field(default_factory=dict)

    def submission(self, key: str) -> SubmissionRecord | None:
        values = self.submissions.get(key)
        return next(iter(values), None) if values else None


def occupied(ix: Indexes, inflight: Iterable[str] = ()) -> set[str]:
    """The keys of the submissions that hold a sandbox slot now."""
    keys = set(inflight)
    for key, pods in ix.pods.items():
        if not key:  # idle pool pods: no submission yet
            continue
        if any(not p.terminal for p in pods):
            keys.add(key)
    for key, jobs in ix.jobs.items():
        if key and any(not j.finished for j in jobs):
            keys.add(key)
    for key, subs in ix.submissions.items():
        if any(s.phase == Status.RUNNING for s in subs):
            keys.add(key)
    return keys


def plan(ix: Indexes, max_workers: int, inflight: Iterable[str] = (), deferred: Collection[str] = (),
         queue: list[SubmissionRecord] | None = None) -> list[SubmissionRecord]:
    """Which queued submissions to admit now, in order.

    One that already holds a slot (its Job exists: the operator died between creating it and writing
    `running`) is admitted without taking another; the rest take the free slots first come, first served,
    except the `deferred` ones: they wait for a warm pool pod that is starting (Pool.deferred), holding no
    slot meanwhile. `queue`: waiting(ix.submissions), when the caller has it already.
    """
    held = occupied(ix, inflight)
    inflight = set(inflight)
    free = max_workers - len(held)
    chosen = []
    for sub in waiting(ix.submissions) if queue is None else queue:
        if sub.key in inflight:
            continue
        if sub.key in held:
            chosen.append(sub)
        elif free > 0 and sub.key not in deferred:
            chosen.append(sub)
            free -= 1
    return chosen


class Admission:
    def __init__(self, settings: Settings, cluster: Cluster, clock: Callable[[], datetime] = utcnow,
                 pool: Pool | None = None) -> None:
        self.settings = settings
        self.cluster = cluster
        self.clock = clock
        self.pool = pool
        self.inflight: dict[str, datetime] = {}
        self.admitted: dict[str, int] = {"warm": 0, "cold": 0}  # for /metrics
        self.runner_ready = False
        self.woken = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self.woken.set()

    def forget(self, key: str) -> None:
        self.inflight.pop(key, None)

    def prune(self, ix: Indexes) -> None:
        """Drop admissions the indexes show by now (a Job, or the submission past `queued`)."""
        now = self.clock()
        for key, since in list(self.inflight.items()):
            sub = ix.submission(key)
            shown = bool(ix.jobs.get(key)) or (sub is not None and sub.phase not in (Status.QUEUED, Status.PENDING))
            if shown or now - since > INFLIGHT_GRACE:
                del self.inflight[key]

    async def queue(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """pending -> queued, once: the write is conditional on the resourceVersion the caller saw. The
        status written, or None when the object had changed."""
        meta = body.get("metadata") or {}
        queued_at = submitted_at(meta) or self.clock()
        status = results.queued_status(queued_at)
        ops = status_ops(status.wire(), resource_version=str(meta.get("resourceVersion")), whole=True)
        return status.wire() if await self.cluster.patch_status(str(meta.get("name")), ops) else None

    async def queue_missed(self, ix: Indexes, older_than: timedelta = timedelta(seconds=2)) -> int:
        """Queue what the event handler failed to (an API error on the way): events are not retried."""
        now, count = self.clock(), 0
        for values in list(ix.submissions.values()):
            for sub in list(values):
                if sub.phase == Status.PENDING and not sub.deleting and now - sub.created > older_than:
                    body = await self.cluster.get_submission(sub.name)
                    if body is not None and not (body.get("status") or {}).get("phase"):
                        count += await self.queue(body) is not None
        return count

    async def admit_next(self, ix: Indexes) -> list[str]:
        """Admit what fits; returns the names admitted."""
        async with self._lock:
            self.prune(ix)
            admitted = []
            queue = waiting(ix.submissions)
            deferred = self.pool.deferred(queue, ix.pool_pods, ix.pool_jobs) if self.pool else ()
            for sub in plan(ix, self.settings.max_workers, self.inflight, deferred, queue):
                if await self.admit(sub, ix):
                    admitted.append(sub.name)
            return admitted

    async def admit(self, sub: SubmissionRecord, ix: Indexes | None = None) -> bool:
        """Claim a warm sandbox, or create the ConfigMap, NetworkPolicy and Job of one submission; then
        mark it `running`."""
        body = await self.cluster.get_submission(sub.name)
        if body is None:
            return False
        meta = body.get("metadata") or {}
        if meta.get("uid") != sub.uid or meta.get("deletionTimestamp"):
            return False
        if not (body.get("status") or {}).get("phase"):
            queued = await self.queue(body)
            if queued is None:
                return False
            body = {**body, "status": queued}  # a status write leaves the spec as it was: no second GET
        if (body.get("status") or {}).get("phase") != Status.QUEUED:
            return False
        try:
            submission = from_body(body, self.settings.registry)
        except SpecError as exc:
            await finish(self.cluster, sub.name, Status.QUEUED, results.system_error(str(exc)), self.clock())
            return False
        self.inflight[sub.key] = self.clock()
        if self.pool is not None and ix is not None:
            try:
                warm_job = await self.pool.claim(submission, ix.pool_pods)
            except Exception:
                log.exception("claiming a warm sandbox for %s failed; it takes the cold path", sub.name)
                warm_job = None
            if warm_job is not None:
                return await self._running(sub, warm_job, warm=True)
        try:
            if not self.runner_ready:  # the runner every sandbox pod mounts: once per operator process
                runner = builders.build_runner_configmap(self.settings, builders.runner_binary())
                await self.cluster.create_configmap(runner)
                self.runner_ready = True
            # The NetworkPolicy exists before the Job, so the pod is never reachable; the ConfigMap too,
            # so the pod's volume mounts at once.
            await asyncio.gather(
                self.cluster.create_configmap(builders.build_configmap(submission, self.settings)),
                self.cluster.create_network_policy(builders.build_network_policy(submission, self.settings)),
            )
            existing = await self.cluster.create_job(builders.build_job(submission, self.settings))
        except Rejected as exc:
            self.inflight.pop(sub.key, None)
            await finish(self.cluster, sub.name, Status.QUEUED,
                         results.system_error(f"the API server refused the sandbox: {exc}"), self.clock())
            return False
        except Exception:
            self.inflight.pop(sub.key, None)
            log.exception("could not create the sandbox of %s; will retry", sub.name)
            return False
        if existing == {}:
            self.inflight.pop(sub.key, None)  # it existed a moment ago and is gone now: it was finished
            return False
        if existing is not None:
            owners = (existing.get("metadata") or {}).get("ownerReferences") or []
            if not any(o.get("uid") == sub.uid for o in owners):
                # A Job of an earlier submission of the same name, on its way out: wait for it to go.
                self.inflight.pop(sub.key, None)
                log.info("the Job of an earlier %s still exists; admission waits for it to be deleted", sub.name)
                return False
        return await self._running(sub, names.child_name(sub.name))

    async def _running(self, sub: SubmissionRecord, job_name: str, warm: bool | None = None) -> bool:
        ops = status_ops(results.running_status(self.clock(), job_name, warm).wire(), phase=Status.QUEUED)
        if not await self.cluster.patch_status(sub.name, ops):
            log.info("%s changed while being admitted; its Job stays (it is owned, so it goes with it)", sub.name)
        log.info("admitted %s as Job %s%s", sub.name, job_name, " (warm)" if warm else "")
        self.admitted["warm" if warm else "cold"] += 1
        return True

