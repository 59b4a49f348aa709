"""Warm pools: the pool builders, the claim (atomic, delivered, or the cold path), and the pool manager."""

from __future__ import annotations

from typing import Any

import pytest

from monaco.core.settings import Settings
from monaco.operator import builders, names
from monaco.operator.admission import Admission, Indexes
from monaco.operator.pool import ACCEPTED, Pool, PoolJobRecord, PoolPodRecord, pool_job_record, pool_pod_record
from monaco.operator.submission import from_body
from tests.operator.conftest import NS, Clock, FakeCluster, indexes, submission, ts


@pytest.fixture
def warm(settings: Settings) -> Settings:
    return settings.model_copy(update={"warm_pool": {"python": 2, "cpp": 1}, "warm_pool_max_idle_seconds": 600})


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


# ---- builders
def test_pool_pod_is_the_cold_pod_with_the_source_dir_empty_and_the_job_on_stdin(warm: Settings) -> None:
    python = warm.registry["python"]
    cold = builders.build_pod_spec(from_body(submission("a", language="python"), warm.registry), warm)
    spec = builders.build_pool_pod_spec(python, warm)
    (run,) = spec["containers"]
    assert run["command"] == [builders.RUNNER, "run", "job"] and run["stdin"] and run["stdinOnce"]
    src = next(v for v in spec["volumes"] if v["name"] == "src")
    assert "emptyDir" in src and "configMap" not in src
    assert next(m for m in run["volumeMounts"] if m["name"] == "src")["readOnly"] is False
    # everything that makes it a sandbox is the cold pod's
    for key in ("securityContext", "automountServiceAccountToken", "enableServiceLinks", "restartPolicy",
                "terminationGracePeriodSeconds"):
        assert spec[key] == cold[key]
    cold_run = cold["containers"][0]
    assert run["securityContext"] == cold_run["securityContext"]
    assert run["resources"]["limits"]["memory"] == run["resources"]["requests"]["memory"]
    assert "initContainers" not in spec


def test_compiled_pool_pod_runs_compile_and_run_side_by_side_each_with_its_own_limits(warm: Settings) -> None:
    cpp = warm.registry["cpp"]
    cold = builders.build_pod_spec(from_body(default_limits("a", language="cpp"), warm.registry), warm)
    spec = builders.build_pool_pod_spec(cpp, warm)
    assert "initContainers" not in spec
    compile_, run = spec["containers"]
    assert compile_["name"] == "compile" and run["name"] == "run"
    assert compile_["command"][1:] == ["compile", "job"] and compile_["stdin"]
    assert run["command"][1:] == ["run", "after-compile"] and "stdin" not in run
    assert compile_["resources"] == cold["initContainers"][0]["resources"]
    assert run["resources"] == cold["containers"][0]["resources"]
    assert compile_["env"] == cold["initContainers"][0]["env"] and run["env"] == cold["containers"][0]["env"]
    mounts = {m["name"]: m.get("readOnly", False) for m in run["volumeMounts"]}
    assert mounts["src"] is True and mounts["build"] is True


def test_pool_job_is_labelled_hashed_and_covers_idle_time_and_one_run(warm: Settings) -> None:
    python = warm.registry["python"]
    job = builders.build_pool_job(python, warm)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[names.POOL] == "python" and labels[names.POOL_STATE] == names.IDLE
    assert names.SUBMISSION not in labels  # idle: no submission yet, so it holds no slot
    assert labels[names.POOL_HASH] == builders.pool_hash(python, warm)
    assert job["spec"]["activeDeadlineSeconds"] > 600 + python.limits.timeout_seconds
    assert job["spec"]["backoffLimit"] == 0 and "ownerReferences" not in job["metadata"]
    changed = warm.model_copy(update={"sandbox_cpu": "1"})
    assert builders.pool_hash(python, changed) != builders.pool_hash(python, warm)


def test_pool_network_policy_denies_everything_to_every_pool_pod(warm: Settings) -> None:
    policy = builders.build_pool_network_policy(warm)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy["spec"] and "egress" not in policy["spec"]
    assert policy["spec"]["podSelector"]["matchExpressions"] == [{"key": names.POOL, "operator": "Exists"}]


def test_job_frame_counts_bytes_not_characters() -> None:
    assert builders.job_frame("print('é')", "x\n") == "MONACO-JOB v1 11 2\nprint('é')x\n".encode()


# ---- the fake pool in the cluster
def pool_pod_body(cluster: FakeCluster, job_name: str, settings: Settings, *, language: str = "python",
                  created: float = 0, ready: bool = True, phase: str = "Running") -> dict[str, Any]:
    job = cluster.jobs[job_name]
    labels = dict(job["spec"]["template"]["metadata"]["labels"])
    labels["job-name"] = job_name
    state = {"running": {"startedAt": ts()}} if ready else {"waiting": {"reason": "ContainerCreating"}}
    body: dict[str, Any] = {
        "metadata": {"name": f"{job_name}-pod", "namespace": NS, "labels": labels, "resourceVersion": "7",
                     "creationTimestamp": ts(created)},
        "status": {"phase": phase, "containerStatuses": [
            {"name": c["name"], "state": state}
            for c in job["spec"]["template"]["spec"]["containers"]]},
    }
    cluster.pods[body["metadata"]["name"]] = body
    return body


def pool_index(cluster: FakeCluster) -> tuple[dict[str, list[PoolPodRecord]], dict[str, list[PoolJobRecord]]]:
    pods: dict[str, list[PoolPodRecord]] = {}
    jobs: dict[str, list[PoolJobRecord]] = {}
    for body in cluster.pods.values():
        p = pool_pod_record(body)
        pods.setdefault(p.language, []).append(p)
    for body in cluster.jobs.values():
        if names.POOL in body["metadata"].get("labels", {}):
            body.setdefault("metadata", {}).setdefault("creationTimestamp", ts(0))
            j = pool_job_record(body)
            jobs.setdefault(j.language, []).append(j)
    return pods, jobs


async def filled(warm: Settings, cluster: FakeCluster, clock: Clock) -> Pool:
    pool = Pool(warm, cluster, clock)
    await pool.reconcile(*pool_index(cluster), {})
    for name in list(cluster.jobs):
        pool_pod_body(cluster, name, warm, language=cluster.jobs[name]["metadata"]["labels"][names.POOL])
    cluster.calls.clear()
    return pool


# ---- the manager
@pytest.mark.anyio
async def test_manager_fills_each_pool_once_and_denies_the_network_first(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    pool = Pool(warm, cluster, clock)
    await pool.reconcile({}, {}, {})
    created = [c[1] for c in cluster.calls if c[0] == "create_pool_job"]
    assert sorted(n.rsplit("-", 1)[0] for n in created) == ["pool-cpp", "pool-python", "pool-python"]
    order = [c[0] for c in cluster.calls]
    assert order.index("create_network_policy") < order.index("create_pool_job")
    assert names.POOL_NETWORK_POLICY in cluster.network_policies
    # the indexes lag: the Jobs just created count, nothing more is created
    await pool.reconcile({}, {}, {})
    assert sum(c[0] == "create_pool_job" for c in cluster.calls) == 3
    # a restarted operator starts from the cluster: nothing missing, nothing created
    again = Pool(warm, cluster, clock)
    again.policy_ready = True
    cluster.calls.clear()
    await again.reconcile(*pool_index(cluster), {})
    assert cluster.calls == []


@pytest.mark.anyio
async def test_manager_replaces_dead_and_over_age_pods_and_drains_an_old_spec(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    await filled(warm, cluster, clock)
    python_jobs = sorted(n for n in cluster.jobs if n.startswith("pool-python"))
    dead = python_jobs[0]
    cluster.pods[f"{dead}-pod"]["status"]["phase"] = "Failed"
    cpp_job = next(n for n in cluster.jobs if n.startswith("pool-cpp"))
    cluster.jobs[cpp_job]["metadata"]["labels"][names.POOL_HASH] = "old"
    pool = Pool(warm, cluster, clock)
    pool.policy_ready = True
    await pool.reconcile(*pool_index(cluster), {})
    deleted = {c[1] for c in cluster.calls if c[0] == "delete_job"}
    assert deleted == {dead, cpp_job}
    assert sum(c[0] == "create_pool_job" for c in cluster.calls) == 2
    clock.advance(601)
    cluster.calls.clear()
    await pool.reconcile(*pool_index(cluster), {})
    assert {c[1] for c in cluster.calls if c[0] == "delete_job"} >= {python_jobs[1]}


@pytest.mark.anyio
async def test_manager_drains_a_pool_whose_size_went_to_zero(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster()
    await filled(warm, cluster, clock)
    smaller = warm.model_copy(update={"warm_pool": {"python": 1}})
    pool = Pool(smaller, cluster, clock)
    pool.policy_ready = True
    await pool.reconcile(*pool_index(cluster), {})
    assert sum(c[0] == "delete_job" for c in cluster.calls) == 2  # cpp gone, python one above its size
    assert not any(c[0] == "create_pool_job" for c in cluster.calls)


# ---- claims
def claimable(settings: Settings, cluster: FakeCluster, clock: Clock, *subs: dict[str, Any]) -> Admission:
    return Admission(settings, cluster, clock, pool=Pool(settings, cluster, clock))  # type: ignore[arg-type]


def ix_of(cluster: FakeCluster) -> Indexes:
    base = indexes(list(cluster.submissions.values()))
    pods, jobs = pool_index(cluster)
    return Indexes(base.submissions, base.jobs, base.pods, pods, jobs)


def default_limits(name: str, language: str = "python") -> dict[str, Any]:
    body = submission(name, language=language, phase="queued")
    body["spec"]["limits"] = {}
    return body


@pytest.mark.anyio
async def test_claim_delivers_the_job_and_the_submission_runs_warm(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster(default_limits("a"))
    await filled(warm, cluster, clock)
    admission = claimable(warm, cluster, clock)
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    status = cluster.status("a")
    assert status["phase"] == "running" and status["warm"] is True and status["jobName"].startswith("pool-python")
    ((pod_name, container, data),) = cluster.attached
    assert container == "run" and data == builders.job_frame("print(input())", "hi\n")
    pod_labels = cluster.pods[pod_name]["metadata"]["labels"]
    assert pod_labels[names.POOL_STATE] == names.CLAIMED and pod_labels[names.SUBMISSION] == "a"
    job_meta = cluster.jobs[status["jobName"]]["metadata"]
    assert job_meta["ownerReferences"][0]["uid"] == "uid-a"
    # no ConfigMap, no NetworkPolicy of its own, no cold Job
    assert names.child_name("a") not in cluster.jobs and names.child_name("a") not in cluster.configmaps


@pytest.mark.anyio
async def test_two_claims_never_get_one_pod(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster(default_limits("a"), default_limits("b", language="python"))
    await filled(warm, cluster, clock)
    stale = ix_of(cluster)  # both admissions see the same idle pods
    first = claimable(warm, cluster, clock)
    second = claimable(warm, cluster, clock)
    assert await first.admit(stale.submission("a"), stale)  # type: ignore[arg-type]
    assert await second.admit(stale.submission("b"), stale)  # type: ignore[arg-type]
    pods = [a[0] for a in cluster.attached]
    assert len(pods) == len(set(pods)) == 2  # the second's CAS on the first pod failed; it took the next


@pytest.mark.anyio
@pytest.mark.parametrize("why", ["limits", "empty", "delivery", "language"])
async def test_cold_path_when_no_pod_fits_or_delivery_fails(warm: Settings, clock: Clock, why: str) -> None:
    body = submission("a", phase="queued") if why == "limits" else default_limits(
        "a", language="java" if why == "language" else "python")
    cluster = FakeCluster(body)
    if why != "empty":
        await filled(warm, cluster, clock)
    if why == "delivery":
        cluster.acknowledge = False
    admission = claimable(warm, cluster, clock)
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    status = cluster.status("a")
    assert status["phase"] == "running" and "warm" not in status
    assert status["jobName"] == names.child_name("a") and names.child_name("a") in cluster.jobs
    if why == "delivery":  # the claimed pod is gone: nothing it may have received ever runs
        ((pod_name, _, _),) = cluster.attached
        assert pod_name not in cluster.pods
        assert admission.pool is not None and admission.pool.stats.misses == {("python", "delivery"): 1}


@pytest.mark.anyio
async def test_restart_after_a_claim_resumes_a_delivered_job_and_never_runs_it_twice(
        warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster(default_limits("a"), default_limits("b"))
    await filled(warm, cluster, clock)
    ix = ix_of(cluster)
    pods = sorted(cluster.pods)
    # a died after delivering (the runner acknowledged), b after claiming only; neither wrote `running`
    for name, pod_name in (("a", pods[0]), ("b", pods[1])):
        labels = cluster.pods[pod_name]["metadata"]["labels"]
        labels[names.POOL_STATE], labels[names.SUBMISSION] = names.CLAIMED, name
    cluster.logs[(pods[0], "run")] = ACCEPTED + b"\n"
    restarted = claimable(warm, cluster, clock)
    ix = ix_of(cluster)
    assert await restarted.admit(ix.submission("a"), ix)  # type: ignore[arg-type]
    assert await restarted.admit(ix.submission("b"), ix)  # type: ignore[arg-type]
    assert cluster.status("a")["jobName"] == cluster.pods[pods[0]]["metadata"]["labels"]["job-name"]
    assert cluster.status("a")["warm"] is True
    assert cluster.attached == []  # nothing delivered twice
    assert pods[1] not in cluster.pods and cluster.status("b")["jobName"] == names.child_name("b")


@pytest.mark.anyio
async def test_idle_pool_pods_hold_no_worker_slot(warm: Settings, clock: Clock) -> None:
    from monaco.operator.admission import occupied

    cluster = FakeCluster()
    await filled(warm, cluster, clock)
    pod_bodies = [{**b, "metadata": {**b["metadata"]}} for b in cluster.pods.values()]
    ix = indexes([], list(cluster.jobs.values()), pod_bodies)
    assert occupied(ix) == set()


@pytest.mark.anyio
async def test_finished_warm_submission_tears_down_only_its_pool_job(warm: Settings, clock: Clock) -> None:
    from monaco.operator.cleanup import teardown

    cluster = FakeCluster()
    await teardown(cluster, "a", "pool-python-9")  # type: ignore[arg-type]
    assert cluster.calls == [("delete_children", "a", "pool-python-9")]


@pytest.mark.anyio
async def test_a_warm_run_is_finished_from_its_attach_stream(warm: Settings, clock: Clock,
                                                             runner: Any) -> None:
    """The envelope comes back on the stream the job went out on: no wait for the kubelet to see the pod end."""
    import asyncio

    from monaco.operator.collect import Collector

    cluster = FakeCluster(default_limits("a"))
    await filled(warm, cluster, clock)
    admission = claimable(warm, cluster, clock)
    assert admission.pool is not None
    collector = Collector(warm, cluster, admission.wake, admission.inflight, clock)  # type: ignore[arg-type]
    admission.pool.sink = collector.streamed
    envelope = runner("run", "echo hello", source="")
    for pod_name in cluster.pods:
        cluster.streams[pod_name] = ACCEPTED + b"\n" + envelope
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    for _ in range(10):
        await asyncio.sleep(0)
    status = cluster.status("a")
    assert status["phase"] == "completed" and status["output"] == "hello\n" and status["warm"] is True
    assert status["jobName"] not in cluster.jobs  # torn down: a pod serves one program


@pytest.mark.anyio
@pytest.mark.parametrize("compile_log", [True, False])
async def test_a_compiled_warm_run_is_finished_from_the_run_containers_stream(
        warm: Settings, clock: Clock, runner: Any, compile_log: bool) -> None:
    """A compiled language's job goes to the compile container; the run container's envelope comes on a
    second, stdout-only attach and the compile envelope from the compile container's log: no wait for the
    kubelet to see the pod end (seconds). Without the compile log nothing is decided from the stream."""
    import asyncio

    from monaco.operator.collect import Collector

    cluster = FakeCluster(default_limits("a", language="cpp"))
    await filled(warm, cluster, clock)
    admission = claimable(warm, cluster, clock)
    assert admission.pool is not None
    collector = Collector(warm, cluster, admission.wake, admission.inflight, clock)  # type: ignore[arg-type]
    admission.pool.sink = collector.streamed
    compiled = runner("compile", "printf 'warning: w\\n'")
    for pod_name in [p for p in cluster.pods if "cpp" in p]:
        cluster.streams[(pod_name, "run")] = runner("run", "echo hello", source="")
        if compile_log:
            cluster.printed_after_ack[(pod_name, "compile")] = compiled
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    for _ in range(20):
        await asyncio.sleep(0)
    status = cluster.status("a")
    run_attaches = [(pod, c, data) for pod, c, data in cluster.attached if c == "run"]
    assert len(run_attaches) == 1 and run_attaches[0][2] == b"", cluster.attached  # stdout only, no stdin
    if compile_log:
        assert status["phase"] == "completed" and status["output"] == "hello\n", status
        assert status["compileOutput"] == "warning: w\n" and status["compileTimeMs"] is not None
    else:
        assert status["phase"] == "running", status  # the pod's end decides


@pytest.mark.anyio
async def test_metrics_show_size_idle_claims_misses_and_claim_latency(warm: Settings, clock: Clock) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monaco.operator.metrics import Health, HealthCollector, PoolCollector

    cluster = FakeCluster(default_limits("a"), submission("b", phase="queued"))
    await filled(warm, cluster, clock)
    admission = claimable(warm, cluster, clock)
    assert await admission.admit_next(ix_of(cluster)) == ["a", "b"]
    assert admission.pool is not None
    registry = CollectorRegistry()
    registry.register(PoolCollector(admission.pool, lambda: pool_index(cluster)))
    registry.register(HealthCollector(lambda: Health(1234.5, admission.admitted, 2, 0)))
    text = generate_latest(registry).decode()
    assert 'monaco_operator_admitted_total{path="warm"} 1.0' in text
    assert 'monaco_operator_admitted_total{path="cold"} 1.0' in text
    assert "monaco_operator_last_pass_timestamp_seconds 1234.5" in text and "monaco_operator_sandboxes 2.0" in text
    assert 'monaco_pool_size{language="python"} 2.0' in text
    assert 'monaco_pool_idle{language="python"} 1.0' in text  # one claimed
    assert 'monaco_pool_claims_total{language="python"} 1.0' in text
    assert 'monaco_pool_misses_total{language="python",reason="limits"} 1.0' in text
    assert 'monaco_pool_claim_seconds_count 1.0' in text


# ---- bursts: the pool grows with its queue, and a fitting submission waits for a starting pod
def fitting(names_: list[str], language: str = "python", phase: str = "queued") -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(names_):
        body = default_limits(name, language)
        body["metadata"]["annotations"] = {}
        body["metadata"]["creationTimestamp"] = ts(i)
        if phase != "queued":
            body.pop("status", None)
        out.append(body)
    return out


@pytest.mark.parametrize(("spec", "fits"), [
    ({"limits": {}}, True),
    ({"limits": {"timeoutSeconds": 10, "memoryMb": 100}}, True),  # the defaults, spelled out
    ({"limits": {"memoryMb": 101}}, False),
    ({"limits": {"timeoutSeconds": 2.5}}, False),
    ({"limits": {}, "args": ["x"]}, False),
    ({"limits": {}, "redirectStderrToStdout": True}, False),
    ({"limits": {}, "testCases": [{"input": "1"}]}, False),
    ({"limits": {}, "expectedOutput": "hi"}, True),  # decided by the operator: still warm
    ({"limits": {}, "language": "java"}, False),  # no java pool
    ({"limits": {}, "language": "cobol"}, False),
    ({"limits": {"memoryMb": 10 ** 9}}, False),  # above the maximum: refused later, never a pool's
])
def test_a_waiting_records_fit_is_the_submissions_own(warm: Settings, spec: dict[str, Any], fits: bool) -> None:
    from monaco.operator.pool import record_fits, warm_eligible
    from monaco.operator.state import submission_record
    from monaco.operator.submission import SpecError

    body = default_limits("a")
    body["spec"].update(spec)
    assert record_fits(submission_record(body), warm) is fits
    try:
        assert warm_eligible(from_body(body, warm.registry), warm) is fits
    except SpecError:
        assert not fits


@pytest.mark.anyio
async def test_a_burst_grows_the_pool_one_pod_per_waiting_submission_then_it_shrinks(
        warm: Settings, clock: Clock) -> None:
    burst = warm.model_copy(update={"warm_pool_burst": {"python": 3}})
    cluster = FakeCluster(*fitting([f"s{i}" for i in range(4)]), submission("cold", phase="queued"))
    pool = Pool(burst, cluster, clock)
    await pool.reconcile({}, {}, indexes(list(cluster.submissions.values())).submissions)
    python = [c[1] for c in cluster.calls if c[0] == "create_pool_job" and "python" in c[1]]
    assert len(python) == 4  # four fitting waiters (the cold one does not count): size 2 grows to 4
    cluster.submissions.update({b["metadata"]["name"]: b for b in fitting([f"t{i}" for i in range(6)])})
    await pool.reconcile(*pool_index(cluster), indexes(list(cluster.submissions.values())).submissions)
    assert sum(c[0] == "create_pool_job" and "python" in c[1] for c in cluster.calls) == 5  # capped: 2 + 3
    # the queue is gone: the extra pods stay while the burst may go on, then the pool is back at its size
    for name in list(cluster.jobs):
        pool_pod_body(cluster, name, burst, language=cluster.jobs[name]["metadata"]["labels"][names.POOL])
    cluster.calls.clear()
    await pool.reconcile(*pool_index(cluster), {})
    assert not any(c[0] == "delete_job" for c in cluster.calls)
    clock.advance(31)
    await pool.reconcile(*pool_index(cluster), {})
    assert sum(c[0] == "delete_job" for c in cluster.calls) == 3
    assert not any(c[0] == "create_pool_job" for c in cluster.calls)


@pytest.mark.anyio
async def test_no_burst_configured_keeps_the_pool_at_its_size(warm: Settings, clock: Clock) -> None:
    cluster = FakeCluster(*fitting([f"s{i}" for i in range(5)]))
    pool = Pool(warm, cluster, clock)
    await pool.reconcile({}, {}, indexes(list(cluster.submissions.values())).submissions)
    assert sum(c[0] == "create_pool_job" and "python" in c[1] for c in cluster.calls) == 2


@pytest.mark.anyio
async def test_fitting_submissions_wait_for_starting_pool_pods_holding_no_slot(warm: Settings, clock: Clock) -> None:
    """Two pool pods are starting: the first two fitting submissions wait for them (no cold Job, no slot);
    the third, for which no pod is starting, and one that does not fit take the cold path at once; the
    first pod to be ready is claimed by the first in line; a wait has an end."""
    subs = fitting(["a", "b", "c"])
    subs.append(submission("z", phase="queued", created=9))
    cluster = FakeCluster(*subs)
    pool = Pool(warm, cluster, clock)
    await pool.reconcile({}, {}, {})
    jobs = sorted(n for n in cluster.jobs if "python" in n)
    for name in jobs:
        pool_pod_body(cluster, name, warm, ready=False)
    admission = Admission(warm.model_copy(update={"max_workers": 4}), cluster, clock, pool=pool)  # type: ignore[arg-type]
    assert await admission.admit_next(ix_of(cluster)) == ["c", "z"]
    assert cluster.status("c")["jobName"] == names.child_name("c") and "warm" not in cluster.status("c")
    assert cluster.status("a")["phase"] == "queued" and names.child_name("a") not in cluster.jobs
    # a pod is ready: a (first in line) claims it; b keeps waiting for the other
    cluster.pods[f"{jobs[0]}-pod"] = pool_pod_body(cluster, jobs[0], warm)
    admission.inflight.clear()
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    assert cluster.status("a")["warm"] is True and cluster.status("b")["phase"] == "queued"
    assert pool.waits == {"python": 1}  # what /metrics shows as monaco_pool_waiting
    # the other never gets ready: b waits warm_pool_wait_seconds, then goes cold
    clock.advance(warm.warm_pool_wait_seconds - 1)
    admission.inflight.clear()
    assert await admission.admit_next(ix_of(cluster)) == []
    clock.advance(2)
    assert await admission.admit_next(ix_of(cluster)) == ["b"]
    assert cluster.status("b")["jobName"] == names.child_name("b")


@pytest.mark.anyio
async def test_no_wait_when_it_is_turned_off(warm: Settings, clock: Clock) -> None:
    never = warm.model_copy(update={"warm_pool_wait_seconds": 0})
    cluster = FakeCluster(*fitting(["a"]))
    pool = Pool(never, cluster, clock)
    await pool.reconcile({}, {}, {})
    for name in list(cluster.jobs):
        pool_pod_body(cluster, name, never, ready=False, language=cluster.jobs[name]["metadata"]["labels"][names.POOL])
    admission = Admission(never, cluster, clock, pool=pool)  # type: ignore[arg-type]
    assert await admission.admit_next(ix_of(cluster)) == ["a"]
    assert cluster.status("a")["jobName"] == names.child_name("a")


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["delivery-failed", "restart-before-delivery"])
async def test_a_discarded_claimed_pod_never_decides_the_result(warm: Settings, clock: Clock, how: str) -> None:
    """The pool pod claimed for a submission and then discarded (its delivery failed, or its operator died
    before delivering) carries the submission's label while it goes: its end is not the submission's,
    which runs cold (found on the local cluster: it was judged system_error, 'the sandbox pod was deleted')."""
    from monaco.operator.collect import Collector

    cluster = FakeCluster(default_limits("a"))
    await filled(warm, cluster, clock)
    pod_name = sorted(p for p in cluster.pods if "python" in p)[0]
    if how == "delivery-failed":
        cluster.acknowledge = False
        pod_body = {**cluster.pods[pod_name], "metadata": {**cluster.pods[pod_name]["metadata"]}}
    else:
        labels = cluster.pods[pod_name]["metadata"]["labels"]
        labels[names.POOL_STATE], labels[names.SUBMISSION] = names.CLAIMED, "a"
        pod_body = cluster.pods[pod_name]
    admission = claimable(warm, cluster, clock)
    ix = ix_of(cluster)
    assert await admission.admit_next(ix) == ["a"]
    assert cluster.status("a")["jobName"] == names.child_name("a") and pod_name not in cluster.pods
    # the discarded pod's last events: claimed for a, killed
    gone = {**pod_body, "metadata": {**pod_body["metadata"], "deletionTimestamp": ts(1),
                                     "labels": {**pod_body["metadata"]["labels"], names.POOL_STATE: names.CLAIMED,
                                                names.SUBMISSION: "a"}},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "run", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}}
    collector = Collector(warm, cluster, admission.wake, admission.inflight, clock)  # type: ignore[arg-type]
    ix = indexes(list(cluster.submissions.values()), list(cluster.jobs.values()), [gone])
    await collector.on_pod(gone, ix)
    admission.inflight.clear()
    clock.advance(10)
    await collector.check(ix)
    assert cluster.status("a")["phase"] == "running", cluster.status("a")
