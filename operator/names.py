"""Deterministic names and labels of a submission's children: a retry never creates a second one."""

from __future__ import annotations

import hashlib

MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
SUBMISSION = "monaco.dev/submission"
SUBMISSION_NAME = "monaco.dev/submission-name"
SANDBOX_SELECTOR = {MANAGED_BY: "monaco", COMPONENT: "sandbox"}
# Warm pool pods and Jobs: their language, the hash of the spec they were built from (an upgrade drains
# the others), and on pods whether one is idle or claimed; a claim adds SUBMISSION.
POOL = "monaco.dev/pool"
POOL_HASH = "monaco.dev/pool-hash"
POOL_STATE = "monaco.dev/pool-state"
IDLE, CLAIMED = "idle", "claimed"
POOL_NETWORK_POLICY = "monaco-pool"
PREFIX = "csub-"
_MAX = 63  # a Job's name becomes a label value of its pods: at most 63 characters


def _fit(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: room - 11].rstrip('-.')}-{digest}"


def key(name: str) -> str:
    """The submission's label value, the key of the operator's indexes (its name when that fits)."""
    return _fit(name, _MAX)


def child_name(name: str) -> str:
    """The name of the submission's Job, ConfigMap and NetworkPolicy."""
    return PREFIX + _fit(name, _MAX - len(PREFIX))


def labels(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels of every child; the pod template's are what the NetworkPolicy selects."""
    return {**(extra or {}), **SANDBOX_SELECTOR, SUBMISSION: key(name)}
