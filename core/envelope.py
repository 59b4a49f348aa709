"""The one parser of the runner's result envelope, and the verdict that follows from it."""

from __future__ import annotations

import base64
import binascii
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from monaco.core.models import CaseResult, Outcome, Verdict
from monaco.core.phase import COMPILE, RUN

VERSION = "v2"
_BEGIN = re.compile(rb"^#MONACO-ENVELOPE v2 BEGIN ([0-9a-f-]{36})$", re.M)
SIGKILL = 9


class EnvelopeError(ValueError):
    """The runner's output holds no intact envelope: a system error, never the program's verdict."""


@dataclass(frozen=True)
class PhaseResult:
    """One phase as the runner (core/monaco-init.c, PID 1 of the sandbox) measured it.

    Every field that decides a verdict was measured by the runner or the kernel, out of the program's
    reach: nothing here is read from what the program printed or from an exit status it chose.
    """

    phase: str
    exit: int | None
    signal: int | None
    wall_ns: int
    cpu_ms: int
    cpu_limit_ms: int
    timed_out: bool
    timeout_ms: int
    output_limit: int
    output_exceeded: bool
    memory_kb: int | None
    oom_kills: int | None
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
        return self.output_exceeded or self.stdout_bytes > self.output_limit or self.stderr_bytes > self.output_limit

    @property
    def over_time(self) -> bool:
        """The wall-clock limit, as measured: whatever ended the program, a run past it is a timeout."""
        return self.timed_out or (self.timeout_ms > 0 and self.wall_ns >= self.timeout_ms * 1_000_000)

    @property
    def over_cpu(self) -> bool:
        """Used (nearly) the CPU-time rlimit (the time limit rounded up, plus a second), whatever ended it.

        Measured, never chosen: a program that sends itself SIGXCPU or SIGKILL after burning more CPU than
        its time limit in threads chose that signal, and one that catches the rlimit's SIGXCPU and exits 0
        still used the CPU. rusage reads a multi-threaded program's CPU time up to a tenth low, so nine
        tenths of the rlimit count as reaching it.
        """
        return self.cpu_limit_ms > 0 and self.cpu_ms * 10 >= self.cpu_limit_ms * 9

    @property
    def succeeded(self) -> bool:
        return not self.error and self.exit == 0 and not self.over_time and not self.oom_kills


def same_output(actual: str, expected: str) -> bool:
    """The judge's comparison: equal after trailing whitespace is cut from every line and trailing blank
    lines from the end (so `\r\n` line ends, a missing last newline and padding after the last number
    pass; a difference inside a line, in leading whitespace or in a blank line between others does not)."""
    return _normalised(actual) == _normalised(expected)


def _normalised(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def first_difference(actual: str, expected: str) -> int:
    """The 1-based line where the normalised texts first differ."""
    a, e = _normalised(actual), _normalised(expected)
    for i, (x, y) in enumerate(zip(a, e, strict=False)):
        if x != y:
            return i + 1
    return min(len(a), len(e)) + 1


def judged(outcome: Outcome, expected: str | None) -> Outcome:
    """`outcome` held to its expected output: an `ok` run that printed something else is `wrong_answer`."""
    if expected is None or outcome.verdict is not Verdict.OK or same_output(outcome.output, expected):
        return outcome
    line = first_difference(outcome.output, expected)
    return outcome.model_copy(update={"verdict": Verdict.WRONG_ANSWER,
                                      "message": f"the output differs from the expected output at line {line}"})


def _int(fields: dict[str, bytes], key: str) -> int | None:
    value = fields.get(key)
    return int(value) if value else None


def parse(raw: bytes | str) -> PhaseResult:
    """Read the last envelope in the runner's stdout.

    Anything before it is ignored: the real envelope is printed after the program's whole process tree
    is dead, so it is always last, and it must end the output with the END marker of its own nonce.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    begins = list(_BEGIN.finditer(data))
    if not begins:
        raise EnvelopeError("the runner printed no result envelope")
    begin = begins[-1]
    nonce = begin.group(1)
    body, sep, tail = data[begin.end() :].partition(b"\n#MONACO-ENVELOPE v2 END " + nonce + b"\n")
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
            exit=_int(fields, "exit"),
            signal=_int(fields, "signal"),
            wall_ns=_int(fields, "wall_ns") or 0,
            cpu_ms=_int(fields, "cpu_ms") or 0,
            cpu_limit_ms=_int(fields, "cpu_limit_ms") or 0,
            timed_out=fields.get("timed_out") == b"1",
            timeout_ms=_int(fields, "timeout_ms") or 0,
            output_limit=_int(fields, "output_limit") or 0,
            output_exceeded=fields.get("output_exceeded") == b"1",
            memory_kb=_int(fields, "memory_kb"),
            oom_kills=_int(fields, "oom_kills"),
            stdout=base64.b64decode(fields.get("stdout", b""), validate=True),
            stderr=base64.b64decode(fields.get("stderr", b""), validate=True),
            stdout_bytes=_int(fields, "stdout_bytes") or 0,
            stderr_bytes=_int(fields, "stderr_bytes") or 0,
            error=fields.get("error", b"").decode("utf-8", "replace"),
        )
    except (KeyError, ValueError, binascii.Error) as exc:
        raise EnvelopeError(f"unreadable envelope field: {exc}") from exc


def parse_all(raw: bytes | str) -> list[PhaseResult]:
    """Every envelope of a run with test cases, in order: those of the last envelope's nonce (the runner
    uses one nonce for all of its envelopes). Raises EnvelopeError without an intact last envelope."""
    data = raw.encode() if isinstance(raw, str) else raw
    parse(data)  # the last one is intact
    nonce = list(_BEGIN.finditer(data))[-1].group(1)
    results = []
    for begin in _BEGIN.finditer(data):
        if begin.group(1) != nonce:
            continue
        marker = b"\n#MONACO-ENVELOPE v2 END " + nonce + b"\n"
        end = data.find(marker, begin.end())
        if end < 0:
            raise EnvelopeError("a test case's result envelope is cut short")
        results.append(parse(data[begin.start() : end + len(marker)]))
    return results


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _ended(result: PhaseResult) -> str:
    if result.signal:
        name = _signal_name(result.signal)
        return f"was killed by signal {result.signal}{f' ({name})' if name else ''}"
    return f"exited with status {result.exit}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


COMPILER_OOM = "the compiler ran out of memory"
PROGRAM_OOM = "the program was killed for using more memory than its limit"


def oom_outcome(phase: str, *, compile_output: str = "", memory_kb: int | None = None) -> Outcome:
    """A phase the kernel OOM-killed, judged without the runner's envelope (the runner died with it, or saw
    nothing): the compiler's is a compile error, the program's a memory limit. For both back ends."""
    if phase == COMPILE:
        return Outcome(verdict=Verdict.COMPILE_ERROR, compile_output=compile_output, message=COMPILER_OOM)
    return Outcome(verdict=Verdict.MEMORY_LIMIT, compile_output=compile_output, memory_kb=memory_kb,
                   message=PROGRAM_OOM)


def compile_outcome(compiled: PhaseResult | None) -> Outcome | None:
    """The outcome of a submission that ends at its compile step, or None when the program may run.

    The one place that decides the compile short-circuit, for both back ends.
    """
    if compiled is None or compiled.succeeded:
        return None
    output = _text(compiled.stdout)
    if compiled.error:
        return Outcome(verdict=Verdict.SYSTEM_ERROR, compile_output=output, message=f"compile step: {compiled.error}")
    if compiled.oom_kills:
        why = COMPILER_OOM
    elif compiled.over_time:
        why = f"compilation took longer than {compiled.timeout_ms / 1000:g} s"
    else:
        why = f"the compiler {_ended(compiled)}"
    return Outcome(
        verdict=Verdict.COMPILE_ERROR,
        compile_output=output,
        compile_ms=round(compiled.wall_ms, 3),
        exit_code=compiled.exit,
        message=why,
    )


def decide(
    compiled: PhaseResult | None,
    ran: PhaseResult | None,
    *,
    oom_killed: bool = False,
    memory_kb: int | None = None,
    expected: str | None = None,
) -> Outcome:
    """The verdict of a submission from its phases, by what was measured.

    `oom_killed` comes from outside the sandbox (a Kubernetes container terminated as OOMKilled, the
    run's memory cgroup's OOM count); `memory_kb` overrides the runner's figure when the back end
    measured it. A program's exit status and what it printed never choose a verdict other than
    `ok` or `runtime_error`, and a run measured over a limit is never `ok`. With `expected`, an `ok`
    run whose output differs from it is `wrong_answer` (`same_output`).
    """
    ended = compile_outcome(compiled)
    if ended is not None:
        return ended
    compile_output = _text(compiled.stdout) if compiled else ""
    compile_ms = round(compiled.wall_ms, 3) if compiled else None
    if ran is None:
        return Outcome(verdict=Verdict.SYSTEM_ERROR, compile_output=compile_output, message="the program never ran")
    if ran.error:
        return Outcome(
            verdict=Verdict.SYSTEM_ERROR, compile_output=compile_output, compile_ms=compile_ms, message=ran.error
        )
    truncated = ran.over_output_limit
    if oom_killed or (ran.oom_kills or 0) > 0:
        verdict, message = Verdict.MEMORY_LIMIT, PROGRAM_OOM
    elif ran.over_time:
        verdict = Verdict.TIMEOUT
        message = f"the program ran longer than {ran.timeout_ms / 1000:g} s"
    elif ran.over_cpu:
        verdict = Verdict.TIMEOUT
        message = (f"the program used {ran.cpu_ms / 1000:g} s of CPU time, all its threads and processes together"
                   f" (its limit: {ran.cpu_limit_ms / 1000:g} s)")
    elif truncated:
        verdict = Verdict.OUTPUT_LIMIT
        message = f"the program wrote more than {ran.output_limit} bytes to stdout or stderr"
    elif ran.exit == 0:
        verdict, message = Verdict.OK, ""
    else:
        verdict, message = Verdict.RUNTIME_ERROR, f"the program {_ended(ran)}"
    return judged(Outcome(
        verdict=verdict,
        output=_text(ran.stdout),
        stderr=_text(ran.stderr),
        compile_output=compile_output,
        exit_code=ran.exit,
        signal=ran.signal,
        execution_ms=round(ran.wall_ms, 3),
        compile_ms=compile_ms,
        memory_kb=memory_kb if memory_kb is not None else ran.memory_kb,
        truncated=truncated,
        message=message,
    ), expected)


def decide_cases(
    compiled: PhaseResult | None,
    runs: Sequence[PhaseResult],
    expected: Sequence[str | None],
    *,
    oom_killed: bool = False,
    memory_kb: int | None = None,
) -> Outcome:
    """The verdict of a submission with test cases: each case decided as `decide` does, one entry each;
    the overall result is the first failing case's (the last case's when all pass), with the longest
    run's time and the highest memory.

    `oom_killed` (the back end's evidence for the whole run phase) goes to the case that was missing
    (the runner died with it) or else to the first one killed by SIGKILL within its time."""
    ended = compile_outcome(compiled)
    if ended is not None:
        return ended
    oom_case = -1
    if oom_killed:
        killed = [i for i, ran in enumerate(runs) if ran.signal == SIGKILL and not ran.over_time]
        oom_case = len(runs) if len(runs) < len(expected) else (killed[0] if killed else -1)
    outcomes = []
    for i, want in enumerate(expected):
        if i == oom_case and i >= len(runs):
            outcomes.append(oom_outcome(RUN))
        else:
            outcomes.append(decide(compiled, runs[i] if i < len(runs) else None, oom_killed=i == oom_case,
                                   expected=want))
    top = next((o for o in outcomes if o.verdict is not Verdict.OK), outcomes[-1])
    times = [o.execution_ms for o in outcomes if o.execution_ms is not None]
    memories = [o.memory_kb for o in outcomes if o.memory_kb is not None]
    cases = [CaseResult(verdict=o.verdict, output=o.output, stderr=o.stderr, exit_code=o.exit_code, signal=o.signal,
                        execution_time_ms=o.execution_ms, memory_kb=o.memory_kb, truncated=o.truncated)
             for o in outcomes]
    index = outcomes.index(top)
    message = top.message and (f"test case {index + 1}: {top.message}" if len(outcomes) > 1 else top.message)
    return top.model_copy(update={
        "test_cases": cases,
        "execution_ms": max(times) if times else None,
        "memory_kb": memory_kb if memory_kb is not None else (max(memories) if memories else None),
        "compile_output": _text(compiled.stdout) if compiled else top.compile_output,
        "compile_ms": round(compiled.wall_ms, 3) if compiled else None,
        "message": message,
    })
