"""From a sandbox pod's and Job's states (and the runner's envelopes) to a verdict and a status patch.

The table of failures lives here, apart from any Kubernetes call, so it is tested case by case.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from monaco.core import envelope
from monaco.core import resource as r
from monaco.core.models import CaseResult, Outcome, RunSpec, Status, Verdict, iso
from monaco.core.phase import COMPILE, RUN
from monaco.operator.state import JobRecord, PodRecord

# Reasons a container waits that no retry will cure.
FATAL_WAITING = {"InvalidImageName", "ErrImageNeverPull"}
# Reasons that may heal (a registry hiccup); they become fatal at the start deadline.
START_WAITING = {"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError", "CreateContainerError",
                 "RunContainerError", "PreCreateHookError"}
IMAGE_REASONS = {"InvalidImageName", "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"}
STORAGE_SIGNS = ("ephemeral", "EmptyDir", "emptyDir", "ephemeral-storage")
OOM = "OOMKilled"
# The envelope is the last ~15 lines, but the runtime splits lines longer than 16 KiB into several
# log lines, and stdout and stderr are each up to the output limit, base64-encoded.
_LOG_LINE = 16384
LogReader = Callable[[str, str], Awaitable[bytes | None]]
# Encoded bytes for output, stderr and compileOutput together: with the largest spec (code and input
# at their CRD maxima, escaped) the object stays below etcd's 1.5 MiB.
STATUS_TEXT_BUDGET = 384 * 1024


def log_tail_lines(output_limit: int, envelopes: int = 1) -> int:
    per_stream = math.ceil(math.ceil(output_limit / 3) * 4 / _LOG_LINE) + 1
    return (20 + 2 * per_stream) * envelopes


def log_limit_bytes(output_limit: int, envelopes: int = 1) -> int:
    return log_tail_lines(output_limit, envelopes) * (_LOG_LINE + 64)


def system_error(message: str) -> Outcome:
    return Outcome(verdict=Verdict.SYSTEM_ERROR, message=message)


def _image_problem(reason: str, message: str, image_hint: str) -> str:
    what = "the sandbox image cannot be pulled" if reason in IMAGE_REASONS else "the sandbox container cannot start"
    return f"{what} ({reason}{': ' + message if message else ''}){image_hint}"


def start_failure(pod: PodRecord, now: datetime, start_deadline_seconds: int) -> Outcome | None:
    """A pod that has not ended: does it fail to start for good?"""
    if pod.terminal:
        return None
    for c in pod.containers:
        if c.waiting_reason in FATAL_WAITING:
            return system_error(_image_problem(c.waiting_reason, c.waiting_message, ""))
    if (now - pod.created).total_seconds() < start_deadline_seconds:
        return None
    hint = f"; gave up after {start_deadline_seconds} s"
    for c in pod.containers:
        if c.waiting_reason in START_WAITING:
            return system_error(_image_problem(c.waiting_reason, c.waiting_message, hint))
    if pod.unschedulable is not None:
        return system_error(f"no node can run the sandbox pod ({pod.unschedulable}){hint}")
    if not pod.started:
        return system_error(f"the sandbox pod did not start{hint}")
    return None


def ended_failure(pod: PodRecord, job: JobRecord | None, now: datetime) -> Outcome | None:
    """An ended pod whose fate is plain from its state, before any log is read."""
    if pod.reason == "Evicted":
        if any(sign in pod.message for sign in STORAGE_SIGNS):
            return Outcome(
                verdict=Verdict.OUTPUT_LIMIT,
                truncated=True,
                message=f"the program wrote more to disk than the sandbox allows ({pod.message})",
            )
        return system_error(f"the node evicted the sandbox pod ({pod.message or 'no reason given'})")
    run = pod.container(RUN)
    runner_done = run is not None and run.terminated_reason in ("Completed", OOM)
    if job is not None and job.deadline_passed(now) and not runner_done:
        return Outcome(verdict=Verdict.TIMEOUT, message="the sandbox ran longer than its deadline and was stopped")
    return None


def _parse(log: bytes | None) -> envelope.PhaseResult | None:
    if not log:
        return None
    try:
        return envelope.parse(log)
    except envelope.EnvelopeError:
        return None


def _missing(pod: PodRecord, compiled: envelope.PhaseResult | None, phase: str) -> Outcome:
    base = Outcome(verdict=Verdict.SYSTEM_ERROR, compile_output=(compiled.stdout.decode("utf-8", "replace")
                                                                if compiled else ""))
    container = pod.container(phase)
    if container is not None and container.terminated_reason == OOM:
        return envelope.oom_outcome(phase, compile_output=base.compile_output)
    if pod.deleting:
        return base.model_copy(update={"message": "the sandbox pod was deleted before the program finished"})
    return base.model_copy(update={"message": f"the {phase} step left no result envelope (the runner was killed?)"})


async def collect(pod: PodRecord, job: JobRecord | None, now: datetime, read_log: LogReader,
                  spec: RunSpec | None = None) -> Outcome:
    """The outcome of an ended pod: its state first, then the runner's envelopes from its logs (one per
    test case with `spec.testCases`), held to the spec's expected outputs."""
    spec = spec or RunSpec()
    failure = ended_failure(pod, job, now)
    if failure is not None:
        return failure
    compiled = None
    compile_ = pod.container(COMPILE)
    if compile_ is not None:
        compiled = _parse(await read_log(pod.name, COMPILE))
        if compiled is None:
            return _missing(pod, None, COMPILE)
        ended = envelope.compile_outcome(compiled)
        if ended is not None:
            return ended
        if compile_.terminated_reason == OOM:  # the runner saw no OOM kill, the kubelet did: trust the kernel
            return envelope.oom_outcome(COMPILE, compile_output=compiled.stdout.decode("utf-8", "replace"))
    run = pod.container(RUN)
    oom_killed = run is not None and run.terminated_reason == OOM
    ran = None
    if run is not None and run.started:
        log = await read_log(pod.name, RUN)
        ran = _parse(log)
        if ran is None:
            return _missing(pod, compiled, RUN)
        if spec.test_cases:
            assert log is not None
            return envelope.decide_cases(compiled, envelope.parse_all(log),
                                         [c.expected_output for c in spec.test_cases], oom_killed=oom_killed)
    return envelope.decide(compiled, ran, oom_killed=oom_killed, expected=spec.expected_output)


def _clip(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


def encoded_size(text: str) -> int:
    """An upper bound of the bytes the API server's JSON encoder spends on `text` (it escapes <, > and
    &, and control characters, as six bytes each; other characters take at most six as \\uXXXX)."""
    return len(json.dumps(text)) + 5 * sum(text.count(c) for c in "<>&")


def _fit(texts: dict[str, str], budget: int) -> tuple[dict[str, str], bool]:
    """Halve the largest text until all of them fit `budget` encoded bytes: the status must fit etcd."""
    cut = False
    while sum(encoded_size(t) for t in texts.values()) > budget:
        largest = max(texts, key=lambda k: encoded_size(texts[k]))
        texts[largest] = texts[largest][: len(texts[largest]) // 2]
        cut = True
    return texts, cut


def finished_status(outcome: Outcome, now: datetime) -> r.SubmissionStatus:
    """The status fields of a finished submission, clipped to the CRD's bounds and to a byte budget."""
    output, cut_out = _clip(outcome.output, r.MAX_OUTPUT)
    stderr, cut_err = _clip(outcome.stderr, r.MAX_STDERR)
    compile_output, _ = _clip(outcome.compile_output, r.MAX_COMPILE_OUTPUT)
    message, _ = _clip(outcome.message, r.MAX_MESSAGE)
    cases = outcome.test_cases or []
    texts = {"output": output, "stderr": stderr, "compile_output": compile_output}
    for i, case in enumerate(cases):  # every case's texts share the one budget with the top-level ones
        texts[f"{i}.output"] = _clip(case.output, r.MAX_OUTPUT)[0]
        texts[f"{i}.stderr"] = _clip(case.stderr, r.MAX_STDERR)[0]
    texts, cut = _fit(texts, STATUS_TEXT_BUDGET)
    output, stderr, compile_output = texts["output"], texts["stderr"], texts["compile_output"]
    cut_out = cut_out or cut
    fitted = [CaseResult.model_validate({
        **case.model_dump(), "output": texts[f"{i}.output"], "stderr": texts[f"{i}.stderr"],
        "truncated": case.truncated or texts[f"{i}.output"] != case.output or texts[f"{i}.stderr"] != case.stderr,
    }) for i, case in enumerate(cases)]
    return r.SubmissionStatus(
        phase=outcome.status.value,
        verdict=outcome.verdict.value,
        completed_at=iso(now),
        output=output,
        stderr=stderr,
        compile_output=compile_output,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        test_cases=fitted if outcome.test_cases is not None else None,
        execution_time_ms=outcome.execution_ms,
        compile_time_ms=outcome.compile_ms,
        total_time_ms=outcome.total_ms,
        memory_kb=outcome.memory_kb,
        truncated=outcome.truncated or cut_out or cut_err,
        message=message,
    )


def queued_status(queued_at: datetime) -> r.SubmissionStatus:
    return r.SubmissionStatus(phase=Status.QUEUED.value, queued_at=iso(queued_at))


def running_status(started_at: datetime, job_name: str, warm: bool | None = None) -> r.SubmissionStatus:
    return r.SubmissionStatus(phase=Status.RUNNING.value, started_at=iso(started_at), job_name=job_name, warm=warm)
