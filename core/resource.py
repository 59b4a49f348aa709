"""The CodeSubmission resource's names, size bounds and status shape, shared by the CRD, the operator and the API.

`core/crd.py` renders the CRD from these. The status has one mapping each way: the operator writes it
as `SubmissionStatus(...).wire()`, and the API's Kubernetes back end reads a resource back through
`SubmissionStatus.from_wire` into a `SubmissionView` (`submission_view`), so a field renamed in the
model is renamed on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from monaco.core.models import CallbackState, CaseResult, Outcome, Status, SubmissionView, Verdict, parse_time, utcnow

GROUP = "monaco.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CodeSubmission"
PLURAL = "codesubmissions"
SINGULAR = "codesubmission"
SHORT_NAMES = ["csub"]
CRD_NAME = f"{PLURAL}.{GROUP}"

# The API writes this annotation (ISO-8601 with ms) at submit time: creationTimestamp has whole seconds,
# so FIFO order and queuedAt come from here when it is present.
SUBMITTED_AT_ANNOTATION = "monaco.dev/submitted-at"


def submitted_at(metadata: Mapping[str, Any]) -> datetime | None:
    """When the API accepted a submission: its annotation, else its creationTimestamp (whole seconds)."""
    annotations = metadata.get("annotations") or {}
    return parse_time(annotations.get(SUBMITTED_AT_ANNOTATION)) or parse_time(metadata.get("creationTimestamp"))

# Size bounds. The whole object (spec + status) must fit etcd's 1.5 MiB request limit, and the API
# server escapes some characters in JSON, so the bounds leave a wide margin.
MAX_CODE = 65536
MAX_INPUT = 524288
MAX_OUTPUT = 131072
MAX_STDERR = 65536
MAX_COMPILE_OUTPUT = 65536
MAX_MESSAGE = 4096
MAX_TIMEOUT_SECONDS = 300
MAX_MEMORY_MB = 65536
# The judge's fields (core/options.py checks the same and the API's own, lower, limits): files share the
# code's bound, expected outputs and test cases the input's, arguments have their own total.
MAX_ARGS_TOTAL = 65536
MAX_FILE_NAME = 64


MAX_CALLBACK_URL = 2048
CALLBACK_STATES = ("pending", "delivered", "failed")


class CallbackStatus(BaseModel):
    """The delivery of the callback (operator/callbacks.py): `attempts` counts the attempts begun, and
    `nextAttemptAt` is when the next may begin (while one runs: when its claim lapses)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    state: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None


class SubmissionStatus(BaseModel):
    """Every field the operator writes into `.status` (camelCase on the wire)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    phase: str | None = None
    verdict: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    execution_time_ms: float | None = None
    compile_time_ms: float | None = None
    total_time_ms: float | None = None
    output: str | None = None
    stderr: str | None = None
    compile_output: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    memory_kb: int | None = None
    truncated: bool | None = None
    test_cases: list[CaseResult] | None = None
    job_name: str | None = None
    warm: bool | None = None  # it ran in an idle pool sandbox (operator/pool.py)
    message: str | None = None
    callback: CallbackStatus | None = None

    def wire(self) -> dict[str, Any]:
        """The fields that are set, as they go into a patch."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> SubmissionStatus:
        """A status as the API server holds it, read by the names `wire` writes; a field this version does
        not know (a newer operator's) is ignored. Raises ValidationError for a field of the wrong type."""
        known = status_fields()
        return cls.model_validate({k: v for k, v in raw.items() if k in known})


def status_fields() -> set[str]:
    """The camelCase names of every status field."""
    return {field.alias or name for name, field in SubmissionStatus.model_fields.items()}


def callback_due(body: Mapping[str, Any]) -> datetime | None:
    """When a finished submission's callback attempt may begin; None if it has none left to make."""
    status = body.get("status") or {}
    if not (body.get("spec") or {}).get("callbackUrl") or status.get("phase") not in ("completed", "failed"):
        return None
    state = status.get("callback") or {}
    if state.get("state", "pending") != "pending":
        return None
    return parse_time(state.get("nextAttemptAt")) or parse_time(status.get("completedAt")) or utcnow()


_PHASES = {s.value: s for s in Status}
_VERDICTS = {v.value: v for v in Verdict}


def submission_view(obj: Mapping[str, Any]) -> SubmissionView:
    """A CodeSubmission as the routes see it; no code, input or raw dict is kept.

    One bad status must not stall a watch of all the others: a field that does not validate is left out,
    and a finished submission's outcome then says that its status was unreadable."""
    meta = obj.get("metadata") or {}
    raw = obj.get("status") or {}
    unreadable = ""
    try:
        st = SubmissionStatus.from_wire(raw)
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        st = SubmissionStatus.from_wire({k: v for k, v in raw.items() if k not in bad})
        unreadable = f"unreadable status: {exc.errors()[0]['msg']}"
    phase = _PHASES.get(st.phase or "", Status.PENDING)
    outcome = None
    if phase.finished and unreadable:
        outcome = Outcome(verdict=Verdict.SYSTEM_ERROR, message=unreadable)
    elif phase.finished:
        default = Verdict.OK if phase is Status.COMPLETED else Verdict.SYSTEM_ERROR
        outcome = Outcome(
            verdict=_VERDICTS.get(st.verdict or "", default),
            output=st.output or "",
            stderr=st.stderr or "",
            compile_output=st.compile_output or "",
            exit_code=st.exit_code,
            signal=st.signal,
            test_cases=st.test_cases,
            execution_ms=st.execution_time_ms,
            compile_ms=st.compile_time_ms,
            memory_kb=st.memory_kb,
            truncated=bool(st.truncated),
            message=st.message or "",
        )
    spec = obj.get("spec") or {}
    callback = None
    if st.callback is not None:
        callback = CallbackState(state=st.callback.state, attempts=st.callback.attempts,
                                 last_error=st.callback.last_error)
    elif spec.get("callbackUrl"):
        callback = CallbackState()
    return SubmissionView(
        id=str(meta.get("name", "")),
        language=str(spec.get("language", "")),
        status=phase,
        # the operator's queuedAt once it has queued it; before, the same time on every replica and in the
        # submit's own answer
        queued_at=parse_time(st.queued_at) or submitted_at(meta) or utcnow(),
        started_at=parse_time(st.started_at),
        completed_at=parse_time(st.completed_at),
        outcome=outcome,
        message=st.message or "",
        callback=callback,
    )
