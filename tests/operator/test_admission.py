"""Admission: FIFO order, the slot count from cluster state, and idempotent, restart-safe admits."""

from __future__ import annotations

from typing import Any

import pytest

from monaco.core.settings import Settings
from monaco.operator import builders
from monaco.operator.admission import Admission, Indexes, occupied, plan
from monaco.operator.cluster import Rejected
from monaco.operator.state import waiting
from tests.operator.conftest import Clock, FakeCluster, container_status, indexes, job, pod, submission


def make(settings: Settings, cluster: FakeCluster, clock: Clock) -> Admission:
    return Admission(settings, cluster, clock)  # type: ignore[arg-type]


def index_of(cluster: FakeCluster, pods: list[dict[str, Any]] = ()) -> Indexes:  # type: ignore[assignment]
    """What kopf's indexes would hold once the watch caught up with the fake cluster."""
    return indexes(list(cluster.submissions.values()), list(cluster.jobs.values()), pods)


# ---- pure planning
def test_fifo_by_submit_time_then_creation_then_name() -> None:
    subs = [submission("c", created=2.5, phase="queued"), submission("a", created=2.1, phase="queued"),
            submission("b", created=2.1, phase="queued"), submission("d", created=0, phase="running"),
            submission("e", created=0)]
    assert [s.name for s in waiting(indexes(subs).submissions)] == ["e", "a", "b", "c"]  # e: new, not queued yet


def test_deleting_submissions_are_not_admitted() -> None:
    body = submission("a", phase="queued")
    body["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:01Z"
    assert waiting(indexes([body]).submissions) == []


def test_occupied_counts_live_pods_unfinished_jobs_running_submissions_and_inflight() -> None:
    ix = indexes(
        subs=[submission("run", phase="running"), submission("done", phase="completed"),
              submission("q", phase="queued")],
        jobs=[job("orphan"), job("done", conditions=[{"type": "Complete", "status": "True"}]),
              job("failed", conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])],
        pods=[pod("failed", phase="Running", deleting=True), pod("done", phase="Succeeded"),
              pod("cancelled", phase="Running")],
    )
    assert occupied(ix, ["new"]) == {"run", "orphan", "failed", "cancelled", "new"}


def test_plan_never_exceeds_max_workers() -> None:
    subs = [submission(f"s{i}", created=i, phase="queued") for i in range(5)]
    assert [s.name for s in plan(indexes(subs), 2)] == ["s0", "s1"]
    subs[0]["status"]["phase"] = "running"
    assert [s.name for s in plan(indexes(subs), 2)] == ["s1"]
    assert plan(indexes(subs), 2, inflight=["s1"]) == []


def test_a_queued_submission_whose_job_exists_keeps_its_slot_and_needs_no_other() -> None:
    # The operator died between creating s3's Job and writing `running`; two others are running.
    subs = [submission("s1", phase="running"), submission("s2", phase="queued", created=1),
            submission("s3", phase="queued", created=2), submission("s4", phase="running")]
    ix = indexes(subs, jobs=[job("s1"), job("s3"), job("s4")])
    assert len(occupied(ix)) == 3  # over max_workers=2 already: nothing new, but s3 is adopted
    assert [s.name for s in plan(ix, 2)] == ["s3"]


# ---- queueing
@pytest.mark.anyio
async def test_queue_writes_queued_once_with_the_api_submit_time(settings: Settings, clock: Clock) -> None:
    body = submission("a", created=1.25)
    cluster = FakeCluster(body)
    admission = make(settings, cluster, clock)
    assert await admission.queue(body) is not None
    assert cluster.status("a") == {"phase": "queued", "queuedAt": "2026-01-01T12:00:01.250Z"}
    # A stale event (the body seen before the write) changes nothing.
    assert await admission.queue(body) is None
    assert len(cluster.status_writes) == 1


# ---- admitting
@pytest.mark.anyio
async def test_admit_creates_children_then_marks_running(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued", queuedAt="x"))
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == ["a"]
    runner = builders.runner_configmap_name(builders.runner_binary())
    assert set(cluster.configmaps) == {"csub-a", runner}
    assert set(cluster.network_policies) == set(cluster.jobs) == {"csub-a"}
    status = cluster.status("a")
    assert status["phase"] == "running" and status["jobName"] == "csub-a"
    assert status["startedAt"] == "2026-01-01T12:00:00.000Z"
    creates = [c[0] for c in cluster.calls if c[0].startswith("create_")]
    # the shared runner ConfigMap once per operator process, then the submission's children
    assert creates == ["create_configmap", "create_configmap", "create_network_policy", "create_job"]
    assert "a" in admission.inflight
    cluster.submissions["b"] = submission("b", phase="queued", queuedAt="x")
    assert await admission.admit_next(index_of(cluster)) == ["b"]
    creates = [c[0] for c in cluster.calls if c[0].startswith("create_")]
    assert creates[4:] == ["create_configmap", "create_network_policy", "create_job"]


@pytest.mark.anyio
async def test_a_submission_never_queued_is_queued_and_admitted_with_one_read(settings: Settings,
                                                                              clock: Clock) -> None:
    """The create event's queue write failed, so admission queues it itself: one GET (for the spec, which
    the indexes do not hold), no second one after its own status write."""
    cluster = FakeCluster(submission("a"))
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == ["a"]
    assert cluster.status("a")["phase"] == "running" and set(cluster.jobs) == {"csub-a"}
    assert [c for c in cluster.calls if c[0] == "get_submission"] == [("get_submission", "a")]


@pytest.mark.anyio
async def test_burst_admits_max_workers_and_the_next_when_one_finishes(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(*[submission(f"s{i}", created=i, phase="queued") for i in range(5)])
    admission = make(settings, cluster, clock)
    stale = index_of(cluster)
    assert await admission.admit_next(stale) == ["s0", "s1"]
    # Woken again before the watch shows anything: the in-flight admissions still count.
    assert await admission.admit_next(stale) == []
    ix = index_of(cluster)
    assert await admission.admit_next(ix) == []
    assert admission.inflight == {}  # the indexes show both now
    cluster.submissions["s0"]["status"]["phase"] = "completed"
    del cluster.jobs["csub-s0"]
    assert await admission.admit_next(index_of(cluster)) == ["s2"]
    assert sorted(cluster.jobs) == ["csub-s1", "csub-s2"]


@pytest.mark.anyio
async def test_restart_between_job_and_status_adopts_the_job(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"), submission("b", phase="queued", created=1))
    first = make(settings, cluster, clock)
    await first.admit_next(index_of(cluster))
    # Simulate a crash after the Job of `a` was created, before `running` was written.
    cluster.submissions["a"]["status"] = {"phase": "queued"}
    cluster.submissions["b"]["status"] = {"phase": "queued"}
    cluster.jobs.pop("csub-b")
    again = make(settings, cluster, clock)  # a new process: nothing in memory
    assert await again.admit_next(index_of(cluster)) == ["a", "b"]
    assert sorted(cluster.jobs) == ["csub-a", "csub-b"]
    assert [c for c in cluster.calls if c == ("create_job", "csub-a")] == [("create_job", "csub-a")] * 2
    assert cluster.phase("a") == cluster.phase("b") == "running"


@pytest.mark.anyio
async def test_admit_skips_what_changed_since_the_index(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"), submission("b", phase="queued", created=1))
    ix = index_of(cluster)
    cluster.submissions["a"]["status"]["phase"] = "running"  # another writer got there first
    del cluster.submissions["b"]  # cancelled
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(ix) == []
    assert cluster.jobs == {}


@pytest.mark.anyio
async def test_a_recreated_name_waits_for_the_old_job(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued", uid="new"))
    cluster.jobs["csub-a"] = job("a", owner_uid="old")
    admission = make(settings, cluster, clock)
    record = index_of(cluster).submission("a")
    assert record is not None
    assert await admission.admit(record) is False
    assert cluster.phase("a") == "queued" and admission.inflight == {}


@pytest.mark.anyio
async def test_unknown_language_fails_with_a_message(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued", language="cobol"))
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == []
    status = cluster.status("a")
    assert status["phase"] == "failed" and status["verdict"] == "system_error"
    assert "unknown language 'cobol'" in status["message"]
    assert cluster.jobs == {}


@pytest.mark.anyio
async def test_a_failed_create_frees_the_slot_for_a_retry(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"))
    cluster.fail_create = RuntimeError("apiserver down")
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == []
    assert admission.inflight == {} and cluster.phase("a") == "queued"
    cluster.fail_create = None
    assert await admission.admit_next(index_of(cluster)) == ["a"]


@pytest.mark.anyio
async def test_inflight_expires_if_the_index_never_shows_it(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"))
    admission = make(settings, cluster, clock)
    await admission.admit_next(index_of(cluster))
    admission.prune(indexes())
    assert "a" in admission.inflight
    clock.advance(31)
    admission.prune(indexes())
    assert admission.inflight == {}


@pytest.mark.anyio
async def test_a_live_pod_without_job_still_holds_its_slot(settings: Settings, clock: Clock) -> None:
    # A cancelled submission: its Job is gone, its pod is still being killed.
    cluster = FakeCluster(submission("q1", phase="queued"), submission("q2", phase="queued", created=1))
    ix = index_of(cluster, pods=[pod("gone1", containers=[container_status("run", running=True)]),
                                 pod("gone2", phase="Pending")])
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(ix) == []


@pytest.mark.anyio
async def test_a_submission_the_event_handler_failed_to_queue_is_queued_later(
    settings: Settings, clock: Clock
) -> None:
    cluster = FakeCluster(submission("a", created=0), submission("b", phase="queued"))
    admission = make(settings, cluster, clock)
    assert await admission.queue_missed(index_of(cluster)) == 0  # too young: its event is on the way
    clock.advance(3)
    assert await admission.queue_missed(index_of(cluster)) == 1
    assert cluster.phase("a") == "queued" and len(cluster.status_writes) == 1


@pytest.mark.anyio
async def test_an_earlier_submission_not_yet_queued_is_not_overtaken(settings: Settings, clock: Clock) -> None:
    # A burst: the handler of `late` happened to queue it before the handler of `early` ran.
    cluster = FakeCluster(submission("early", created=1), submission("late", created=2, phase="queued"),
                          submission("later", created=3, phase="queued"))
    settings = settings.model_copy(update={"max_workers": 1})
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == ["early"]
    assert cluster.status("early")["phase"] == "running"
    assert cluster.status("early")["queuedAt"] == "2026-01-01T12:00:01.000Z"
    assert cluster.phase("late") == "queued"


@pytest.mark.anyio
async def test_a_sandbox_the_api_server_refuses_fails_the_submission(settings: Settings, clock: Clock) -> None:
    cluster = FakeCluster(submission("a", phase="queued"))
    cluster.fail_create = Rejected("Job csub-a: spec.template.spec.containers[0].image: Required value")
    admission = make(settings, cluster, clock)
    assert await admission.admit_next(index_of(cluster)) == []
    status = cluster.status("a")
    assert status["verdict"] == "system_error" and "image: Required value" in status["message"]
    assert admission.inflight == {}
