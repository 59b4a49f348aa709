"""Collecting results and ending every submission exactly once, whatever happens to its pod and Job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from monaco.core.models import Outcome, Verdict
from monaco.core.settings import Settings
from monaco.operator import cleanup
from monaco.operator.admission import Admission, Indexes
from monaco.operator.collect import Collector
from tests.operator.conftest import (
    Clock,
    FakeCluster,
    container_status,
    indexes,
    job,
    pod,
    submission,
)

RUN_OK = container_status("run", terminated="Completed")


def make(settings: Settings, cluster: FakeCluster, clock: Clock) -> Collector:
    admission = Admission(settings, cluster, clock)  # type: ignore[arg-type]
    return Collector(settings, cluster, admission.wake, admission.inflight, clock)  # type: ignore[arg-type]


def running(name: str = "a", **kw: Any) -> dict[str, Any]:
    return submission(name, phase="running", startedAt="2026-01-01T12:00:00.000Z", **kw)


def seen(cluster: FakeCluster, pods: list[dict[str, Any]] = ()) -> Indexes:  # type: ignore[assignment]
    return indexes(list(cluster.submissions.values()), list(cluster.jobs.values()), pods)


def with_children(cluster: FakeCluster, name: str = "a", **job_kw: Any) -> None:
    cluster.jobs[f"csub-{name}"] = job(name, **job_kw)
    cluster.configmaps[f"csub-{name}"] = {}
    cluster.network_policies[f"csub-{name}"] = {}


@pytest.mark.anyio
async def test_ended_pod_is_collected_and_its_children_removed(
    settings: Settings, clock: Clock, runner: Callable[..., bytes]
) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    ended = pod("a", phase="Succeeded", containers=[RUN_OK])
    cluster.logs[(ended["metadata"]["name"], "run")] = runner("run", "echo 42")
    collector = make(settings, cluster, clock)
    await collector.on_pod(ended, seen(cluster, [ended]))
    status = cluster.status("a")
    assert status["phase"] == "completed" and status["verdict"] == "ok" and status["output"] == "42\n"
    assert status["executionTimeMs"] > 0 and status["completedAt"] == "2026-01-01T12:00:00.000Z"
    assert cluster.jobs == cluster.configmaps == cluster.network_policies == {}
    assert collector.wake.__self__.woken.is_set()  # type: ignore[attr-defined]  # admission was woken
    reads = [c for c in cluster.calls if c[0] == "read_log"]
    assert reads and all(c[3] <= 40 and c[4] < 1_000_000 for c in reads)  # bounded reads


@pytest.mark.anyio
async def test_the_same_pod_seen_twice_writes_one_result(
    settings: Settings, clock: Clock, runner: Callable[..., bytes]
) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    ended = pod("a", phase="Succeeded", containers=[RUN_OK])
    cluster.logs[(ended["metadata"]["name"], "run")] = runner("run", "exit 1")
    collector = make(settings, cluster, clock)
    stale = seen(cluster, [ended])
    await asyncio.gather(collector.on_pod(ended, stale), collector.on_pod(ended, stale))
    await collector.on_pod(ended, stale)  # a late duplicate event with the stale index
    await collector.check(stale)  # and the periodic check, before the index catches up
    assert len(cluster.status_writes) == 1
    assert cluster.status("a")["verdict"] == "runtime_error"
    # No second round of log reads and deletes either.
    assert len([c for c in cluster.calls if c[0] == "read_log"]) == 1
    assert len([c for c in cluster.calls if c[0] == "delete_children"]) == 1


@pytest.mark.anyio
async def test_two_processes_racing_cannot_write_two_verdicts(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    wrote = await asyncio.gather(
        cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.TIMEOUT), clock()),  # type: ignore[arg-type]
        cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.SYSTEM_ERROR), clock()),  # type: ignore[arg-type]
    )
    assert sorted(wrote) == [False, True]
    assert len(cluster.status_writes) == 1


@pytest.mark.anyio
async def test_finish_follows_a_queued_to_running_move(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    assert await cleanup.finish(cluster, "a", "queued", Outcome(verdict=Verdict.OK), clock())  # type: ignore[arg-type]
    assert cluster.status("a")["verdict"] == "ok"


@pytest.mark.anyio
async def test_a_fast_warm_run_racing_admissions_running_write_keeps_its_verdict(settings: Settings,
                                                                                   clock: Clock) -> None:
    """A warm run finished from its attach stream before admission wrote `running` (the stream's write
    tests `running`: it fails), then admission's `running` lands between the re-read and the retry at
    `queued`: the third write must carry the program's verdict, never the bare "could not be stored"
    (the CI failure of stop 7: a Python exit(3) judged system_error)."""
    cluster = FakeCluster(submission("a", phase="queued"))
    real_get = cluster.get_submission

    async def get_then_admission_writes_running(name: str) -> dict[str, Any] | None:
        body = await real_get(name)
        if cluster.submissions[name]["status"]["phase"] == "queued":
            cluster.submissions[name]["status"]["phase"] = "running"
        return body

    cluster.get_submission = get_then_admission_writes_running  # type: ignore[method-assign]
    outcome = Outcome(verdict=Verdict.RUNTIME_ERROR, exit_code=3, output="partial\n")
    assert await cleanup.finish(cluster, "a", "running", outcome, clock())  # type: ignore[arg-type]
    status = cluster.status("a")
    assert (status["verdict"], status["exitCode"], status["output"]) == ("runtime_error", 3, "partial\n"), status


@pytest.mark.anyio
async def test_running_landing_between_the_failed_write_and_the_re_read_keeps_the_verdict(
        settings: Settings, clock: Clock) -> None:
    """The stream's write tests `running` while the phase is still `queued` (it fails); admission's
    `running` lands before the re-read, which then shows the very phase the write tested. That is no
    refusal of the content: the retry at `running` carries the program's verdict (the e2e failure of
    this session: a warm pty-flood run judged "could not be stored")."""
    cluster = FakeCluster(submission("a", phase="queued"))
    real_get = cluster.get_submission

    async def admission_writes_running_then_get(name: str) -> dict[str, Any] | None:
        cluster.submissions[name]["status"]["phase"] = "running"
        return await real_get(name)

    cluster.get_submission = admission_writes_running_then_get  # type: ignore[method-assign]
    outcome = Outcome(verdict=Verdict.OK, output="bounded\n", exit_code=0)
    assert await cleanup.finish(cluster, "a", "running", outcome, clock())  # type: ignore[arg-type]
    assert (cluster.status("a")["verdict"], cluster.status("a")["output"]) == ("ok", "bounded\n")


@pytest.mark.anyio
async def test_transient_errors_never_turn_a_result_into_the_bare_verdict(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    real_patch = cluster.patch_status
    failures = iter([ConnectionResetError("connection reset by peer"), TimeoutError("read timed out")])

    async def flaky(name: str, ops: list[dict[str, Any]]) -> bool:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real_patch(name, ops)

    cluster.patch_status = flaky  # type: ignore[method-assign]
    outcome = Outcome(verdict=Verdict.RUNTIME_ERROR, exit_code=3)
    assert await cleanup.finish(cluster, "a", "running", outcome, clock())  # type: ignore[arg-type]
    assert cluster.status("a")["verdict"] == "runtime_error"


@pytest.mark.anyio
async def test_an_api_server_that_keeps_failing_leaves_the_submission_to_the_periodic_check(
        settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())

    async def down(name: str, ops: list[dict[str, Any]]) -> bool:
        raise ConnectionRefusedError("connection refused")

    cluster.patch_status = down  # type: ignore[method-assign]
    assert not await cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.OK), clock())  # type: ignore[arg-type]
    assert cluster.status("a")["phase"] == "running"  # nothing written: no bare verdict for a hiccup


@pytest.mark.anyio
async def test_a_result_the_api_server_refuses_still_ends_the_submission(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    cluster.refuse_status = lambda ops: any(op.get("path") == "/status/output" and op["value"] for op in ops)
    wrote = await cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.OK, output="x"), clock())  # type: ignore[arg-type]
    assert wrote
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "could not be stored" in status["message"]
    assert cluster.jobs == {}


@pytest.mark.anyio
async def test_a_write_that_fails_with_an_error_falls_back_to_a_bare_verdict(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    real_patch = cluster.patch_status

    async def too_large(name: str, ops: list[dict[str, Any]]) -> bool:
        if any(op.get("path") == "/status/output" and op["value"] for op in ops):
            raise RuntimeError("etcdserver: request is too large")
        return await real_patch(name, ops)

    cluster.patch_status = too_large  # type: ignore[method-assign]
    assert await cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.OK, output="x"), clock())  # type: ignore[arg-type]
    assert cluster.status("a")["verdict"] == "system_error"


@pytest.mark.anyio
async def test_finish_of_a_deleted_submission_writes_nothing(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    assert not await cleanup.finish(cluster, "a", "running", Outcome(verdict=Verdict.OK), clock())  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_finished_submission_whose_job_survived_a_crash_is_torn_down(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="completed", verdict="ok"))
    with_children(cluster)
    collector = make(settings, cluster, clock)
    await collector.check(seen(cluster))
    assert cluster.jobs == cluster.configmaps == {}
    assert cluster.status_writes == []


@pytest.mark.anyio
async def test_image_that_cannot_be_pulled_fails_at_once(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    stuck = pod("a", phase="Pending", containers=[container_status("run", waiting="InvalidImageName",
                                                                   message="bad ref")])
    await make(settings, cluster, clock).on_pod(stuck, seen(cluster, [stuck]))
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "bad ref" in status["message"]
    assert cluster.jobs == {}


@pytest.mark.anyio
async def test_unschedulable_pod_fails_at_the_start_deadline_by_the_periodic_check(
    settings: Settings, clock: Clock
) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    stuck = pod("a", phase="Pending", unschedulable="0/1 nodes are available: insufficient memory")
    collector = make(settings, cluster, clock)
    await collector.check(seen(cluster, [stuck]))
    assert cluster.phase("a") == "running"
    clock.advance(settings.start_deadline_seconds + 1)
    await collector.check(seen(cluster, [stuck]))
    assert cluster.status("a")["verdict"] == "system_error"
    assert "insufficient memory" in cluster.status("a")["message"]


@pytest.mark.anyio
async def test_job_deleted_by_someone_else_is_a_system_error(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    collector = make(settings, cluster, clock)
    clock.advance(2)
    await collector.check(seen(cluster))
    assert cluster.phase("a") == "running"  # too early to tell from a lagging index
    clock.advance(5)
    await collector.check(seen(cluster))
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "deleted" in status["message"]


@pytest.mark.anyio
async def test_a_lagging_job_index_is_not_mistaken_for_a_lost_job(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    ix = indexes(list(cluster.submissions.values()))  # the Job exists, the index does not show it yet
    clock.advance(10)
    await make(settings, cluster, clock).check(ix)
    assert cluster.phase("a") == "running"


@pytest.mark.anyio
async def test_pod_deleted_by_someone_else_is_a_system_error(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    killed = pod("a", phase="Failed", deleting=True,
                 containers=[container_status("run", terminated="Error", exit_code=137)])
    await make(settings, cluster, clock).on_pod(killed, seen(cluster, [killed]))
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "deleted before the program finished" in status["message"]


@pytest.mark.anyio
async def test_job_deadline_exceeded_is_a_timeout(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster, conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
    collector = make(settings, cluster, clock)
    await collector.on_job(cluster.jobs["csub-a"], seen(cluster, [pod("a", phase="Running", deleting=True)]))
    assert cluster.status("a")["verdict"] == "timeout"


@pytest.mark.anyio
async def test_job_deadline_leaves_an_ended_pod_to_the_pod_path(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster, conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
    ended = pod("a", phase="Failed", containers=[container_status("run", terminated="Error", exit_code=137)])
    collector = make(settings, cluster, clock)
    await collector.on_job(cluster.jobs["csub-a"], seen(cluster, [ended]))
    assert cluster.status_writes == []
    await collector.on_pod(ended, seen(cluster, [ended]))
    assert cluster.status("a")["verdict"] == "timeout"


@pytest.mark.anyio
async def test_job_never_creating_a_pod_fails_at_the_start_deadline(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    collector = make(settings, cluster, clock)
    await collector.check(seen(cluster))
    assert cluster.phase("a") == "running"
    clock.advance(settings.start_deadline_seconds + 1)
    await collector.check(seen(cluster))
    assert "was not created" in cluster.status("a")["message"]


@pytest.mark.anyio
async def test_a_failed_job_whose_pod_vanished_is_a_system_error(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    await make(settings, cluster, clock).check(seen(cluster))
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "BackoffLimitExceeded" in status["message"]


@pytest.mark.anyio
async def test_a_pod_that_ended_before_running_was_written_gets_a_start_time(
    settings: Settings, clock: Clock
) -> None:
    # The operator died between creating the Job and writing `running`; the pod ended meanwhile.
    cluster = FakeCluster(submission("a", phase="queued", queuedAt="2026-01-01T11:59:59.000Z"))
    with_children(cluster)
    ended = pod("a", phase="Succeeded", created=-3, containers=[RUN_OK])
    await make(settings, cluster, clock).on_pod(ended, seen(cluster, [ended]))
    status = cluster.status("a")
    assert status["phase"] == "failed" and status["startedAt"] == "2026-01-01T11:59:57.000Z"


@pytest.mark.anyio
async def test_a_result_keeps_the_start_time_written_at_admission(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    ended = pod("a", phase="Succeeded", created=5, containers=[RUN_OK])
    await make(settings, cluster, clock).on_pod(ended, seen(cluster, [ended]))
    assert cluster.status("a")["startedAt"] == "2026-01-01T12:00:00.000Z"


@pytest.mark.anyio
async def test_a_missed_pod_event_is_caught_by_the_periodic_check(
    settings: Settings, clock: Clock, runner: Callable[..., bytes]
) -> None:
    cluster = FakeCluster(running())
    with_children(cluster)
    ended = pod("a", phase="Succeeded", containers=[RUN_OK])
    cluster.logs[(ended["metadata"]["name"], "run")] = runner("run", "echo late")
    await make(settings, cluster, clock).check(seen(cluster, [ended]))
    assert cluster.status("a")["output"] == "late\n"


@pytest.mark.anyio
async def test_nothing_stays_running_forever(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(running())
    with_children(cluster, deadline=30)
    alive = pod("a", phase="Running", containers=[container_status("run", running=True)])
    collector = make(settings, cluster, clock)
    clock.advance(100)
    await collector.check(seen(cluster, [alive]))
    assert cluster.phase("a") == "running"
    clock.advance(30)
    await collector.check(seen(cluster, [alive]))
    assert cluster.status("a")["verdict"] == "system_error" and cluster.jobs == {}


@pytest.mark.anyio
async def test_events_of_cancelled_or_unknown_submissions_change_nothing(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    ended = pod("gone", phase="Succeeded", containers=[RUN_OK])
    collector = make(settings, cluster, clock)
    await collector.on_pod(ended, seen(cluster, [ended]))
    await collector.on_job(job("gone"), seen(cluster))
    assert cluster.status_writes == [] and not [c for c in cluster.calls if c[0] == "read_log"]


@pytest.mark.anyio
async def test_ttl_sweep_deletes_only_expired_finished_submissions(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(
        submission("old", phase="completed", completedAt="2026-01-01T11:00:00.000Z"),
        submission("new", phase="failed", completedAt="2026-01-01T11:59:00.000Z"),
        submission("busy", phase="running"),
    )
    ix = seen(cluster)
    subs = [s for values in ix.submissions.values() for s in values]
    assert await cleanup.sweep(cluster, subs, clock(), ttl_seconds=3600) == 1  # type: ignore[arg-type]
    assert sorted(cluster.submissions) == ["busy", "new"]
