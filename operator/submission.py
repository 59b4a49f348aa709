"""A CodeSubmission's spec, resolved against the language registry: what the builders need."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monaco.core.languages import Language, Registry
from monaco.core.models import Limits
from monaco.core.phase import LimitError, resolve_limits


class SpecError(ValueError):
    """The resource asks for something this deployment cannot run; the message says what to change."""


@dataclass(frozen=True)
class Submission:
    name: str
    namespace: str
    uid: str
    language: Language
    code: str
    stdin: str
    limits: Limits

    @property
    def timeout_seconds(self) -> float:
        return self.limits.timeout_seconds

    @property
    def memory_mb(self) -> int:
        return self.limits.memory_mb

    @property
    def compile_timeout_seconds(self) -> float | None:
        return self.language.compile_limits.timeout_seconds if self.language.compiles else None

    def deadline_seconds(self, slack: int) -> int:
        """activeDeadlineSeconds of the Job: compile + run + slack for pod start and log flushing."""
        return math.ceil(self.compile_timeout_seconds or 0) + math.ceil(self.timeout_seconds) + slack


def from_body(body: dict[str, Any], registry: Registry) -> Submission:
    """The submission of a resource body; limits resolved as the API resolves them (core/phase.py)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    language = registry.get(str(spec.get("language", "")))
    if language is None:
        raise SpecError(
            f"unknown language {spec.get('language')!r}; this deployment runs: {', '.join(registry.names)}"
        )
    asked = spec.get("limits") or {}
    try:
        limits = resolve_limits(language, asked.get("timeoutSeconds"), asked.get("memoryMb"))
    except LimitError as exc:
        raise SpecError(str(exc)) from None
    return Submission(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        language=language,
        code=str(spec.get("code", "")),
        stdin=str(spec.get("input") or ""),
        limits=limits,
    )
