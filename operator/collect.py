"""Results: react to sandbox pods and Jobs, and check periodically that nothing stays running forever."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Container
from datetime import datetime, timedelta
from typing import Any

from monaco.core import envelope
from monaco.core.models import Outcome, RunSpec, Status, Verdict, utcnow
from monaco.core.options import spec_of_resource
from monaco.core.phase import COMPILE
from monaco.core.settings import Settings
from monaco.operator import names, results
from monaco.operator.admission import Indexes
from monaco.operator.cleanup import finish, teardown
from monaco.operator.cluster import Cluster
from monaco.operator.names import child_name
from monaco.operator.state import PodRecord, SubmissionRecord, job_record, own_job, own_pods, pod_record, runs_in
from monaco.operator.submission import Submission

log = logging.getLogger("monaco.operator")
# A running submission whose Job is missing this long (and confirmed gone) lost its Job to someone else.
LOST_GRACE = timedelta(seconds=5)
# How long the indexes may lag behind a result this process wrote.
RECENT = timedelta(seconds=30)
# Beyond the Job's own deadline and the start deadline: the last resort that ends anything.
GIVE_UP_SLACK = timedelta(seconds=60)


class Collector:
    def __init__(self, settings: Settings, cluster: Cluster, wake: Callable[[], None], admitting: Container[str],
                 clock: Callable[[], datetime] = utcnow) -> None:
        """`wake` asks admission to look again (a sandbox ended: room for the next); `admitting` holds the
        submissions admission is creating children for right now, which the checks must leave alone."""
        self.settings = settings
        self.cluster = cluster
        self.wake = wake
        self.admitting = admitting
        self.clock = clock
        self.busy: set[str] = set()  # submissions being finished by this process now
        self.torn_down: set[str] = set()
        # uid -> when this process finished it: for a moment the indexes still show it running.
        self.done: dict[str, datetime] = {}

    def _recent(self, sub: SubmissionRecord) -> bool:
        at = self.done.get(sub.uid)
        return at is not None and self.clock() - at < RECENT

    async def _read_log(self, pod: str, container: str, envelopes: int = 1) -> bytes | None:
        limit = self.settings.output_limit_bytes
        data: bytes | None = await self.cluster.read_log(
            pod, container, results.log_tail_lines(limit, envelopes), results.log_limit_bytes(limit, envelopes)
        )
        return data

    async def _spec(self, sub: SubmissionRecord) -> RunSpec | None:
        """The judge's fields of a submission that has expected outputs or test cases (read only for those,
        so that the indexes need not hold every expected output)."""
        if not sub.judged:
            return None
        body = await self.cluster.get_submission(sub.name)
        return spec_of_resource((body or {}).get("spec") or {})

    async def _finish(self, sub: SubmissionRecord, outcome: Outcome | None = None,
                      pod: PodRecord | None = None, ix: Indexes | None = None) -> bool:
        """Finish one submission with `outcome`, or with what its ended `pod` tells; once at a time."""
        if sub.key in self.busy or self._recent(sub):
            return False
        self.busy.add(sub.key)
        try:
            if outcome is None:
                assert pod is not None and ix is not None
                try:
                    reader = functools.partial(self._read_log, envelopes=max(1, sub.cases))
                    outcome = await results.collect(pod, own_job(ix.jobs, sub), self.clock(), reader,
                                                    await self._spec(sub))
                except Exception:
                    log.exception("could not read the result of %s; the periodic check will retry", sub.name)
                    return False
            started = pod.created if pod is not None else None
            wrote = bool(await finish(self.cluster, sub.name, sub.phase, outcome, self.clock(), started,
                                      sub.job_name))
            if wrote:
                self.done[sub.uid] = self.clock()
            return wrote
        finally:
            self.busy.discard(sub.key)
            self.wake()

    async def streamed(self, sub: Submission, job_name: str, data: bytes, compiled_in: str = "") -> None:
        """A warm run's envelope, read from an attach stream the moment the runner printed it; for a compiled
        language, with the compile phase's envelope from the log of pod `compiled_in`'s compile container
        (ended before the run began). Without intact envelopes (a runner was killed, the stream joined
        late) nothing happens here: the pod's end and logs decide."""
        try:
            ran = envelope.parse(data)
        except envelope.EnvelopeError:
            return
        key = names.key(sub.name)
        if key in self.busy:
            return
        self.busy.add(key)
        try:
            compiled = None
            if compiled_in:  # read only when this call finishes it, not while another path does
                try:
                    compiled = envelope.parse(await self._read_log(compiled_in, COMPILE) or b"")
                except Exception:
                    return
            outcome = envelope.decide(compiled, ran, expected=sub.spec.expected_output)
            if await finish(self.cluster, sub.name, Status.RUNNING, outcome, self.clock(), None, job_name):
                self.done[sub.uid] = self.clock()
        finally:
            self.busy.discard(key)
            self.wake()

    async def _collect(self, sub: SubmissionRecord, pod: PodRecord, ix: Indexes) -> bool:
        return await self._finish(sub, pod=pod, ix=ix)

    async def finished_children(self, sub: SubmissionRecord, ix: Indexes) -> None:
        """A finished submission whose Job is still there (the operator died before deleting it)."""
        if not ix.jobs.get(sub.key):
            self.torn_down.discard(sub.key)
            return
        if sub.key in self.torn_down or self._recent(sub):
            return
        self.torn_down.add(sub.key)
        await teardown(self.cluster, sub.name, sub.job_name)

    # ---- events
    async def on_pod(self, body: dict[str, Any], ix: Indexes) -> None:
        self.wake()
        pod = pod_record(body)
        sub = ix.submission(pod.key)
        if sub is None or sub.deleting or sub.phase not in (Status.QUEUED, Status.RUNNING):
            if sub is not None and sub.finished:
                await self.finished_children(sub, ix)
            return
        if not runs_in(sub, pod.job_name):
            return  # a pool pod claimed for it, then discarded: it runs elsewhere
        if pod.terminal:
            await self._collect(sub, pod, ix)
            return
        failure = results.start_failure(pod, self.clock(), self.settings.start_deadline_seconds)
        if failure is not None:
            await self._finish(sub, failure)

    async def on_job(self, body: dict[str, Any], ix: Indexes) -> None:
        self.wake()
        job = job_record(body)
        sub = ix.submission(job.key)
        if sub is None or sub.deleting:
            return
        if sub.finished:
            await self.finished_children(sub, ix)
            return
        if not runs_in(sub, job.name):
            return  # a pool Job claimed for it, then discarded
        pods = own_pods(ix.pods, sub)
        if job.failed_reason == "DeadlineExceeded" and not any(p.terminal for p in pods):
            await self._finish(sub, Outcome(verdict=Verdict.TIMEOUT,
                                            message="the sandbox ran longer than its deadline and was stopped"))

    # ---- the periodic check
    async def check(self, ix: Indexes) -> None:
        """End what events alone cannot: start deadlines, lost Jobs, missed results, the last resort."""
        now = self.clock()
        for uid, at in list(self.done.items()):
            if now - at >= RECENT:
                del self.done[uid]
        for values in list(ix.submissions.values()):
            for sub in list(values):
                if sub.deleting or sub.key in self.busy:
                    continue
                if sub.finished:
                    await self.finished_children(sub, ix)
                elif sub.phase == Status.RUNNING and sub.key not in self.admitting:
                    try:
                        await self._check_running(sub, ix, now)
                    except Exception:
                        log.exception("checking %s failed", sub.name)

    async def _check_running(self, sub: SubmissionRecord, ix: Indexes, now: datetime) -> None:
        job = own_job(ix.jobs, sub)
        pods = own_pods(ix.pods, sub)
        started = sub.started or sub.created
        ended = [p for p in pods if p.terminal]
        if ended:  # an ended pod whose result was not written (an error on the way): try again
            await self._collect(sub, ended[0], ix)
            return
        for pod in pods:
            failure = results.start_failure(pod, now, self.settings.start_deadline_seconds)
            if failure is not None:
                await self._finish(sub, failure)
                return
        age = now - started
        if job is None and not pods and age > LOST_GRACE:
            if await self.cluster.get_job(child_name(sub.name)) is None:
                await self._finish(sub, results.system_error(
                    "the sandbox Job was deleted before the program finished"))
            return
        start_deadline = timedelta(seconds=self.settings.start_deadline_seconds)
        if job is not None and not pods:
            if job.failed_reason == "DeadlineExceeded":
                await self._finish(sub, Outcome(verdict=Verdict.TIMEOUT,
                                                message="the sandbox ran longer than its deadline and was stopped"))
            elif job.failed_reason:
                await self._finish(sub, results.system_error(
                    f"the sandbox Job failed ({job.failed_reason}) and its pod is gone"))
            elif age > start_deadline:
                await self._finish(sub, results.system_error(
                    f"the sandbox pod was not created within {self.settings.start_deadline_seconds} s "
                    f"(see the events of Job {job.name})"))
            return
        deadline = timedelta(seconds=(job.deadline_seconds if job and job.deadline_seconds else 0))
        if age > deadline + start_deadline + GIVE_UP_SLACK:
            await self._finish(sub, results.system_error("the sandbox never finished; the operator gave up on it"))

