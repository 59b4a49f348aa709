"""What the operator knows of the cluster: small records of submissions, sandbox Jobs and pods.

kopf indexes hold these records, keyed by the submission's key (names.key); kopf fills the indexes
from a full listing before any handler runs, so after a restart the operator starts from the
cluster's real state, never from memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from monaco.core.models import RunSpec, Status
from monaco.core.models import parse_time as parse_time  # admission.py imports it from here
from monaco.core.resource import callback_due, submitted_at
from monaco.operator import names

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")
# A kopf.Index is a Mapping of keys to Stores (collections of values); plain dicts of lists in tests.
IndexLike = Mapping[str, Collection[T]]


@dataclass(frozen=True)
class SubmissionRecord:
    name: str
    key: str
    uid: str
    phase: str
    created: datetime
    submitted: datetime
    completed: datetime | None
    started: datetime | None
    deleting: bool
    job_name: str = ""  # status.jobName: the cold Job's child name, or a claimed pool Job's
    judged: bool = False  # its spec has expected outputs or test cases: its result needs the spec
    cases: int = 0  # how many test cases its run has (one envelope each)
    callback_due: datetime | None = None  # when its callback's next attempt may begin (operator/callbacks.py)
    # What a warm pool needs to know of a waiting one without reading its spec (operator/pool.py): its
    # language, the limits it asked for (None: the language's default) and whether it needs the cold path.
    language: str = ""
    asked: tuple[float | None, int | None] = (None, None)
    cold_only: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in (Status.COMPLETED, Status.FAILED)

    @property
    def order(self) -> tuple[datetime, datetime, str]:
        """FIFO: the API's submit time (ms), then the creation time, then the name."""
        return (self.submitted, self.created, self.name)


def submission_record(body: Mapping[str, Any]) -> SubmissionRecord:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    limits = spec.get("limits") or {}
    name = str(meta.get("name", ""))
    created = parse_time(meta.get("creationTimestamp")) or EPOCH
    submitted = submitted_at(meta) or created
    return SubmissionRecord(
        name=name,
        key=names.key(name),
        uid=str(meta.get("uid", "")),
        phase=str(status.get("phase") or Status.PENDING.value),
        created=created,
        submitted=submitted,
        started=parse_time(status.get("startedAt")),
        completed=parse_time(status.get("completedAt")),
        deleting=bool(meta.get("deletionTimestamp")),
        job_name=str(status.get("jobName") or ""),
        judged=spec.get("expectedOutput") is not None or bool(spec.get("testCases")),
        cases=len(spec.get("testCases") or ()),
        callback_due=callback_due(body),
        language=str(spec.get("language") or ""),
        asked=(_number(limits.get("timeoutSeconds")), _integer(limits.get("memoryMb"))),
        cold_only=RunSpec.cold_only_in(spec),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def waiting(subs: IndexLike[SubmissionRecord]) -> list[SubmissionRecord]:
    """Submissions waiting for a sandbox in FIFO order: queued ones, and new ones not queued yet (so that
    in a burst a later submission that happened to be queued first does not overtake an earlier one)."""
    return sorted((s for values in subs.values() for s in values
                   if s.phase in (Status.QUEUED, Status.PENDING) and not s.deleting), key=lambda s: s.order)


@dataclass(frozen=True)
class JobRecord:
    name: str
    key: str
    owner_uid: str
    start_time: datetime | None
    deadline_seconds: int | None
    failed_reason: str | None  # DeadlineExceeded, BackoffLimitExceeded, ... once failed (or failing)
    complete: bool
    deleting: bool

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_reason is not None

    def deadline_passed(self, now: datetime) -> bool:
        if self.failed_reason == "DeadlineExceeded":
            return True
        if self.start_time is None or self.deadline_seconds is None:
            return False
        return (now - self.start_time).total_seconds() >= self.deadline_seconds


def job_record(body: Mapping[str, Any]) -> JobRecord:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    failed_reason = None
    complete = False
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Failed", "FailureTarget"):
            failed_reason = str(cond.get("reason") or "Failed")
        elif cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            complete = True
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    deadline = spec.get("activeDeadlineSeconds")
    return JobRecord(
        name=str(meta.get("name", "")),
        key=str((meta.get("labels") or {}).get(names.SUBMISSION, "")),
        owner_uid=str(owners[0].get("uid", "")) if owners else "",
        start_time=parse_time(status.get("startTime")),
        deadline_seconds=int(deadline) if deadline is not None else None,
        failed_reason=failed_reason,
        complete=complete,
        deleting=bool(meta.get("deletionTimestamp")),
    )


@dataclass(frozen=True)
class ContainerRecord:
    name: str
    init: bool
    started: bool  # running or terminated
    waiting_reason: str | None
    waiting_message: str
    terminated_reason: str | None
    exit_code: int | None


@dataclass(frozen=True)
class PodRecord:
    name: str
    key: str
    phase: str
    created: datetime
    reason: str  # pod.status.reason, e.g. Evicted
    message: str
    unschedulable: str | None  # the scheduler's message while the pod cannot be placed
    deleting: bool
    containers: tuple[ContainerRecord, ...]
    job_name: str = ""  # the Job it belongs to (its job-name label)

    @property
    def terminal(self) -> bool:
        """Nothing more will run in it: it ended, or an init container was OOM-killed (the kubelet counts
        that as a failed init container even when it exited 0, and with restartPolicy Never the pod then
        waits, Pending, until its deadline)."""
        return self.phase in ("Succeeded", "Failed") or any(
            c.init and c.terminated_reason == "OOMKilled" for c in self.containers
        )

    @property
    def started(self) -> bool:
        return any(c.started for c in self.containers)

    def container(self, name: str) -> ContainerRecord | None:
        return next((c for c in self.containers if c.name == name), None)


def _containers(statuses: Iterable[Mapping[str, Any]], init: bool) -> list[ContainerRecord]:
    out = []
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        terminated = terminated or last
        out.append(
            ContainerRecord(
                name=str(cs.get("name", "")),
                init=init,
                started=bool(state.get("running") or terminated),
                waiting_reason=str(waiting["reason"]) if waiting.get("reason") else None,
                waiting_message=str(waiting.get("message") or ""),
                terminated_reason=str(terminated.get("reason") or "") if terminated else None,
                exit_code=int(terminated["exitCode"]) if terminated.get("exitCode") is not None else None,
            )
        )
    return out


def pod_record(body: Mapping[str, Any]) -> PodRecord:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    unschedulable = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            unschedulable = str(cond.get("message") or cond.get("reason") or "unschedulable")
    containers = _containers(status.get("initContainerStatuses") or [], True)
    containers += _containers(status.get("containerStatuses") or [], False)
    return PodRecord(
        name=str(meta.get("name", "")),
        key=str((meta.get("labels") or {}).get(names.SUBMISSION, "")),
        phase=str(status.get("phase") or "Pending"),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        unschedulable=unschedulable,
        deleting=bool(meta.get("deletionTimestamp")),
        containers=tuple(containers),
        job_name=job_name_label(meta.get("labels") or {}),
    )


def job_name_label(labels: Mapping[str, Any]) -> str:
    """The name of the Job a pod belongs to, from the label the Job controller gives it."""
    return str(labels.get("batch.kubernetes.io/job-name") or labels.get("job-name") or "")


def runs_in(sub: SubmissionRecord, job_name: str) -> bool:
    """Whether a Job (or a pod of it, by `job_name`; "" when unknown) is the one that runs the submission:
    the one its status names (a claimed pool Job, or the cold one), or, before it says, the cold Job. A pool
    pod claimed for it and discarded (its delivery failed, or its operator died first) carries its label
    too, and never decides its result."""
    return not job_name or job_name == (sub.job_name or names.child_name(sub.name))


def own_pods(index: IndexLike[PodRecord], sub: SubmissionRecord) -> list[PodRecord]:
    """The submission's pods of the Job that runs it."""
    return [p for p in index.get(sub.key) or () if runs_in(sub, p.job_name)]


def own_job(index: IndexLike[JobRecord], sub: SubmissionRecord) -> JobRecord | None:
    """The Job that runs the submission, of those labelled with it."""
    return next((j for j in index.get(sub.key) or () if runs_in(sub, j.name)), None)


def live_pods(index: IndexLike[PodRecord], key: str) -> list[PodRecord]:
    return [p for p in index.get(key) or () if not p.terminal]
