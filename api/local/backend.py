"""The embedded local back end: durable SQLite queue, FIFO asyncio workers, daemonless sandbox.

Restart semantics: a submission that was queued when the process stopped runs after the restart; one
that was running is run again from the start (programs cannot have effects outside their sandbox, so a
second run is safe), at most MAX_ATTEMPTS times in all, after which it ends as `system_error`. Every
submission therefore ends exactly once, and nothing stays `running` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from datetime import timedelta

from monaco.api.backend import NotCancellable, QueueFull, QueueStats, StoreUnavailable
from monaco.api.drain import DrainRate
from monaco.api.metrics import Metrics
from monaco.core.callback import Format
from monaco.core.envelope import compile_outcome, decide, decide_cases, oom_outcome
from monaco.core.languages import Language
from monaco.core.models import CallbackState, Limits, Outcome, RunSpec, Status, SubmissionView, Verdict, utcnow
from monaco.core.phase import COMPILE, RUN
from monaco.core.settings import Settings

from .callbacks import Deliveries
from .sandbox import PhaseRun, Sandbox
from .store import Store

log = logging.getLogger("monaco.local")

MAX_ATTEMPTS = 2


class _Job:
    __slots__ = ("cancel", "code", "done", "input", "limits", "spec", "view")

    def __init__(self, view: SubmissionView, code: str, stdin: str, limits: Limits, spec: RunSpec) -> None:
        self.view = view
        self.spec = spec
        self.code = code
        self.input = stdin
        self.limits = limits
        self.cancel = asyncio.Event()
        self.done = asyncio.Event()


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = settings.registry
        self.store = Store(settings.database)
        self.sandbox = Sandbox(settings)
        self.callbacks = Deliveries(self.store, settings.callbacks, metrics)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._active: dict[str, _Job] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._janitor: asyncio.Task[None] | None = None
        self._total = 0
        self._running = 0
        self._drain = DrainRate()
        self._started = False

    # ---- lifecycle
    async def start(self) -> None:
        self.sandbox.prepare()
        await asyncio.to_thread(self.store.open)
        recovered, given_up = await self.store.recover(MAX_ATTEMPTS)
        for stored in recovered:
            job = _Job(stored.view, stored.code, stored.input, stored.limits, stored.spec)
            self._active[stored.view.id] = job
            self._queue.put_nowait(stored.view.id)
        self._total = self.store.count()
        if recovered or given_up:
            log.info("recovered submissions", extra={"requeued": len(recovered), "given_up": given_up})
        self._workers = [
            asyncio.create_task(self._worker(slot), name=f"worker-{slot}") for slot in range(self.settings.max_workers)
        ]
        self._janitor = asyncio.create_task(self._prune_forever(), name="janitor")
        resumed = self.callbacks.resume()
        if resumed:
            log.info("resumed callback deliveries", extra={"pending": resumed})
        self._started = True
        self._gauges()

    async def stop(self) -> None:
        """Stop taking work; running programs are killed and stay `running` in the store, so that the
        next start runs them again (see the module docstring)."""
        self._started = False
        tasks = [*self._workers, *([self._janitor] if self._janitor else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        await self.callbacks.stop()
        await asyncio.to_thread(self.store.close)
        self.sandbox.close()

    def ready(self) -> tuple[bool, str]:
        if not self._started:
            return False, "starting"
        if not self.store.healthy:
            return False, self.store.failure or "the store's writer has stopped"
        return True, "ok"

    # ---- the contract
    async def submit(self, language: Language, code: str, stdin: str, limits: Limits,
                     spec: RunSpec | None = None, callback_url: str | None = None,
                     callback_format: Format = "monaco") -> SubmissionView:
        spec = spec or RunSpec()
        waiting = self._queue.qsize()
        if waiting >= self.settings.queue_size:
            raise QueueFull(self.settings.queue_size, self._retry_after(waiting))
        view = SubmissionView(
            id=str(uuid.uuid4()), language=language.name, status=Status.QUEUED, queued_at=utcnow(),
            callback=CallbackState() if callback_url else None,
        )  # fmt: skip
        try:
            await self.store.insert(view, code, stdin, limits, spec, callback_url, callback_format)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the submission could not be stored: {exc}") from exc
        self._total += 1
        self._active[view.id] = _Job(view, code, stdin, limits, spec)
        self._queue.put_nowait(view.id)
        self._gauges()
        log.info("queued", extra={"submission": view.id, "language": language.name})
        return view

    async def get(self, submission_id: str) -> SubmissionView | None:
        job = self._active.get(submission_id)
        if job is not None:
            return job.view
        try:
            return self.store.get(submission_id)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc}") from exc

    async def wait(self, submission_id: str, timeout: float) -> SubmissionView | None:
        job = self._active.get(submission_id)
        if job is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.done.wait(), timeout)
        return await self.get(submission_id)

    async def cancel(self, submission_id: str) -> SubmissionView | None:
        job = self._active.get(submission_id)
        if job is None:
            view = await self.get(submission_id)
            if view is None:
                return None
            raise NotCancellable(f"submission {submission_id} has already finished ({view.status.value})")
        if job.view.status is Status.QUEUED:
            await self._finish(job, Outcome(verdict=Verdict.CANCELLED, message="cancelled by request"))
        else:
            job.cancel.set()
            await job.done.wait()
        return job.view

    async def stats(self) -> QueueStats:
        return QueueStats(
            queue_length=self._queue.qsize(),
            max_workers=self.settings.max_workers,
            running_jobs=self._running,
            submissions=self._total,
        )

    # ---- the work
    def _retry_after(self, waiting: int) -> int:
        return self._drain.retry_after(waiting)

    def _gauges(self) -> None:
        self.metrics.queue_length.set(self._queue.qsize())
        self.metrics.running.set(self._running)

    async def _worker(self, slot: int) -> None:
        while True:
            submission_id = await self._queue.get()
            job = self._active.get(submission_id)
            if job is None or job.view.status is not Status.QUEUED:
                continue  # cancelled while it waited
            self._running += 1
            self._gauges()
            try:
                await self._run(job, slot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one submission take a worker down
                log.exception("worker failed", extra={"submission": submission_id, "worker": slot})
                await self._finish(job, Outcome(verdict=Verdict.SYSTEM_ERROR, message=f"internal error: {exc}"))
            finally:
                self._running -= 1
                self._gauges()

    async def _run(self, job: _Job, slot: int) -> None:
        view = job.view
        language = self.registry.get(view.language)
        if language is None:
            await self._finish(
                job, Outcome(verdict=Verdict.SYSTEM_ERROR, message=f"language {view.language!r} is no longer installed")
            )
            return
        view.status, view.started_at = Status.RUNNING, utcnow()
        await self.store.mark_running(view.id, view.started_at)
        extra = {"submission": view.id, "worker": slot, "language": language.name}
        base = await asyncio.to_thread(self.sandbox.workspace, view.id, job.code, job.input, language,
                                       job.spec)
        try:
            compiled = None
            if language.compiles:
                log.info("compiling", extra=extra)
                compiled = await self.sandbox.run_phase(base, language, COMPILE, job.limits, slot, job.cancel,
                                                        job.spec)
                ended = self._settled(job, compiled, COMPILE) or compile_outcome(compiled.result)
                if ended is not None:
                    await self._finish(job, ended)
                    return
            log.info("running", extra=extra)
            ran = await self.sandbox.run_phase(base, language, RUN, job.limits, slot, job.cancel, job.spec)
            outcome = self._settled(job, ran, RUN) or self._decided(job.spec, compiled, ran)
            await self._finish(job, outcome)
            log.info("finished", extra={**extra, "verdict": outcome.verdict.value, "ms": outcome.execution_ms})
        finally:
            await asyncio.to_thread(self.sandbox.cleanup, base)

    @staticmethod
    def _decided(spec: RunSpec, compiled: PhaseRun | None, ran: PhaseRun) -> Outcome:
        built = compiled.result if compiled else None
        if spec.test_cases:
            return decide_cases(built, ran.cases, [c.expected_output for c in spec.test_cases],
                                oom_killed=ran.oom_killed, memory_kb=ran.memory_kb)
        return decide(built, ran.result, oom_killed=ran.oom_killed, memory_kb=ran.memory_kb,
                      expected=spec.expected_output)

    @staticmethod
    def _settled(job: _Job, done: PhaseRun, phase: str) -> Outcome | None:
        """The outcome of a phase that has no envelope to judge, or that was cancelled."""
        if job.cancel.is_set():
            return Outcome(verdict=Verdict.CANCELLED, message="cancelled by request")
        if done.result is not None:
            return None
        if done.oom_killed:  # the kernel's evidence: the memory cgroup filled up until even the runner was killed
            return oom_outcome(phase, memory_kb=done.memory_kb)
        return Outcome(verdict=Verdict.SYSTEM_ERROR, message=done.error)

    async def _finish(self, job: _Job, outcome: Outcome) -> None:
        view = job.view
        if view.status.finished:
            return
        final = view.model_copy(
            update={"status": outcome.status, "completed_at": utcnow(), "outcome": outcome, "message": outcome.message}
        )
        # Settled in memory before the write's await, so that a worker picking this job up meanwhile sees it
        # finished; the store's own guard makes the write happen once.
        job.view = final
        self._drain.record()
        try:
            await self.store.finish(final)
        finally:
            self._active.pop(view.id, None)
            job.done.set()
        self.metrics.observe_finished(final)
        if final.callback is not None and (target := self.store.callback_target(view.id)):
            self.callbacks.schedule(view.id, *target)

    async def _prune_forever(self) -> None:
        retention = timedelta(hours=self.settings.retention_hours)
        while True:
            try:
                removed = await self.store.prune(utcnow() - retention)
                if removed:
                    self._total = self.store.count()
                    log.info("pruned finished submissions", extra={"removed": removed})
            except sqlite3.Error:
                log.exception("pruning failed")
            await asyncio.sleep(3600)
