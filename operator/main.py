"""The kopf handlers of the operator: a thin registry; each handler calls one module that does the work.

One active operator at a time: run a single replica with the Recreate strategy (kopf runs standalone,
without peering CRDs). A second replica would not double-run anything (every child has a deterministic
name and every status write is compare-and-set), but it could admit more than MAX_WORKERS at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import kopf

from monaco.core import logs
from monaco.core import resource as r
from monaco.core.models import Status, utcnow
from monaco.core.settings import Settings
from monaco.operator import metrics, names, state
from monaco.operator.admission import Admission, Indexes, occupied
from monaco.operator.callbacks import Callbacks
from monaco.operator.cleanup import sweep
from monaco.operator.cluster import Cluster
from monaco.operator.collect import Collector
from monaco.operator.pool import Pool, PoolJobRecord, PoolPodRecord, pool_job_record, pool_pod_record
from monaco.operator.state import waiting

log = logging.getLogger("monaco.operator")
CRS = (f"{r.GROUP}/{r.VERSION}", r.PLURAL)
JOBS = ("batch/v1", "jobs")
PODS = ("v1", "pods")
POOL_SELECTOR: dict[str, Any] = {**names.SANDBOX_SELECTOR, names.POOL: kopf.PRESENT}
TICK_SECONDS = 1.0
EMPTY_NAMESPACE_SECONDS = 10.0  # the safety timer: admission and checks run at least this often
SWEEP_EVERY = timedelta(seconds=60)
MEMO_KEY = "monaco"


@dataclass
class Context:
    """What the handlers share, kept in kopf's memo."""

    settings: Settings
    cluster: Cluster
    admission: Admission
    collector: Collector
    indexed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last_pass: float = 0.0  # wall-clock time of the admission loop's last complete pass (for /metrics)

    pool: Pool | None = None
    callbacks: Callbacks | None = None

    @classmethod
    def create(cls, settings: Settings, cluster: Cluster) -> Context:
        warm = Pool(settings, cluster)
        warm_pool = warm if warm.enabled else None  # empty warmPool: the cold path alone, as ever
        admission = Admission(settings, cluster, pool=warm_pool)
        collector = Collector(settings, cluster, admission.wake, admission.inflight)
        warm.sink = collector.streamed
        return cls(settings, cluster, admission, collector, pool=warm, callbacks=Callbacks(settings, cluster))


def _ctx(memo: Any) -> Context:
    ctx = memo[MEMO_KEY]
    assert isinstance(ctx, Context)
    return ctx


# The indexes kopf keeps (below) and hands every handler by these parameter names.
SubmissionsIndex = kopf.Index[str, state.SubmissionRecord]
JobsIndex = kopf.Index[str, state.JobRecord]
PodsIndex = kopf.Index[str, state.PodRecord]
PoolPodsIndex = kopf.Index[str, PoolPodRecord]
PoolJobsIndex = kopf.Index[str, PoolJobRecord]
# kopf always passes every index; the default only tells mypy that kopf's handler protocols, which name no
# index, may call these handlers.
UNSET: Any = None


# ---- indexes: the cluster's state, rebuilt from a full listing on every start
@kopf.index(*CRS)
def submissions_index(body: kopf.Body, **_: Any) -> dict[str, state.SubmissionRecord]:
    rec = state.submission_record(body)
    return {rec.key: rec}


@kopf.index(*JOBS, labels=names.SANDBOX_SELECTOR)
def jobs_index(body: kopf.Body, **_: Any) -> dict[str, state.JobRecord]:
    rec = state.job_record(body)
    return {rec.key: rec}


@kopf.index(*PODS, labels=names.SANDBOX_SELECTOR)
def pods_index(body: kopf.Body, **_: Any) -> dict[str, state.PodRecord]:
    rec = state.pod_record(body)
    return {rec.key: rec}


@kopf.index(*PODS, labels=POOL_SELECTOR)
def pool_pods_index(body: kopf.Body, **_: Any) -> dict[str, PoolPodRecord]:
    rec = pool_pod_record(body)
    return {rec.language: rec}


@kopf.index(*JOBS, labels=POOL_SELECTOR)
def pool_jobs_index(body: kopf.Body, **_: Any) -> dict[str, PoolJobRecord]:
    rec = pool_job_record(body)
    return {rec.language: rec}


# ---- events
@kopf.on.event(*CRS)
async def submission_event(
    body: kopf.Body, type: str | None, memo: kopf.Memo,
    submissions_index: SubmissionsIndex = UNSET, jobs_index: JobsIndex = UNSET, pods_index: PodsIndex = UNSET,
    pool_pods_index: PoolPodsIndex = UNSET, pool_jobs_index: PoolJobsIndex = UNSET, **_: Any,
) -> None:
    ctx = _ctx(memo)
    ctx.indexed.set()  # kopf runs no handler before every index is filled
    ctx.admission.wake()
    if type == "DELETED":
        ctx.admission.forget(names.key(body.meta.name or ""))
        return
    rec = state.submission_record(body)
    if rec.phase == Status.PENDING and not rec.deleting:
        await ctx.admission.queue(dict(body))
    elif rec.finished:
        ix = Indexes(submissions_index, jobs_index, pods_index, pool_pods_index, pool_jobs_index)
        await ctx.collector.finished_children(rec, ix)


@kopf.on.event(*JOBS, labels=names.SANDBOX_SELECTOR)
async def job_event(
    body: kopf.Body, memo: kopf.Memo,
    submissions_index: SubmissionsIndex = UNSET, jobs_index: JobsIndex = UNSET, pods_index: PodsIndex = UNSET,
    pool_pods_index: PoolPodsIndex = UNSET, pool_jobs_index: PoolJobsIndex = UNSET, **_: Any,
) -> None:
    ctx = _ctx(memo)
    ctx.indexed.set()
    ix = Indexes(submissions_index, jobs_index, pods_index, pool_pods_index, pool_jobs_index)
    await ctx.collector.on_job(dict(body), ix)


@kopf.on.event(*PODS, labels=names.SANDBOX_SELECTOR)
async def pod_event(
    body: kopf.Body, memo: kopf.Memo,
    submissions_index: SubmissionsIndex = UNSET, jobs_index: JobsIndex = UNSET, pods_index: PodsIndex = UNSET,
    pool_pods_index: PoolPodsIndex = UNSET, pool_jobs_index: PoolJobsIndex = UNSET, **_: Any,
) -> None:
    ctx = _ctx(memo)
    ctx.indexed.set()
    ix = Indexes(submissions_index, jobs_index, pods_index, pool_pods_index, pool_jobs_index)
    await ctx.collector.on_pod(dict(body), ix)


# ---- the loop that admits (woken by every event above) and runs the periodic checks
# Admission is one loop, not a handler per object: whether a submission may start depends on every other
# (FIFO order across all of them, at most MAX_WORKERS running), which no per-object handler sees at once;
# the loop reads the indexes, admits what fits in order, and is woken by any event that could change that.
async def loop(ctx: Context, ix: Indexes, clock: Any = utcnow) -> None:
    if ctx.admission.pool is None:
        await ctx.indexed.wait()
    else:
        # An empty namespace sends no event at all, and a pool must be filled all the same: with no event
        # for this long after start, there is nothing labelled to index.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.indexed.wait(), timeout=EMPTY_NAMESPACE_SECONDS)
    last_sweep: datetime | None = None
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.admission.woken.wait(), timeout=TICK_SECONDS)
        ctx.admission.woken.clear()
        try:
            await ctx.admission.queue_missed(ix)
            await ctx.admission.admit_next(ix)
            await ctx.collector.check(ix)
            if ctx.callbacks is not None:
                await ctx.callbacks.check(ix.submissions)
            if ctx.pool is not None:  # also drains what an earlier release's pools left behind
                await ctx.pool.reconcile(ix.pool_pods, ix.pool_jobs, ix.submissions)
            now = clock()
            if last_sweep is None or now - last_sweep >= SWEEP_EVERY:
                last_sweep = now
                subs = [s for values in list(ix.submissions.values()) for s in values]
                await sweep(ctx.cluster, subs, now, ctx.settings.finished_ttl_seconds)
            ctx.last_pass = time.time()
        except Exception:
            log.exception("admission loop iteration failed; retrying")


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo,
    submissions_index: SubmissionsIndex = UNSET, jobs_index: JobsIndex = UNSET, pods_index: PodsIndex = UNSET,
    pool_pods_index: PoolPodsIndex = UNSET, pool_jobs_index: PoolJobsIndex = UNSET, **_: Any,
) -> None:
    configure(settings)
    ctx = _ctx(memo)
    ix = Indexes(submissions_index, jobs_index, pods_index, pool_pods_index, pool_jobs_index)
    if ctx.pool is not None and ctx.settings.metrics_port:
        metrics.serve(ctx.settings.metrics_port, ctx.pool, lambda: (ix.pool_pods, ix.pool_jobs),
                      lambda: metrics.Health(ctx.last_pass, dict(ctx.admission.admitted),
                                             len(occupied(ix, ctx.admission.inflight)), len(waiting(ix.submissions))))
    ctx.task = asyncio.create_task(loop(ctx, ix), name="monaco-admission")


@kopf.on.probe(id="admission")
def probe(memo: kopf.Memo, **_: Any) -> str:
    """Part of the liveness endpoint: the operator is not alive if its admission loop is gone."""
    ctx = _ctx(memo)
    if ctx.task is None or ctx.task.done():
        raise RuntimeError("the admission loop is not running")
    return "running"


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx = _ctx(memo)
    if ctx.task is not None:
        ctx.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctx.task


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's own settings: monaco-prefixed annotations, no peering, warnings posted as events."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=r.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=r.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{r.GROUP}/operator"
    settings.peering.standalone = True
    # Namespaced RBAC: no cluster-wide watching of namespaces and CRDs (the CRD must exist at start).
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def run(settings: Settings) -> int:
    """`monaco operator`: watch settings.namespace only, serve liveness on settings.health_port."""
    logs.configure(settings.log_level, settings.log_json)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # not one line per handled event
    ctx = Context.create(settings, Cluster(settings.namespace))
    kopf.run(
        standalone=True,
        namespaces=[settings.namespace],
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        memo=kopf.Memo(**{MEMO_KEY: ctx}),
    )
    return 0
