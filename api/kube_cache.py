"""What CodeSubmission events mean: the cache of submission views behind the Kubernetes back end.

Every API replica keeps one, fed by its own watch, and they agree because each derives its views by
the same rules: a resource deleted before it finished is a cancelled submission (kept as a tombstone
for an hour, so that a client polling after a cancel still gets an answer), a finished one that is
deleted has only been cleaned up after its TTL and is forgotten. The cache holds views, never raw
resources, code or input, and bounds the outputs it keeps.

The watch thread writes and the event loop reads, so one lock guards every field.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from typing import Any

from monaco.api.backend import QueueFull
from monaco.api.drain import DrainRate
from monaco.api.metrics import Metrics
from monaco.core.models import Outcome, Status, SubmissionView, Verdict, utcnow
from monaco.core.resource import submission_view

TOMBSTONE_SECONDS = 3600.0
CANCELLED = "cancelled by request"


def read_resource(obj: dict[str, Any]) -> tuple[str, SubmissionView, bool]:
    """(name, view, being deleted) of a CodeSubmission."""
    view = submission_view(obj)
    return view.id, view, bool((obj.get("metadata") or {}).get("deletionTimestamp"))


class ViewCache:
    # Outputs can be large (the CRD allows 256 KiB per result); past this many characters in all, the
    # results that changed longest ago keep only their status, and the back end reads their outputs
    # from the API server when they are asked for.
    output_budget_chars = 64 * 1024 * 1024

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        # Submissions accepted here and not yet counted as finished. Each replica counts only its own, as
        # the local back end does, so that the counters of all replicas add up to the true totals.
        self.mine: set[str] = set()
        self.lock = threading.Lock()
        self.views: dict[str, SubmissionView] = {}
        self.counts: Counter[Status] = Counter()  # of the views, kept as they change
        self.outputs: dict[str, int] = {}  # name -> characters of output, oldest change first
        self.output_chars = 0
        self.stripped: set[str] = set()  # views whose outputs were dropped to stay within the budget
        self.unconfirmed: dict[str, float] = {}  # created here, not yet seen by the watch: name -> when
        self.tombstones: dict[str, float] = {}  # name -> monotonic time it is forgotten
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.creating = 0  # creates on their way to the API server, counted in the queue
        self.drain = DrainRate()  # finishes seen by the watch, of every replica's submissions, for Retry-After

    # ---- reads (event loop)
    def get(self, name: str) -> tuple[SubmissionView | None, bool]:
        """The view and whether its outputs were stripped."""
        with self.lock:
            return self.views.get(name), name in self.stripped

    def waiting(self) -> int:
        return self.counts[Status.PENDING] + self.counts[Status.QUEUED]

    async def wait(self, name: str, timeout: float) -> SubmissionView | None:
        """The view once finished, or as it is after `timeout` seconds; woken by the watch thread."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self.lock:  # look and register at once, so that no change slips between the two
                view = self.views.get(name)
                if view is None or view.status.finished or loop.time() >= deadline:
                    return view
                woken: asyncio.Future[None] = loop.create_future()
                self.waiters.setdefault(name, set()).add(woken)
            try:
                await asyncio.wait_for(woken, deadline - loop.time())
            except TimeoutError:
                pass
            finally:
                with self.lock:
                    self.waiters.get(name, set()).discard(woken)
                    if not self.waiters.get(name, True):
                        del self.waiters[name]

    # ---- changes made here (event loop)
    def reserve(self, queue_size: int) -> None:
        """Count one more submission on its way in, or refuse it while the queue is full."""
        with self.lock:
            waiting = self.waiting() + self.creating  # concurrent submits count each other
            if waiting >= queue_size:
                raise QueueFull(queue_size, self.drain.retry_after(waiting))
            self.creating += 1

    def abandon(self) -> None:
        with self.lock:
            self.creating -= 1

    def created(self, name: str, view: SubmissionView) -> SubmissionView:
        """Show a submission the API server accepted at once, before the watch brings it."""
        with self.lock:
            self.creating -= 1
            self.mine.add(name)
            if name in self.views:  # the watch was faster
                known = self.views[name]
                if known.status.finished:
                    self._count(name, known)
                return known
            self._set(name, view)
            self.unconfirmed[name] = time.monotonic()
            return view

    def cancelled(self, name: str, last: SubmissionView) -> SubmissionView:
        """After our DELETE: the tombstone, unless it finished meanwhile."""
        with self.lock:
            current = self.views.get(name, last)
            if not current.status.finished:
                self._bury(name, current)
            view = self.views.get(name, current)
        self._wake(name)
        return view

    def counts_now(self) -> tuple[int, int, int]:
        """(waiting, running, all) at one instant, after forgetting expired tombstones."""
        with self.lock:
            self._prune()
            return self.waiting(), self.counts[Status.RUNNING], len(self.views)

    # ---- changes from the API server (watch thread)
    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        name, view, deleting = read_resource(obj)
        with self.lock:
            if kind == "DELETED":
                self.unconfirmed.pop(name, None)
                self._gone(name, view)
            else:
                self._take(name, view, deleting)
            self._prune()
        self._wake(name)

    def take_page(self, items: list[tuple[str, SubmissionView, bool]]) -> None:
        with self.lock:
            for name, view, deleting in items:
                self._take(name, view, deleting)

    def forget_unlisted(self, listed: set[str], began: float) -> None:
        """After a full list, read what vanished while nobody watched as DELETED events would; a
        submission created here after the list began may be missing from it and still exist."""
        with self.lock:
            for name, last in list(self.views.items()):
                if name not in listed and self.unconfirmed.get(name, 0.0) < began:
                    self.unconfirmed.pop(name, None)
                    self._gone(name, last)
            self._prune()
            names = list(self.waiters)
        for name in names:
            self._wake(name)

    # ---- the rules (callers hold the lock)
    def _take(self, name: str, view: SubmissionView, deleting: bool) -> None:
        """A resource as the API server has it now: an ADDED or MODIFIED event, or a listed item."""
        self.unconfirmed.pop(name, None)
        if name in self.tombstones:
            pass  # late news of a submission already cancelled
        elif deleting and not view.status.finished:  # a DELETE held back by a finalizer
            self._bury(name, view)
        else:
            self._put(name, view)

    def _gone(self, name: str, last: SubmissionView) -> None:
        if name in self.tombstones:
            return
        if not last.status.finished or (last.outcome and last.outcome.verdict is Verdict.CANCELLED):
            self._bury(name, last)
        else:
            self._set(name, None)  # finished and cleaned up after its TTL

    def _bury(self, name: str, view: SubmissionView) -> None:
        if not view.status.finished:
            view = view.model_copy(
                update={
                    "status": Status.FAILED,
                    "completed_at": utcnow(),
                    "outcome": Outcome(verdict=Verdict.CANCELLED, message=CANCELLED),
                    "message": CANCELLED,
                }
            )
        self._put(name, view)
        self.unconfirmed.pop(name, None)
        self.tombstones[name] = time.monotonic() + TOMBSTONE_SECONDS

    def _put(self, name: str, view: SubmissionView) -> None:
        before = self.views.get(name)
        self._set(name, view)
        if view.status.finished and (before is None or not before.status.finished):
            if before is not None:  # seen to finish now, not listed long after it had
                self.drain.record()
            self._count(name, view)

    def _count(self, name: str, view: SubmissionView) -> None:
        if name in self.mine:
            self.mine.discard(name)
            self.metrics.observe_finished(view)

    def _set(self, name: str, view: SubmissionView | None) -> None:
        """The one place a view changes, so that the counts, the output budget and the gauges follow."""
        before = self.views.pop(name, None)
        if before is not None:
            if view is None:
                self.mine.discard(name)
            self.counts[before.status] -= 1
            self.output_chars -= self.outputs.pop(name, 0)
            self.stripped.discard(name)
        if view is not None:
            self.views[name] = view
            self.counts[view.status] += 1
            o = view.outcome
            size = len(o.output) + len(o.stderr) + len(o.compile_output) if o else 0
            if size:
                self.outputs[name] = size
                self.output_chars += size
            while self.output_chars > self.output_budget_chars:
                self._strip(next(iter(self.outputs)))
        self.metrics.queue_length.set(self.waiting())
        self.metrics.running.set(self.counts[Status.RUNNING])

    def _strip(self, name: str) -> None:
        self.output_chars -= self.outputs.pop(name)
        view = self.views[name]
        if view.outcome is not None:
            outcome = view.outcome.model_copy(update={"output": "", "stderr": "", "compile_output": ""})
            self.views[name] = view.model_copy(update={"outcome": outcome})
            self.stripped.add(name)

    def _prune(self) -> None:
        now = time.monotonic()
        for name in [n for n, until in self.tombstones.items() if until <= now]:
            del self.tombstones[name]
            self._set(name, None)

    def _wake(self, name: str) -> None:
        """Resolve the waiters of `name` on their own loops; safe from any thread."""
        with self.lock:
            waiters = self.waiters.pop(name, set())
        for woken in waiters:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting any more
                woken.get_loop().call_soon_threadsafe(_resolve, woken)


def _resolve(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)
