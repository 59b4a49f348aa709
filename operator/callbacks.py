"""Callbacks on Kubernetes: the operator sends a finished submission's result to its spec.callbackUrl
(POST of Monaco's result, or PUT of Judge0's when spec.callbackFormat is `judge0`: core/callback.py).

Why the operator and not the API pods: the API runs as several replicas behind a Service and every one
watches every CodeSubmission, so all of them would race for each delivery; the operator is one active
process, already the only writer of `.status`, and its NetworkPolicy is the one place where egress to
callback receivers is opened (sandbox pods never get any). A second operator replica (a rolling update
gone wrong) still cannot double-send within a claim: each attempt is claimed first with a
compare-and-set status patch (test resourceVersion, then bump `callback.attempts` and set
`callback.nextAttemptAt` to when the claim lapses), and its outcome is written only if
`callback.attempts` is still the claimed number. An operator that dies between its claim and the
outcome leaves the claim to lapse; the attempt is then made again (at least once, never silently lost).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from monaco.core import callback
from monaco.core.callback import Attempt
from monaco.core.models import CallbackState, iso, utcnow
from monaco.core.resource import CallbackStatus, SubmissionStatus, callback_due, submission_view
from monaco.core.settings import Settings
from monaco.operator.cluster import Cluster, status_ops
from monaco.operator.state import IndexLike, SubmissionRecord

log = logging.getLogger("monaco.operator.callback")
CLAIM_SLACK = timedelta(seconds=30)


class Callbacks:
    def __init__(self, settings: Settings, cluster: Cluster, clock: Callable[[], datetime] = utcnow) -> None:
        self.policy = settings.callbacks
        self.cluster = cluster
        self.clock = clock
        self.claim = timedelta(seconds=2 * self.policy.timeout_seconds) + CLAIM_SLACK
        self.sending: set[str] = set()  # names with an attempt in flight in this process

    async def check(self, submissions: IndexLike[SubmissionRecord]) -> None:
        """Begin every attempt that is due (the admission loop calls this every tick)."""
        now = self.clock()
        for records in list(submissions.values()):
            for rec in records:
                if rec.callback_due is not None and rec.callback_due <= now and rec.name not in self.sending:
                    self.sending.add(rec.name)
                    task = asyncio.create_task(self._attempt(rec.name), name=f"callback-{rec.name}")
                    task.add_done_callback(functools.partial(self._sent, rec.name))

    def _sent(self, name: str, _task: asyncio.Task[bool]) -> None:
        self.sending.discard(name)

    async def _attempt(self, name: str) -> bool:
        """One attempt, claimed first; False when there was nothing to do or another writer won."""
        try:
            return await self._claim_and_send(name)
        except Exception:
            log.exception("callback attempt of %s failed; the claim lapses and it is tried again", name)
            return False

    async def _claim_and_send(self, name: str) -> bool:
        body = await self.cluster.get_submission(name)
        now = self.clock()
        when = callback_due(body) if body is not None else None
        if body is None or when is None or when > now:
            return False
        before = submission_view(body)
        assert before.callback is not None
        attempts = before.callback.attempts + 1
        claim = callback_status(CallbackState(state="pending", attempts=attempts,
                                              last_error=before.callback.last_error), now + self.claim)  # fmt: skip
        rv = str(body["metadata"].get("resourceVersion", ""))
        if not await self.cluster.patch_status(name, status_ops(claim.wire(), resource_version=rv)):
            return False  # changed meanwhile: the next tick reads it again
        url = str(body["spec"]["callbackUrl"])
        sent = callback.message(before, body["spec"].get("callbackFormat"))
        try:
            attempt = await asyncio.to_thread(
                self.policy.deliver, url, sent.body, callback.headers(name, attempts), sent.method
            )
        except Exception as exc:
            attempt = Attempt(False, retry=True, error=f"internal error: {exc}")
        state, delay = self.policy.after(attempt, attempts)
        nxt = None if delay is None else self.clock() + timedelta(seconds=delay)
        ops = status_ops(callback_status(state, nxt).wire())
        wrote = await self.cluster.patch_status(
            name, [{"op": "test", "path": "/status/callback/attempts", "value": attempts}, *ops]
        )
        level = logging.WARNING if state.state == "failed" else logging.INFO
        log.log(level, "callback attempt", extra={"submission": name, "attempts": attempts, "state": state.state,
                                                   "error": attempt.error, "recorded": wrote})  # fmt: skip
        return wrote


def callback_status(state: CallbackState, next_attempt: datetime | None) -> SubmissionStatus:
    """The status patch of a delivery's progress."""
    return SubmissionStatus(
        callback=CallbackStatus(state=state.state, attempts=state.attempts, last_error=state.last_error,
                                next_attempt_at=iso(next_attempt))
    )  # fmt: skip
