"""The kopf wiring: handlers registered for the right resources, kopf's settings, the admission loop, run()."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import kopf
import pytest
from kopf._core.intents import registries

from monaco.core.settings import Settings
from monaco.operator import main, names
from tests.operator.conftest import Clock, FakeCluster, container_status, indexes, job, pod, submission
from tests.support import wait_until


def context(settings: Settings, cluster: FakeCluster, clock: Clock) -> main.Context:
    ctx = main.Context.create(settings, cluster)
    ctx.admission.clock = ctx.collector.clock = clock
    return ctx


def handler_ids(handlers: Any) -> set[str]:
    return {str(h.id) for h in handlers}


def test_handlers_are_registered_for_submissions_jobs_and_pods() -> None:
    registry = registries.get_default_registry()
    indexes = {"submissions_index", "jobs_index", "pods_index", "pool_pods_index", "pool_jobs_index"}
    assert indexes <= handler_ids(registry._indexing.get_all_handlers())
    watching = handler_ids(h for h in registry._watching.get_all_handlers())
    assert {"submission_event", "job_event", "pod_event"} <= watching
    # No daemons, timers or change handlers: nothing puts a finalizer on a submission, so a cancel
    # (a DELETE) never waits for the operator.
    assert not list(registry._spawning.get_all_handlers())
    assert not list(registry._changing.get_all_handlers())


def test_sandbox_handlers_filter_by_label() -> None:
    registry = registries.get_default_registry()
    for handler in registry._watching.get_all_handlers():
        if str(handler.id) in ("job_event", "pod_event"):
            assert handler.labels == names.SANDBOX_SELECTOR


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    main.configure(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == "monaco.dev"
    assert settings.persistence.finalizer == "monaco.dev/operator"
    assert settings.peering.standalone is True
    assert settings.scanning.disabled is True  # RBAC is namespaced: no cluster-wide watches
    assert settings.posting.enabled


def test_run_watches_one_namespace_and_serves_liveness(settings: Settings) -> None:
    settings = settings.model_copy(update={"health_port": 9090})
    with mock.patch.object(kopf, "run") as run, mock.patch.object(main, "Cluster") as cluster:
        assert main.run(settings) == 0
    cluster.assert_called_once_with(settings.namespace)
    kwargs = run.call_args.kwargs
    assert kwargs["namespaces"] == [settings.namespace]
    assert kwargs["liveness_endpoint"] == "http://0.0.0.0:9090/healthz"
    assert kwargs["standalone"] is True
    assert isinstance(kwargs["memo"][main.MEMO_KEY], main.Context)


@pytest.mark.anyio
async def test_a_new_submission_is_queued_then_admitted_by_the_loop(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a"))
    ctx = context(settings, cluster, clock)
    ix = indexes()
    memo = kopf.Memo(**{main.MEMO_KEY: ctx})
    task = asyncio.create_task(main.loop(ctx, ix, clock))
    try:
        await main.submission_event(body=kopf.Body(cluster.submissions["a"]), type="ADDED", memo=memo,
                                    submissions_index=ix.submissions, jobs_index=ix.jobs, pods_index=ix.pods,
                                    pool_pods_index={}, pool_jobs_index={})
        assert cluster.phase("a") == "queued" and ctx.indexed.is_set()
        # The watch delivers the change: kopf's index updates, the handler wakes the loop.
        ix.submissions["a"] = indexes([cluster.submissions["a"]]).submissions["a"]  # type: ignore[index]
        await main.submission_event(body=kopf.Body(cluster.submissions["a"]), type="MODIFIED", memo=memo,
                                    submissions_index=ix.submissions, jobs_index=ix.jobs, pods_index=ix.pods,
                                    pool_pods_index={}, pool_jobs_index={})
        await wait_until(lambda: cluster.phase("a") == "running", 5, "a to run")
        assert "csub-a" in cluster.jobs
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.anyio
async def test_the_loop_waits_for_the_indexes(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"))
    ctx = context(settings, cluster, clock)
    ix = indexes(list(cluster.submissions.values()))
    task = asyncio.create_task(main.loop(ctx, ix, clock))
    try:
        ctx.admission.wake()
        await asyncio.sleep(0)  # let it start: it must block on `indexed`
        assert cluster.jobs == {}
        ctx.indexed.set()
        await wait_until(lambda: "csub-a" in cluster.jobs, 5, "the Job csub-a")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.anyio
async def test_pod_and_job_events_reach_the_collector(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="running", startedAt="2026-01-01T12:00:00.000Z"))
    cluster.jobs["csub-a"] = job("a")
    stuck = pod("a", phase="Pending", containers=[container_status("run", waiting="InvalidImageName")])
    ix = indexes(list(cluster.submissions.values()), list(cluster.jobs.values()), [stuck])
    memo = kopf.Memo(**{main.MEMO_KEY: context(settings, cluster, clock)})
    kwargs = {"submissions_index": ix.submissions, "jobs_index": ix.jobs, "pods_index": ix.pods,
              "pool_pods_index": {}, "pool_jobs_index": {}}
    await main.job_event(body=kopf.Body(cluster.jobs["csub-a"]), memo=memo, **kwargs)
    assert cluster.phase("a") == "running"
    await main.pod_event(body=kopf.Body(stuck), memo=memo, **kwargs)
    assert cluster.status("a")["verdict"] == "system_error"


@pytest.mark.anyio
async def test_a_deleted_submission_frees_its_inflight_slot(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    ctx = context(settings, cluster, clock)
    ctx.admission.inflight["a"] = clock()
    body = kopf.Body(submission("a", phase="running"))
    await main.submission_event(body=body, type="DELETED", memo=kopf.Memo(**{main.MEMO_KEY: ctx}),
                                submissions_index={}, jobs_index={}, pods_index={},
                                pool_pods_index={}, pool_jobs_index={})
    assert ctx.admission.inflight == {} and ctx.admission.woken.is_set()


@pytest.mark.anyio
async def test_liveness_probe_fails_when_the_loop_is_gone(settings: Settings, clock: Clock) -> None:
    ctx = context(settings, FakeCluster(), clock)
    memo = kopf.Memo(**{main.MEMO_KEY: ctx})
    with pytest.raises(RuntimeError):
        main.probe(memo=memo)
    ctx.task = asyncio.create_task(main.loop(ctx, indexes(), clock))
    try:
        assert main.probe(memo=memo) == "running"
    finally:
        ctx.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ctx.task
    with pytest.raises(RuntimeError):
        main.probe(memo=memo)
