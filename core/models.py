"""The vocabulary of the HTTP contract and of the CodeSubmission resource, shared by both back ends."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from pydantic.alias_generators import to_camel


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED)


class Verdict(StrEnum):
    OK = "ok"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    CANCELLED = "cancelled"
    SYSTEM_ERROR = "system_error"

    @property
    def status(self) -> Status:
        return Status.COMPLETED if self is Verdict.OK else Status.FAILED


def _unicode(value: str) -> str:
    """JSON's `\\ud800` escapes can spell lone surrogates, which are no text: refuse them here, before
    anything encodes the string (the sandbox's files, SQLite, the Kubernetes API server)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"holds a lone surrogate (\\u{ord(value[exc.start]):04x} at character {exc.start}); "
            "send valid Unicode text"
        ) from None
    return value


Text = Annotated[StrictStr, AfterValidator(_unicode)]


class SubmitRequest(BaseModel):
    """The body of POST /submit. Strict: a string or a boolean where a number belongs is a 400, not a
    coercion (an integer is a number, so `"timeoutSeconds": 5` is fine); and strings are valid Unicode."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel, strict=True)

    language: Text | None = Field(None, description="a name from GET /languages; DEFAULT_LANGUAGE if left out")
    code: Text = Field(description="the program's source code")
    input: Text = Field("", description="what the program reads on stdin")
    timeout_seconds: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="wall-clock limit of the run, in seconds"
    )
    memory_mb: int | None = Field(None, gt=0, description="memory limit of the run, in MB")
    callback_url: Text | None = Field(
        None, description="http(s) URL that receives the result (POST, JSON) when the run ends; its host must be "
        "on the server's callback allowlist (MONACO_CALLBACK_ALLOW)"
    )


class Limits(BaseModel):
    """The limits one submission runs with, after defaults and maxima were applied."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    timeout_seconds: float
    memory_mb: int


class Outcome(BaseModel):
    """What a finished run produced: the result fields of GET /result, before shaping."""

    verdict: Verdict
    output: str = ""
    stderr: str = ""
    compile_output: str = ""
    exit_code: int | None = None
    execution_ms: float | None = None
    compile_ms: float | None = None
    memory_kb: int | None = None
    truncated: bool = False
    message: str = ""

    @property
    def status(self) -> Status:
        return self.verdict.status

    @property
    def total_ms(self) -> float | None:
        """Compile + run (the CR status's totalTimeMs); the HTTP totalTime is SubmissionView.total_ms."""
        if self.execution_ms is None and self.compile_ms is None:
            return None
        return (self.execution_ms or 0.0) + (self.compile_ms or 0.0)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, as the contract shows times."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """The inverse of `iso`, and a reader of Kubernetes' timestamps: None for anything that is not an
    ISO-8601 time (a resource read back must not fail on one odd field); a time without a zone is UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def whole_ms(ms: float | None) -> int | None:
    """The seed's integer milliseconds (half up), for executionTime and totalTime."""
    return None if ms is None else math.floor(ms + 0.5)


def format_ms(ms: float | None) -> str | None:
    if ms is None:
        return None
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.3f} s"


class CallbackState(BaseModel):
    """Where the delivery of a submission's callback stands."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    state: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class SubmissionView(BaseModel):
    """A submission as both back ends hand it to the routes."""

    id: str
    language: str
    status: Status
    queued_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    outcome: Outcome | None = None
    message: str = ""
    callback: CallbackState | None = None  # None: no callbackUrl

    def status_body(self) -> dict[str, Any]:
        o = self.outcome
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "queuedAt": iso(self.queued_at),
            "startedAt": iso(self.started_at),
            "completedAt": iso(self.completed_at),
            "executionTime": whole_ms(o.execution_ms) if o else None,
            "executionTimeMs": o.execution_ms if o else None,
        }
        if o:
            body["verdict"] = o.verdict.value
        return body

    def total_ms(self) -> float | None:
        """The seed's totalTime: completedAt - queuedAt, the wait in the queue included."""
        if self.completed_at is None:
            return None
        return max(0.0, (self.completed_at - self.queued_at).total_seconds() * 1000)

    def queue_ms(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.started_at - self.queued_at).total_seconds() * 1000)

    def result_body(self) -> dict[str, Any]:
        o = self.outcome
        total = whole_ms(self.total_ms()) if o else None
        body = self.status_body()
        body.update(
            {
                "language": self.language,
                "output": o.output if o else None,
                "executionTimeFormatted": format_ms(o.execution_ms) if o else None,
                "totalTime": total,
                "totalTimeFormatted": format_ms(total),
                "compileTimeMs": o.compile_ms if o else None,
                "queueTimeMs": _round3(self.queue_ms()),
                "stderr": o.stderr if o else None,
                "compileOutput": o.compile_output if o else None,
                "exitCode": o.exit_code if o else None,
                "verdict": o.verdict.value if o else None,
                "memoryKb": o.memory_kb if o else None,
                "truncated": o.truncated if o else False,
                "message": (o.message if o else "") or self.message,
                "callback": self.callback.body() if self.callback else None,
            }
        )
        return body


def _round3(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)
