"""The operator's Prometheus endpoint: its admission loop's health, and the warm pools' size, idle pods,
waits, claims, misses and claim latency.

Read at scrape time from the pool's counters and kopf's indexes; served on settings.metrics_port
(0: none) by prometheus_client's own HTTP server, beside kopf's liveness endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from monaco.operator.pool import CLAIM_BUCKETS, Pool, PoolJobRecord, PoolPodRecord, pool_sizes
from monaco.operator.state import IndexLike

Indexes = Callable[[], tuple[IndexLike[PoolPodRecord], IndexLike[PoolJobRecord]]]


@dataclass(frozen=True)
class Health:
    """The operator's own state at scrape time: is its admission loop turning, and what it sees."""

    last_pass: float  # wall-clock time of the admission loop's last complete pass; 0: none yet
    admitted: dict[str, int]  # warm / cold -> submissions admitted by this process
    holding: int  # submissions holding a MAX_WORKERS slot
    waiting: int  # submissions waiting for one


class HealthCollector(Collector):
    def __init__(self, health: Callable[[], Health]) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        h = self.health()
        last = GaugeMetricFamily("monaco_operator_last_pass_timestamp_seconds", "When the admission loop last "
                                 "completed a pass (it runs at least every second; a stale value: a stuck operator)")
        last.add_metric([], h.last_pass)
        admitted = CounterMetricFamily("monaco_operator_admitted", "Submissions this operator process started, by "
                                       "path (warm: a pool's sandbox; cold: a Job of its own)", labels=["path"])
        for path, n in sorted(h.admitted.items()):
            admitted.add_metric([path], n)
        holding = GaugeMetricFamily("monaco_operator_sandboxes", "Submissions holding a MAX_WORKERS slot")
        holding.add_metric([], h.holding)
        queued = GaugeMetricFamily("monaco_operator_waiting", "Submissions waiting for a MAX_WORKERS slot")
        queued.add_metric([], h.waiting)
        yield from (last, admitted, holding, queued)


class PoolCollector(Collector):
    def __init__(self, pool: Pool, indexes: Indexes) -> None:
        self.pool = pool
        self.indexes = indexes

    def collect(self) -> Iterator[Metric]:
        pods, jobs = self.indexes()
        sizes = pool_sizes(pods, jobs)
        wanted = GaugeMetricFamily("monaco_pool_size", "Idle sandboxes each pool keeps (warmPool)", labels=["language"])
        current = GaugeMetricFamily("monaco_pool_jobs", "Unclaimed pool Jobs, starting or idle", labels=["language"])
        idle = GaugeMetricFamily("monaco_pool_idle", "Idle pool sandboxes ready for a program", labels=["language"])
        waits = GaugeMetricFamily("monaco_pool_waiting", "Submissions waiting for one of the pool's starting "
                                  "sandboxes (warmPoolWaitSeconds)", labels=["language"])
        for language in sorted(set(self.pool.settings.warm_pool) | set(sizes)):
            jobs_now, ready = sizes.get(language, (0, 0))
            wanted.add_metric([language], self.pool.size(language))
            current.add_metric([language], jobs_now)
            idle.add_metric([language], ready)
            waits.add_metric([language], self.pool.waits.get(language, 0))
        claims = CounterMetricFamily("monaco_pool_claims", "Submissions that ran in a warm sandbox",
                                     labels=["language"])
        for language, n in sorted(self.pool.stats.claims.items()):
            claims.add_metric([language], n)
        misses = CounterMetricFamily("monaco_pool_misses", "Submissions of a pooled language that took the cold "
                                     "path, by reason (limits, empty, contended, delivery)",
                                     labels=["language", "reason"])
        for (language, reason), n in sorted(self.pool.stats.misses.items()):
            misses.add_metric([language, reason], n)
        stats = self.pool.stats
        latency = HistogramMetricFamily("monaco_pool_claim_seconds",
                                        "From a claim to the runner's acknowledgement of the delivered job")
        buckets = [(str(b), n) for b, n in zip(CLAIM_BUCKETS, stats.claim_buckets, strict=True)]
        latency.add_metric([], [*buckets, ("+Inf", sum(stats.claims.values()))], stats.claim_seconds_sum)
        yield from (wanted, current, idle, waits, claims, misses, latency)


def serve(port: int, pool: Pool, indexes: Indexes, health: Callable[[], Health] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, indexes))
    if health is not None:
        registry.register(HealthCollector(health))
    start_http_server(port, registry=registry)
    return registry
