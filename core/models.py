"""The vocabulary of the HTTP contract and of the CodeSubmission resource, shared by both back ends."""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

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
    WRONG_ANSWER = "wrong_answer"
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

# Bounds of the judge's fields (issue 11). Byte totals are the settings' code and input limits.
MAX_TEST_CASES = 32
MAX_ARGS = 64
MAX_ARG_BYTES = 4096
MAX_ARGS_TOTAL_BYTES = 65536
MAX_FILES = 16
MAX_COMPILER_OPTIONS = 32
MAX_COMPILER_OPTION_BYTES = 256
FILE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, strict=True,
                              frozen=True)


class TestCase(_Part):
    """One case of a submission's `testCases`: its stdin and, optionally, the output it must print."""

    __test__ = False  # not a pytest class
    input: Text = Field("", description="what the program reads on stdin in this case")
    expected_output: Text | None = Field(None, description="the output this case must print (see the verdict "
                                                           "table: trailing whitespace is ignored)")


class SourceFile(_Part):
    """An extra source file, written beside the main source in the sandbox's working dir."""

    name: Text = Field(description="a plain file name: letters, digits, `.`, `_`, `-`; no `/`, not starting "
                                   "with `.` or `-`; at most 64 characters", max_length=64)
    content: Text = Field(description="the file's text")


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
    expected_output: Text | None = Field(
        None, description="the output the program must print; a run that exits 0 with other output is "
                          "`wrong_answer` (trailing whitespace at line ends and trailing blank lines are ignored)"
    )
    test_cases: list[TestCase] | None = Field(
        None, description=f"run the program once per case (compiled once), at most {MAX_TEST_CASES}; not with "
                          "`input` or `expectedOutput`"
    )
    args: list[Text] | None = Field(None, description=f"command-line arguments of the program (at most {MAX_ARGS}, "
                                                      f"{MAX_ARG_BYTES} bytes each)")
    files: list[SourceFile] | None = Field(
        None, description=f"extra source files beside the main one (at most {MAX_FILES}; their total size counts "
                          "toward the code limit)"
    )
    compiler_options: list[Text] | None = Field(
        None, description="options added to the compile command; compiled languages only, each from the "
                          "language's allowed set (GET /languages)"
    )
    redirect_stderr_to_stdout: bool = Field(False, description="merge stderr into stdout, in order")
    callback_url: Text | None = Field(
        None, description="http(s) URL that receives the result (POST, JSON) when the run ends; its host must be "
        "on the server's callback allowlist (MONACO_CALLBACK_ALLOW)"
    )


class RunSpec(BaseModel):
    """What a submission asks beyond language, code, input and limits, validated (core/options.py): the same
    on both back ends, in the local store and in the CodeSubmission's spec (camelCase, defaults left out)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    expected_output: str | None = None
    test_cases: tuple[TestCase, ...] = ()
    args: tuple[str, ...] = ()
    files: tuple[SourceFile, ...] = ()
    compiler_options: tuple[str, ...] = ()
    redirect_stderr_to_stdout: bool = False

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True)

    # What the warm pool's job frame does not carry (it carries source and stdin only).
    COLD_ONLY: ClassVar[tuple[str, ...]] = ("test_cases", "args", "files", "compiler_options",
                                             "redirect_stderr_to_stdout")

    @property
    def cold_only(self) -> bool:
        """Whether it needs more than the warm pool's job frame carries (source and stdin)."""
        return any(getattr(self, name) for name in self.COLD_ONLY)

    @classmethod
    def cold_only_in(cls, spec: Mapping[str, Any]) -> bool:
        """The same, of a CodeSubmission's raw spec (camelCase), without validating it."""
        return any(spec.get(to_camel(name)) for name in cls.COLD_ONLY)


class Limits(BaseModel):
    """The limits one submission runs with, after defaults and maxima were applied."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    timeout_seconds: float
    memory_mb: int


def signal_name(number: int | None) -> str | None:
    """SIGSEGV for 11; None for no signal or one this system has no name for."""
    if not number:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


class CaseResult(BaseModel):
    """One test case's run, as GET /result shows it (camelCase)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    verdict: Verdict
    output: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    execution_time_ms: float | None = None
    memory_kb: int | None = None
    truncated: bool = False


class Outcome(BaseModel):
    """What a finished run produced: the result fields of GET /result, before shaping."""

    verdict: Verdict
    output: str = ""
    stderr: str = ""
    compile_output: str = ""
    exit_code: int | None = None
    signal: int | None = None
    execution_ms: float | None = None
    compile_ms: float | None = None
    memory_kb: int | None = None
    truncated: bool = False
    message: str = ""
    test_cases: list[CaseResult] | None = None

    @property
    def signal_name(self) -> str | None:
        return signal_name(self.signal)

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
                "signal": o.signal if o else None,
                "signalName": o.signal_name if o else None,
                "verdict": o.verdict.value if o else None,
                "memoryKb": o.memory_kb if o else None,
                "truncated": o.truncated if o else False,
                "message": (o.message if o else "") or self.message,
                "testCases": [c.model_dump(by_alias=True, mode="json") for c in o.test_cases]
                if o and o.test_cases is not None else None,
                "callback": self.callback.body() if self.callback else None,
            }
        )
        return body


def _round3(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)
