"""A CodeSubmission's spec, resolved against the language registry: what the builders need."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from monaco.core import resource as r
from monaco.core.languages import Language, Registry
from monaco.core.models import Limits, RunSpec
from monaco.core.options import OptionError, check, spec_of_resource
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
    spec: RunSpec = field(default_factory=RunSpec)

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
        """activeDeadlineSeconds of the Job: compile + every run (one per test case) + slack for pod start and
        log flushing."""
        runs = max(1, len(self.spec.test_cases))
        return math.ceil(self.compile_timeout_seconds or 0) + math.ceil(self.timeout_seconds * runs) + slack


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
    code, stdin = str(spec.get("code", "")), str(spec.get("input") or "")
    try:  # the same checks as the API's, against the CRD's bounds: a resource need not come from the API
        run_spec = spec_of_resource(spec)
        check(run_spec, language, code=code, stdin=stdin, max_code_bytes=r.MAX_CODE, max_input_bytes=r.MAX_INPUT)
    except ValidationError as exc:
        raise SpecError(f"unreadable spec: {exc.errors()[0]['msg']}") from None
    except OptionError as exc:
        raise SpecError(str(exc)) from None
    return Submission(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        language=language,
        code=code,
        stdin=stdin,
        limits=limits,
        spec=run_spec,
    )
