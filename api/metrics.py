"""Prometheus metrics, one registry per app so that tests can build many apps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monaco.core.models import SubmissionView

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, max_workers: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.max_workers = Gauge("monaco_max_workers", "The most submissions that run at once (MONACO_MAX_WORKERS)",
                                 registry=self.registry)
        self.max_workers.set(max_workers)
        self.submitted = Counter(
            "monaco_submissions_received_total", "Submissions accepted", ["language"], registry=self.registry
        )
        self.finished = Counter(
            "monaco_submissions_total",
            "Submissions finished, by language and verdict",
            ["language", "verdict"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "monaco_submissions_rejected_total", "Submissions refused, by reason", ["reason"], registry=self.registry
        )
        self.callbacks = Counter(
            "monaco_callbacks_total",
            "Callback attempts, by what came of them: delivered, retrying, failed",
            ["result"],
            registry=self.registry,
        )
        self.queue_length = Gauge("monaco_queue_length", "Submissions waiting to run", registry=self.registry)
        self.running = Gauge("monaco_running_jobs", "Submissions running now", registry=self.registry)
        self.execution, self.queue_wait = (
            Histogram(name, what, ["language"], buckets=_BUCKETS, registry=self.registry)
            for name, what in (
                ("monaco_execution_seconds", "Wall time of the program's run, measured in the sandbox"),
                ("monaco_queue_wait_seconds", "From a submission's acceptance to the start of its run "
                                              "(startedAt - queuedAt)"),
            )
        )

    def observe_finished(self, view: SubmissionView) -> None:
        o = view.outcome
        if o is None:
            return
        self.finished.labels(view.language, o.verdict.value).inc()
        if view.started_at is not None:
            self.queue_wait.labels(view.language).observe(max(0.0, (view.started_at - view.queued_at).total_seconds()))
        if o.execution_ms is not None:
            self.execution.labels(view.language).observe(o.execution_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
