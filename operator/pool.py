"""Warm sandbox pools: idle sandbox pods of a language, started before their program arrives.

The manager keeps `settings.warm_pool[language]` idle pool Jobs per language, from the cluster's state
(kopf indexes of pool pods and Jobs, labelled `monaco.dev/pool`), so a restarted operator carries on
where the last one stopped. It replaces idle pods that died, were evicted or sat idle past
`warm_pool_max_idle_seconds`, and drains idle pods whose spec hash is not the current one (an upgrade
changed the image, the limits or the runner), or whose language has no pool any more.

A submission with its language's default limits claims an idle pod (Pool.claim): a compare-and-set
patch of the pod's labels (resourceVersion and `pool-state: idle` tested, so two claims never get one
pod), then its Job gets the submission as owner, then the job (source and stdin) goes to the runner
through pods/attach, which the runner acknowledges before anything of the program runs. Whatever fails
before that acknowledgement deletes the claimed pod and sends the submission down the cold path; a pod
serves one program and is never returned to the pool.

Bursts: while submissions that fit a pool wait, the pool grows by up to `warm_pool_burst[language]` pods
above its size, one per waiting submission, and shrinks back once the queue has been empty for
BURST_LINGER. A waiting submission that fits waits (holding no worker slot) for a pool pod that is
starting, rather than starting a cold pod of its own, for up to `warm_pool_wait_seconds`; one for which
no pod is ready or starting takes the cold path as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from monaco.core.models import utcnow
from monaco.core.phase import RUN, LimitError, resolve_limits
from monaco.core.settings import Settings
from monaco.operator import builders, names
from monaco.operator.state import EPOCH, IndexLike, SubmissionRecord, job_name_label, parse_time, waiting
from monaco.operator.submission import Submission

log = logging.getLogger("monaco.operator")
# A claim's pod is skipped for this long by this process, until the indexes show it claimed.
CLAIM_MEMORY = timedelta(seconds=60)
# Pool Jobs this process created count for this long before the indexes show them.
CREATE_GRACE = timedelta(seconds=30)
# An idle pod this close to its maximum age is not claimed: it is about to be retired.
CLAIM_MARGIN = timedelta(seconds=30)
# A claimed pool Job whose submission finished (or is gone) this long ago is deleted here, if the
# collector's teardown missed it.
LEFTOVER_GRACE = timedelta(seconds=60)
# Claims tried per submission before it takes the cold path (each lost one was won by another claim).
CLAIM_ATTEMPTS = 3
ACCEPTED = b"#MONACO-JOB v1 ACCEPTED"
# A pool grown for waiting submissions keeps its extra pods this long after its queue is gone (the burst
# may go on: a pod deleted now would have to be started again), then shrinks back to its size.
BURST_LINGER = timedelta(seconds=30)
# How long past its time limit the attach stream of a run is kept open for its envelope.
STREAM_SLACK_SECONDS = 5
# What the pool hands a delivered run's stream to: the submission, its pool Job, the runner's stdout (the
# run phase's), and the pod whose compile container's log holds the compile phase's envelope ("" when the
# language is not compiled).
StreamSink = Callable[[Submission, str, bytes, str], Awaitable[None]]


@dataclass(frozen=True)
class PoolPodRecord:
    name: str
    job_name: str
    language: str
    spec_hash: str
    claimed: bool
    key: str  # the claiming submission's key; "" while idle
    resource_version: str
    created: datetime
    ready: bool  # every container running (the runner waits for its job)
    terminal: bool
    deleting: bool


@dataclass(frozen=True)
class PoolJobRecord:
    name: str
    language: str
    spec_hash: str
    claimed: bool
    key: str  # the claiming submission's key, once its Job was handed over
    finished: bool
    deleting: bool
    created: datetime


def pool_pod_record(body: Mapping[str, Any]) -> PoolPodRecord:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    labels = meta.get("labels") or {}
    statuses = status.get("containerStatuses") or []
    phase = status.get("phase") or "Pending"
    terminated = any((cs.get("state") or {}).get("terminated") for cs in statuses)
    return PoolPodRecord(
        name=str(meta.get("name", "")),
        job_name=job_name_label(labels),
        language=str(labels.get(names.POOL, "")),
        spec_hash=str(labels.get(names.POOL_HASH, "")),
        claimed=labels.get(names.POOL_STATE) != names.IDLE,
        key=str(labels.get(names.SUBMISSION, "")),
        resource_version=str(meta.get("resourceVersion", "")),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
        ready=phase == "Running" and bool(statuses) and all("running" in (cs.get("state") or {})
                                                            for cs in statuses),
        terminal=phase in ("Succeeded", "Failed") or terminated,
        deleting=bool(meta.get("deletionTimestamp")),
    )


def pool_job_record(body: Mapping[str, Any]) -> PoolJobRecord:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    return PoolJobRecord(
        name=str(meta.get("name", "")),
        language=str(labels.get(names.POOL, "")),
        spec_hash=str(labels.get(names.POOL_HASH, "")),
        claimed=bool(labels.get(names.SUBMISSION)),
        key=str(labels.get(names.SUBMISSION, "")),
        finished=any(c.get("status") == "True" and c.get("type") in ("Complete", "Failed") for c in conditions),
        deleting=bool(meta.get("deletionTimestamp")),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
    )


def claim_ops(pod: PoolPodRecord, key: str) -> list[dict[str, Any]]:
    """The compare-and-set JSON patch of a claim: only the pod exactly as seen, and only while idle."""
    state = "/metadata/labels/" + names.POOL_STATE.replace("/", "~1")
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": pod.resource_version},
        {"op": "test", "path": state, "value": names.IDLE},
        {"op": "replace", "path": state, "value": names.CLAIMED},
        {"op": "add", "path": "/metadata/labels/" + names.SUBMISSION.replace("/", "~1"), "value": key},
    ]


def warm_eligible(sub: Submission, settings: Settings) -> bool:
    """A pool's pods run at the language's default limits: only a submission asking for those fits; and its
    job frame carries the source and stdin only, so the judge's fields other than expectedOutput (decided
    by the operator, not the sandbox) go the cold way."""
    if settings.warm_pool.get(sub.language.name, 0) <= 0 or sub.spec.cold_only:
        return False
    return sub.limits == resolve_limits(sub.language, None, None)


def record_fits(rec: SubmissionRecord, settings: Settings) -> bool:
    """warm_eligible, from a waiting submission's index record (no read of its spec)."""
    language = settings.registry.get(rec.language)
    if language is None or settings.warm_pool.get(language.name, 0) <= 0 or rec.cold_only:
        return False
    try:
        return resolve_limits(language, *rec.asked) == resolve_limits(language, None, None)
    except LimitError:
        return False


class PoolCluster(Protocol):
    """The calls the pool makes (operator/cluster.py's Cluster has them)."""

    async def create_pool_job(self, body: dict[str, Any]) -> str: ...
    async def create_network_policy(self, body: dict[str, Any]) -> None: ...
    async def create_configmap(self, body: dict[str, Any]) -> None: ...
    async def delete_job(self, name: str) -> None: ...
    async def patch_pod(self, name: str, ops: list[dict[str, Any]]) -> bool: ...
    async def patch_job(self, name: str, body: dict[str, Any]) -> bool: ...
    async def attach(self, pod: str, container: str, data: bytes, expect: bytes,
                     linger: float = 0) -> tuple[bool, asyncio.Future[bytes]]: ...
    async def read_log(self, pod: str, container: str, tail_lines: int, limit_bytes: int) -> bytes | None: ...


CLAIM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class PoolStats:
    """What the operator's /metrics shows of the pools (operator/metrics.py)."""

    claims: dict[str, int] = field(default_factory=dict)
    misses: dict[tuple[str, str], int] = field(default_factory=dict)  # (language, reason)
    # claim to the runner's acknowledgement (the program starts then): cumulative counts per bucket
    claim_buckets: list[int] = field(default_factory=lambda: [0] * len(CLAIM_BUCKETS))
    claim_seconds_sum: float = 0.0

    def hit(self, language: str, seconds: float) -> None:
        self.claims[language] = self.claims.get(language, 0) + 1
        self.claim_seconds_sum += seconds
        for i, bound in enumerate(CLAIM_BUCKETS):
            self.claim_buckets[i] += seconds <= bound

    def miss(self, language: str, reason: str) -> None:
        self.misses[(language, reason)] = self.misses.get((language, reason), 0) + 1


class Pool:
    def __init__(self, settings: Settings, cluster: PoolCluster, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.cluster = cluster
        self.clock = clock
        self.claimed: dict[str, datetime] = {}  # pod name -> when this process claimed it
        self.waiting_since: dict[str, datetime] = {}  # submission key -> when it began to wait for a pod
        self.burst_at: dict[str, datetime] = {}  # language -> when its pool last grew above its size
        self.waits: dict[str, int] = {}  # language -> submissions waiting for a starting pod (last pass)
        self._fits: dict[tuple[str, tuple[float | None, int | None], bool], bool] = {}  # record_fits by shape
        self.created: dict[str, tuple[str, datetime]] = {}  # Job name -> (language, when) until indexed
        self.policy_ready = False
        self.stats = PoolStats()
        # Single-container pods print their envelope on the attach stream: the result is there as soon as
        # the program ends, not when the kubelet next looks at the pod (up to a second later).
        self.sink: StreamSink | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self.hashes = {lang.name: builders.pool_hash(lang, settings) for lang in settings.registry}
        unknown = sorted(set(settings.warm_pool) - set(self.hashes))
        if unknown:
            log.warning("warmPool names languages this deployment does not run: %s (ignored)", ", ".join(unknown))

    @property
    def enabled(self) -> bool:
        return any(n > 0 for lang, n in self.settings.warm_pool.items() if lang in self.hashes)

    def size(self, language: str) -> int:
        return self.settings.warm_pool.get(language, 0) if language in self.hashes else 0

    def burst(self, language: str) -> int:
        return self.settings.warm_pool_burst.get(language, 0) if self.size(language) > 0 else 0

    def _max_idle(self) -> timedelta:
        return timedelta(seconds=self.settings.warm_pool_max_idle_seconds)

    def idle(self, pods: IndexLike[PoolPodRecord], language: str) -> list[PoolPodRecord]:
        """Claimable pods of a language: ready, idle, current, not too old; oldest first."""
        now = self.clock()
        for name, at in list(self.claimed.items()):
            if now - at > CLAIM_MEMORY:
                del self.claimed[name]
        found = [p for p in pods.get(language) or () if p.ready and not p.claimed and not p.deleting
                 and not p.terminal and p.spec_hash == self.hashes.get(language) and p.name not in self.claimed
                 and now - p.created < self._max_idle() - CLAIM_MARGIN]
        return sorted(found, key=lambda p: p.created)

    # ---- keeping each pool at its size
    async def reconcile(self, pods: IndexLike[PoolPodRecord], jobs: IndexLike[PoolJobRecord],
                        subs: IndexLike[SubmissionRecord]) -> None:
        """One pass: retire what must go, then create what is missing, for every language."""
        if not self.enabled and not any(jobs.values()):
            return
        now = self.clock()
        await self._leftovers(jobs, subs, now)
        for name, (_, at) in list(self.created.items()):
            if now - at > CREATE_GRACE or any(j.name == name for values in jobs.values() for j in values):
                del self.created[name]
        demand = {language: len(recs) for language, recs in self._fitting(waiting(subs)).items()}
        for language in sorted(set(self.hashes) | set(jobs)):
            try:
                await self._reconcile(language, list(pods.get(language) or ()), list(jobs.get(language) or ()), now,
                                      self._want(language, demand.get(language, 0), now))
            except Exception:
                log.exception("keeping the %s pool at its size failed; retrying", language)

    async def _leftovers(self, jobs: IndexLike[PoolJobRecord], subs: IndexLike[SubmissionRecord],
                         now: datetime) -> None:
        """Claimed pool Jobs whose submission finished or is gone: a pod serves one program, then goes."""
        for values in list(jobs.values()):
            for job in list(values):
                if not job.key or job.deleting or now - job.created < LEFTOVER_GRACE:
                    continue
                sub = next(iter(subs.get(job.key) or ()), None)
                if sub is None or (sub.finished and now - (sub.completed or now) >= LEFTOVER_GRACE):
                    log.info("deleting pool Job %s: its submission %s", job.name,
                             "is gone" if sub is None else "finished")
                    await self.cluster.delete_job(job.name)

    def _retire_reason(self, job: PoolJobRecord, pods: list[PoolPodRecord], now: datetime) -> str | None:
        want = self.size(job.language)
        if job.spec_hash != self.hashes.get(job.language):
            return "its spec changed (upgrade)"
        if want <= 0:
            return "the pool is off"
        if job.finished:
            return "its Job ended"
        if any(p.terminal for p in pods):
            return "its pod ended (died or evicted)"
        if now - job.created > self._max_idle():
            return "it was idle too long"
        return None

    def _want(self, language: str, demand: int, now: datetime) -> tuple[int, int]:
        """(pods to have, pods to keep): the pool's size, or one pod per waiting submission up to size + burst;
        while the last growth is recent, extra pods already there are kept (up to size + burst)."""
        size = self.size(language)
        want = max(size, min(demand, size + self.burst(language)))
        if want > size:
            self.burst_at[language] = now
        lingering = now - self.burst_at.get(language, EPOCH) < BURST_LINGER
        return want, size + self.burst(language) if lingering else want

    def _unclaimed(self, language: str, pods: list[PoolPodRecord], jobs: list[PoolJobRecord],
                   now: datetime) -> tuple[list[PoolJobRecord], list[tuple[PoolJobRecord, str]], list[str]]:
        """The language's pool Jobs nobody claimed: (those that stay, those to retire with why, those this
        process created that the indexes do not show yet)."""
        claimed_jobs = {p.job_name for p in pods if p.claimed} | {
            p.job_name for p in pods if p.name in self.claimed}
        keep: list[PoolJobRecord] = []
        retire: list[tuple[PoolJobRecord, str]] = []
        for job in jobs:
            if job.claimed or job.name in claimed_jobs or job.deleting:
                continue
            reason = self._retire_reason(job, [p for p in pods if p.job_name == job.name], now)
            if reason is None:
                keep.append(job)
            else:
                retire.append((job, reason))
        pending = [n for n, (lang, _) in self.created.items() if lang == language and all(j.name != n for j in jobs)]
        return keep, retire, pending

    async def _reconcile(self, language: str, pods: list[PoolPodRecord], jobs: list[PoolJobRecord],
                         now: datetime, wanted: tuple[int, int] | None = None) -> None:
        keep, retire, pending = self._unclaimed(language, pods, jobs, now)
        for job, reason in retire:
            log.info("retiring idle pool Job %s: %s", job.name, reason)
            await self.cluster.delete_job(job.name)
        want, ceiling = wanted or (self.size(language), self.size(language))
        have = len(keep) + len(pending)
        # surplus: the newest (least likely to be ready) go first
        for job in sorted(keep, key=lambda j: j.created, reverse=True)[: max(0, have - max(want, ceiling))]:
            log.info("retiring idle pool Job %s: the pool is above its size", job.name)
            await self.cluster.delete_job(job.name)
        if have >= want:
            return
        language_entry = self.settings.registry.get(language)
        if language_entry is None:
            return
        if not self.policy_ready:  # deny-all selects pool pods before the first of them exists; the runner
            await self.cluster.create_network_policy(builders.build_pool_network_policy(self.settings))
            await self.cluster.create_configmap(
                builders.build_runner_configmap(self.settings, builders.runner_binary()))
            self.policy_ready = True
        for _ in range(want - have):
            name = await self.cluster.create_pool_job(builders.build_pool_job(language_entry, self.settings))
            self.created[name] = (language, self.clock())
            log.info("created idle pool Job %s", name)

    # ---- waiting for a pod that is starting
    def _fitting(self, queue: list[SubmissionRecord]) -> dict[str, list[SubmissionRecord]]:
        """The waiting submissions that would claim a pool pod, by language, in FIFO order."""
        out: dict[str, list[SubmissionRecord]] = {}
        for rec in queue:
            shape = (rec.language, rec.asked, rec.cold_only)  # a few shapes, however long the queue
            fits = self._fits.get(shape)
            if fits is None:
                if len(self._fits) >= 1024:  # limits come in any number of values: keep it small
                    self._fits.clear()
                fits = self._fits[shape] = record_fits(rec, self.settings)
            if fits:
                out.setdefault(rec.language, []).append(rec)
        return out

    def deferred(self, queue: list[SubmissionRecord], pods: IndexLike[PoolPodRecord],
                 jobs: IndexLike[PoolJobRecord]) -> set[str]:
        """The keys of waiting submissions (`queue`, FIFO) that wait for one of their pool's starting pods
        instead of taking the cold path now: in order, the first ones get the ready pods, the next ones one
        starting pod each, for at most warm_pool_wait_seconds; the rest go cold as ever."""
        now = self.clock()
        patience = timedelta(seconds=self.settings.warm_pool_wait_seconds)
        out: set[str] = set()
        seen: set[str] = set()
        for language, recs in self._fitting(queue).items():
            ready = len(self.idle(pods, language))
            keep, _, pending = self._unclaimed(language, list(pods.get(language) or ()),
                                               list(jobs.get(language) or ()), now)
            seats = len(keep) + len(pending) - ready  # pods of the pool that are starting
            for rec in recs[ready:]:
                if seats <= 0:
                    break
                seen.add(rec.key)
                if now - self.waiting_since.setdefault(rec.key, now) < patience:
                    out.add(rec.key)
                    seats -= 1
            self.waits[language] = sum(1 for rec in recs if rec.key in out)
        for language in set(self.waits) - {rec.language for rec in queue}:
            self.waits[language] = 0
        for key in set(self.waiting_since) - seen:
            del self.waiting_since[key]
        return out

    # ---- claims
    async def claim(self, sub: Submission, pods: IndexLike[PoolPodRecord]) -> str | None:
        """Claim an idle pod for `sub` and deliver its job; its pool Job's name, or None: take the cold path."""
        language = sub.language.name
        key = names.key(sub.name)
        mine = [p for values in pods.values() for p in values if p.key == key]
        if mine:  # claimed by an earlier process that died before writing `running`
            return await self._resume(sub, mine[0])
        if not warm_eligible(sub, self.settings):
            if self.size(language) > 0:
                self.stats.miss(language, "limits")
            return None
        candidates = self.idle(pods, language)
        if not candidates:
            self.stats.miss(language, "empty")
            return None
        for pod in candidates[:CLAIM_ATTEMPTS]:
            started = self.clock()
            if not await self.cluster.patch_pod(pod.name, claim_ops(pod, key)):
                self.claimed[pod.name] = started  # someone else's now, or changed: skip it
                continue
            self.claimed[pod.name] = started
            delivered = await self._hand_over(sub, pod)
            if delivered:
                self.stats.hit(language, (self.clock() - started).total_seconds())
                log.info("%s runs warm in %s", sub.name, pod.name)
                return pod.job_name
            self.stats.miss(language, "delivery")
            return None
        self.stats.miss(language, "contended")
        return None

    async def _hand_over(self, sub: Submission, pod: PoolPodRecord) -> bool:
        """Owner and job to a pod this process just claimed; on any failure the pod goes, unused."""
        container = builders.delivery_container(sub.language)
        compiles = sub.language.compiles
        # The run phase's envelope on a stream, kept open this long: the job's own for an interpreted
        # language; for a compiled one, a second attach to the run container (see _stream).
        linger = 0.0 if self.sink is None else sub.timeout_seconds + STREAM_SLACK_SECONDS + (
            sub.language.compile_limits.timeout_seconds if compiles else 0)
        try:
            if not await self.cluster.patch_job(pod.job_name, builders.claim_owner_patch(sub)):
                raise RuntimeError(f"pool Job {pod.job_name} is gone")
            acked, output = await self.cluster.attach(pod.name, container, builders.job_frame(sub.code, sub.stdin),
                                                      ACCEPTED, 0.0 if compiles else linger)
            if not acked:
                raise RuntimeError("the runner did not acknowledge the job")
        except Exception as exc:
            log.warning("delivering %s to %s failed (%s); it takes the cold path", sub.name, pod.name, exc)
            await self._discard(pod)
            return False
        if linger:
            task = asyncio.create_task(self._stream(sub, pod, output, linger), name=f"stream-{sub.name}")
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
        return True

    async def _stream(self, sub: Submission, pod: PoolPodRecord, output: asyncio.Future[bytes],
                      linger: float) -> None:
        """The run phase's envelope from an attach stream, to the sink: the job's stream (`output`), or for a
        compiled language one attached now, stdout only, to the run container while the compiler still
        runs. Whatever goes wrong here, the pod's end and logs still decide."""
        compiles = sub.language.compiles
        with contextlib.suppress(Exception):
            if compiles:
                _, output = await self.cluster.attach(pod.name, RUN, b"", b"", linger)
            data = await output
            if self.sink is not None and data:
                await self.sink(sub, pod.job_name, data, pod.name if compiles else "")

    async def _resume(self, sub: Submission, pod: PoolPodRecord) -> str | None:
        """A pod claimed for `sub` before a restart: running warm if its runner accepted the job (its
        program may have run: never run it again), else discarded for the cold path."""
        container = builders.delivery_container(sub.language)
        log_ = await self.cluster.read_log(pod.name, container, 50, 64 * 1024)
        if log_ is not None and ACCEPTED in log_:
            await self.cluster.patch_job(pod.job_name, builders.claim_owner_patch(sub))
            log.info("%s had been delivered to %s before a restart; it stays there", sub.name, pod.name)
            return pod.job_name
        await self._discard(pod)
        return None

    async def _discard(self, pod: PoolPodRecord) -> None:
        try:
            await self.cluster.delete_job(pod.job_name)
        except Exception:
            log.exception("could not delete the pool Job %s; its deadline ends it", pod.job_name)


def pool_sizes(pods: IndexLike[PoolPodRecord], jobs: IndexLike[PoolJobRecord]) -> dict[str, tuple[int, int]]:
    """language -> (pool Jobs not claimed, idle pods ready): for /metrics."""
    out: dict[str, tuple[int, int]] = {}
    for language, values in jobs.items():
        size = sum(1 for j in values if not j.claimed and not j.deleting and not j.finished)
        ready = sum(1 for p in pods.get(language) or () if p.ready and not p.claimed and not p.deleting)
        out[language] = (size, ready)
    return out

