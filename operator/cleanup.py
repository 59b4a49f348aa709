"""The end of a submission: its result written exactly once, its children removed, and later itself."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from monaco.core.models import Outcome, Status, iso
from monaco.operator import results
from monaco.operator.cluster import Cluster, status_ops
from monaco.operator.state import SubmissionRecord

log = logging.getLogger("monaco.operator")
FINISHED = (Status.COMPLETED.value, Status.FAILED.value)
# Writes of one result: phase moves (queued -> running) retry with the same result; see finish().
FINISH_TRIES = 8


async def finish(cluster: Cluster, name: str, phase: str, outcome: Outcome, now: datetime,
                 started: datetime | None = None, job: str = "") -> bool:
    """Write the result if the submission is still in `phase` (or moved on to running), then tear down.

    The write tests the phase first, so when two paths race to finish one submission (the pod ended,
    the Job vanished, a restart), one of them wins and the other changes nothing. True if this call
    wrote the result. `started` is when its sandbox started, written only if it never became `running`
    (the operator died between creating the Job and writing `running`).
    """
    # A write can fail for three reasons. The phase moved on (queued -> running, as admission writes
    # `running` while a fast warm run is being finished from its stream): try again at the new phase with
    # the same result. A transient error (a timeout, a 5xx): try again, and in the end leave it to the
    # periodic check. Or the API server refuses this content (too large, invalid): then a bare verdict, so
    # that a result the API server refuses never leaves the submission running forever. A refusal needs
    # two strikes: a write that failed although the re-read shows the phase it tested. One is not enough,
    # because the phase may have moved to the tested one between the write and the re-read.
    refused = results.system_error("the result could not be stored (the API server refused it)")
    seen, attempt, strikes = phase, outcome, 0
    for _ in range(FINISH_TRIES):
        status = results.finished_status(attempt, now)
        if seen == Status.QUEUED and started is not None:
            status.started_at = iso(started)
        error: Exception | None = None
        try:
            wrote = await cluster.patch_status(name, status_ops(status.wire(), phase=seen))
        except Exception as exc:
            log.warning("writing the result of %s failed: %s", name, exc)
            wrote, error = False, exc
        if wrote:
            log.info("%s finished: %s %s", name, attempt.verdict.value, attempt.message)
            await teardown(cluster, name, job)
            return True
        body = await cluster.get_submission(name)
        if body is None:
            return False
        current = str((body.get("status") or {}).get("phase") or "")
        if current in FINISHED:
            await teardown(cluster, name, job or str((body.get("status") or {}).get("jobName") or ""))
            return False
        if current == seen and (error is None or _too_large(error)):
            strikes += 1
            if strikes == 2:
                if attempt is refused:
                    break
                attempt, strikes = refused, 0
        seen = current
    log.warning("could not write the result of %s; the periodic check will retry", name)
    return False


def _too_large(exc: Exception) -> bool:
    """An error that says the content was refused (etcd's or the API server's size limit), not a hiccup."""
    return getattr(exc, "status", None) == 413 or "too large" in str(exc).lower()


async def teardown(cluster: Cluster, name: str, job: str = "") -> None:
    """Delete the Job (and with it the pod), the ConfigMap and the NetworkPolicy of a submission, or the
    pool Job it ran in (`job`, when it ran warm)."""
    try:
        await cluster.delete_children(name, job) if job else await cluster.delete_children(name)
    except Exception:
        log.exception("could not delete the children of %s; they go with it at its TTL", name)


def expired(subs: Iterable[SubmissionRecord], now: datetime, ttl_seconds: int) -> list[SubmissionRecord]:
    """Finished submissions older than the TTL."""
    ttl = timedelta(seconds=ttl_seconds)
    return [s for s in subs if s.finished and not s.deleting and now - (s.completed or s.created) >= ttl]


async def sweep(cluster: Cluster, subs: Iterable[SubmissionRecord], now: datetime, ttl_seconds: int) -> int:
    """Delete expired submissions (their children go with them by owner references)."""
    count = 0
    for sub in expired(subs, now, ttl_seconds):
        try:
            await cluster.delete_submission(sub.name, sub.uid)
            count += 1
        except Exception:
            log.exception("could not delete the expired submission %s", sub.name)
    return count
