"""The one parser of the runner's result envelope, and the verdict that follows from it."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from monaco.core.models import Outcome, Verdict

VERSION = "v1"
_BEGIN = re.compile(rb"^#MONACO-ENVELOPE v1 BEGIN ([0-9a-f-]{36})$", re.M)
_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "java.lang.OutOfMemoryError", "Cannot allocate memory")
SIGKILL, SIGXCPU, SIGXFSZ = 9, 24, 25


class EnvelopeError(ValueError):
    """The runner's output holds no intact envelope: a system error, never the program's verdict."""


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    exit: int | None
    wall_ns: int
    timed_out: bool
    timeout_ms: int
    output_limit: int
    memory_kb: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    error: str

    @property
    def wall_ms(self) -> float:
        return self.wall_ns / 1e6

    @property
    def over_output_limit(self) -> bool:
        return self.stdout_bytes > self.output_limit or self.stderr_bytes > self.output_limit

    @property
    def signal(self) -> int | None:
        return self.exit - 128 if self.exit is not None and self.exit > 128 else None


def parse(raw: bytes | str) -> PhaseResult:
    """Read the last envelope in the runner's stdout.

    Anything before it (a program that wrote into the runner's stdout while it lived) is ignored: the
    real envelope is printed after the program's whole process tree is dead, so it is always last, and
    it must end the output with the END marker of its own nonce.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    begins = list(_BEGIN.finditer(data))
    if not begins:
        raise EnvelopeError("the runner printed no result envelope")
    begin = begins[-1]
    nonce = begin.group(1)
    body, sep, tail = data[begin.end() :].partition(b"\n#MONACO-ENVELOPE v1 END " + nonce + b"\n")
    if not sep or tail.strip():
        raise EnvelopeError("the runner's result envelope is cut short or followed by other output")
    fields: dict[str, bytes] = {}
    for line in body.strip(b"\n").split(b"\n"):
        key, eq, value = line.partition(b"=")
        if not eq:
            raise EnvelopeError(f"malformed envelope line {line[:40]!r}")
        fields[key.decode("ascii", "replace")] = value
    try:
        return PhaseResult(
            phase=fields["phase"].decode(),
            exit=int(fields["exit"]) if fields.get("exit") else None,
            wall_ns=int(fields.get("wall_ns") or 0),
            timed_out=fields.get("timed_out") == b"1",
            timeout_ms=int(fields.get("timeout_ms") or 0),
            output_limit=int(fields.get("output_limit") or 0),
            memory_kb=int(fields["memory_kb"]) if fields.get("memory_kb") else None,
            stdout=base64.b64decode(fields.get("stdout", b""), validate=True),
            stderr=base64.b64decode(fields.get("stderr", b""), validate=True),
            stdout_bytes=int(fields.get("stdout_bytes") or 0),
            stderr_bytes=int(fields.get("stderr_bytes") or 0),
            error=fields.get("error", b"").decode("utf-8", "replace"),
        )
    except (KeyError, ValueError, binascii.Error) as exc:
        raise EnvelopeError(f"unreadable envelope field: {exc}") from exc


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def decide(
    compiled: PhaseResult | None,
    ran: PhaseResult | None,
    *,
    oom_killed: bool = False,
    memory_kb: int | None = None,
) -> Outcome:
    """The verdict of a submission from its phases.

    `oom_killed` comes from outside the sandbox (a Kubernetes container terminated as OOMKilled, a
    memory cgroup's OOM count); `memory_kb` overrides the runner's figure when the back end measured it.
    """
    compile_output = ""
    compile_ms = None
    if compiled is not None:
        compile_output = _text(compiled.stdout)
        compile_ms = compiled.wall_ms
        if compiled.error:
            return Outcome(verdict=Verdict.SYSTEM_ERROR, message=f"compile step: {compiled.error}")
        if compiled.timed_out or compiled.exit != 0:
            why = (
                f"compilation took longer than {compiled.timeout_ms / 1000:g} s"
                if compiled.timed_out
                else f"the compiler exited with status {compiled.exit}"
            )
            return Outcome(
                verdict=Verdict.COMPILE_ERROR,
                compile_output=compile_output,
                compile_ms=compile_ms,
                exit_code=compiled.exit,
                message=why,
            )
    if ran is None:
        return Outcome(verdict=Verdict.SYSTEM_ERROR, compile_output=compile_output, message="the program never ran")
    if ran.error:
        return Outcome(
            verdict=Verdict.SYSTEM_ERROR, compile_output=compile_output, compile_ms=compile_ms, message=ran.error
        )
    stderr = _text(ran.stderr)
    truncated = ran.over_output_limit
    if oom_killed:
        verdict, message = Verdict.MEMORY_LIMIT, "the program was killed for using more memory than its limit"
    elif ran.timed_out:
        verdict, message = Verdict.TIMEOUT, f"the program ran longer than {ran.timeout_ms / 1000:g} s"
    elif truncated:
        verdict = Verdict.OUTPUT_LIMIT
        message = f"the program wrote more than {ran.output_limit} bytes to stdout or stderr"
    elif ran.exit == 0:
        verdict, message = Verdict.OK, ""
    elif any(sign in stderr for sign in _MEMORY_SIGNS):
        verdict, message = Verdict.MEMORY_LIMIT, "the program ran out of memory"
    elif ran.signal == SIGXCPU:
        verdict, message = Verdict.TIMEOUT, "the program used more CPU time than its limit"
    else:
        verdict = Verdict.RUNTIME_ERROR
        message = (
            f"the program was killed by signal {ran.signal}"
            if ran.signal
            else f"the program exited with status {ran.exit}"
        )
    return Outcome(
        verdict=verdict,
        output=_text(ran.stdout),
        stderr=stderr,
        compile_output=compile_output,
        exit_code=ran.exit,
        execution_ms=round(ran.wall_ms, 3),
        compile_ms=round(compile_ms, 3) if compile_ms is not None else None,
        memory_kb=memory_kb if memory_kb is not None else ran.memory_kb,
        truncated=truncated,
        message=message,
    )
