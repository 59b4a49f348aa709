"""The local back end's callback deliveries: durable in the store, so that a restart resumes them.

Each finished submission with a callbackUrl gets one task that tries until the receiver answers 2xx,
refuses for good (a 4xx other than 408/429, a redirect, an address the policy refuses), or
MONACO_CALLBACK_ATTEMPTS attempts have failed. After every attempt the store records the count, the
last error and when the next attempt is due, before the task sleeps: a process killed at any point
resumes from there on its next start. Delivery is at least once: a kill between the receiver's 2xx
and the store's write sends it again (the `X-Monaco-Submission` header lets receivers deduplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from monaco.api.metrics import Metrics
from monaco.core import callback
from monaco.core.callback import Attempt, Policy
from monaco.core.models import utcnow

from .store import Store

log = logging.getLogger("monaco.callback")
MAX_SENDING = 8  # attempts in flight at once (each holds a thread for up to the timeout)


class Deliveries:
    def __init__(self, store: Store, policy: Policy, metrics: Metrics) -> None:
        self.store = store
        self.policy = policy
        self.metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sending = asyncio.Semaphore(MAX_SENDING)

    def resume(self) -> int:
        """Start every delivery the store holds as pending (after a restart)."""
        pending = self.store.pending_callbacks()
        for p in pending:
            self._start(p.id, p.url, p.format, p.attempts, p.due)
        return len(pending)

    def schedule(self, submission_id: str, url: str, fmt: str | None) -> None:
        self._start(submission_id, url, fmt, 0, None)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _start(self, submission_id: str, url: str, fmt: str | None, attempts: int, due: datetime | None) -> None:
        if submission_id not in self._tasks:
            work = self._deliver(submission_id, url, fmt, attempts, due)
            task = asyncio.create_task(work, name=f"callback-{submission_id}")
            self._tasks[submission_id] = task
            task.add_done_callback(lambda _t: self._tasks.pop(submission_id, None))

    async def _deliver(self, submission_id: str, url: str, fmt: str | None, attempts: int, due: datetime | None
                       ) -> None:
        while True:
            if due is not None:
                await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()))
            view = self.store.get(submission_id)
            if view is None or view.callback is None:  # pruned meanwhile
                return
            headers = callback.headers(submission_id, attempts + 1)
            sent = callback.message(view, fmt)
            async with self._sending:
                try:
                    attempt = await asyncio.to_thread(self.policy.deliver, url, sent.body, headers, sent.method)
                except Exception as exc:  # never let a delivery die without its state written
                    attempt = Attempt(False, retry=True, error=f"internal error: {exc}")
            attempts += 1
            state, delay = self.policy.after(attempt, attempts)
            due = None if delay is None else utcnow() + timedelta(seconds=delay)
            await self.store.record_callback(submission_id, state, due)
            self.metrics.callbacks.labels(state.state if due is None else "retrying").inc()
            extra = {"submission": submission_id, "attempts": attempts, "state": state.state, "error": attempt.error}
            log.log(logging.WARNING if state.state == "failed" else logging.INFO, "callback attempt", extra=extra)
            if due is None:
                return
