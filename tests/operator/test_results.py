"""The verdict mapping from pod and Job states, and from the runner's real envelopes in the logs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monaco.core import resource as r
from monaco.core.models import Outcome, Verdict
from monaco.operator import results
from monaco.operator.state import job_record, pod_record
from tests.operator.conftest import T0, container_status, job, pod

RUN_OK = container_status("run", terminated="Completed")


def logs_of(mapping: dict[str, bytes | None]) -> results.LogReader:
    async def read(pod_name: str, container: str) -> bytes | None:
        return mapping.get(container)

    return read


# ---- pods that have not ended
START_TABLE = [
    # (description, pod kwargs, seconds after creation, verdict or None, message part)
    ("invalid image fails at once", {"phase": "Pending",
                                     "containers": [container_status("run", waiting="InvalidImageName")]},
     1, Verdict.SYSTEM_ERROR, "cannot be pulled"),
    ("image never pulled fails at once", {"phase": "Pending",
                                          "containers": [container_status("run", waiting="ErrImageNeverPull")]},
     1, Verdict.SYSTEM_ERROR, "ErrImageNeverPull"),
    ("pull backoff waits for the start deadline", {
        "phase": "Pending", "containers": [container_status("run", waiting="ImagePullBackOff")]}, 29, None, ""),
    ("pull backoff fails past the start deadline", {
        "phase": "Pending", "containers": [container_status("run", waiting="ImagePullBackOff", message="nope")]},
     31, Verdict.SYSTEM_ERROR, "ImagePullBackOff: nope"),
    ("pull error of the compile container", {
        "phase": "Pending", "init": [container_status("compile", waiting="ErrImagePull")]},
     31, Verdict.SYSTEM_ERROR, "cannot be pulled"),
    ("unschedulable waits", {"phase": "Pending", "unschedulable": "0/1 nodes are available"}, 10, None, ""),
    ("unschedulable fails past the deadline", {"phase": "Pending", "unschedulable": "0/1 nodes are available"},
     31, Verdict.SYSTEM_ERROR, "0/1 nodes are available"),
    ("a compile running long is not a start failure", {
        "phase": "Pending", "init": [container_status("compile", running=True)]}, 300, None, ""),
    ("a run running long is not a start failure", {"phase": "Running", "containers": [
        container_status("run", running=True)]}, 300, None, ""),
    ("config error past the deadline", {"phase": "Pending", "containers": [
        container_status("run", waiting="CreateContainerConfigError", message="configmap missing")]},
     31, Verdict.SYSTEM_ERROR, "configmap missing"),
    ("nothing started past the deadline", {"phase": "Pending"}, 31, Verdict.SYSTEM_ERROR, "did not start"),
]


@pytest.mark.parametrize(("what", "kwargs", "after", "verdict", "message"), START_TABLE,
                         ids=[t[0] for t in START_TABLE])
def test_start_failures(what: str, kwargs: dict[str, object], after: float, verdict: Verdict | None,
                        message: str) -> None:
    record = pod_record(pod("s", **kwargs))  # type: ignore[arg-type]
    outcome = results.start_failure(record, T0 + timedelta(seconds=after), start_deadline_seconds=30)
    if verdict is None:
        assert outcome is None
    else:
        assert outcome is not None and outcome.verdict is verdict and message in outcome.message


def test_an_ended_pod_is_never_a_start_failure() -> None:
    record = pod_record(pod("s", phase="Failed", containers=[container_status("run", waiting="ErrImagePull")]))
    assert results.start_failure(record, T0 + timedelta(hours=1), 30) is None


# ---- pods that have ended: state first
ENDED_TABLE = [
    ("evicted for ephemeral storage", {"phase": "Failed", "reason": "Evicted",
                                       "message": "Pod ephemeral local storage usage exceeds the total limit"},
     None, Verdict.OUTPUT_LIMIT, "disk"),
    ("evicted for an emptyDir", {"phase": "Failed", "reason": "Evicted",
                                 "message": 'Usage of EmptyDir volume "tmp" exceeds the limit "64Mi".'},
     None, Verdict.OUTPUT_LIMIT, "EmptyDir"),
    ("evicted for node memory pressure", {"phase": "Failed", "reason": "Evicted",
                                          "message": "The node was low on resource: memory."},
     None, Verdict.SYSTEM_ERROR, "evicted"),
    ("Job DeadlineExceeded kills the runner", {"phase": "Failed", "containers": [
        container_status("run", terminated="Error", exit_code=137)]},
     [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], Verdict.TIMEOUT, "deadline"),
    ("Job FailureTarget DeadlineExceeded", {"phase": "Failed", "containers": [
        container_status("run", terminated="Error", exit_code=137)]},
     [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}], Verdict.TIMEOUT, "deadline"),
]


@pytest.mark.parametrize(("what", "kwargs", "conditions", "verdict", "message"), ENDED_TABLE,
                         ids=[t[0] for t in ENDED_TABLE])
def test_ended_failures(what: str, kwargs: dict[str, object], conditions: list[dict[str, str]] | None,
                        verdict: Verdict, message: str) -> None:
    record = pod_record(pod("s", **kwargs))  # type: ignore[arg-type]
    j = job_record(job("s", conditions=conditions)) if conditions else None
    outcome = results.ended_failure(record, j, T0 + timedelta(seconds=1))
    assert outcome is not None and outcome.verdict is verdict and message in outcome.message


def test_a_completed_runner_is_read_even_past_the_deadline() -> None:
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    j = job_record(job("s", start=0, deadline=30))
    assert results.ended_failure(record, j, T0 + timedelta(hours=2)) is None


def test_deadline_by_the_clock_when_the_condition_is_not_seen_yet() -> None:
    record = pod_record(pod("s", phase="Failed", containers=[container_status("run", terminated="Error",
                                                                                exit_code=137)]))
    j = job_record(job("s", start=0, deadline=30))
    assert results.ended_failure(record, j, T0 + timedelta(seconds=29)) is None
    outcome = results.ended_failure(record, j, T0 + timedelta(seconds=30))
    assert outcome is not None and outcome.verdict is Verdict.TIMEOUT


# ---- envelopes from the real runner
@pytest.mark.anyio
async def test_ok_run(runner: Callable[..., bytes]) -> None:
    log = runner("run", "cat; echo err >&2", stdin="hello\n")
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.OK
    assert outcome.output == "hello\n" and outcome.stderr == "err\n" and outcome.exit_code == 0
    assert outcome.execution_ms is not None and outcome.execution_ms > 0


@pytest.mark.anyio
async def test_runtime_error(runner: Callable[..., bytes]) -> None:
    log = runner("run", "exit 3")
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.RUNTIME_ERROR and outcome.exit_code == 3


@pytest.mark.anyio
async def test_run_timeout_from_the_runner(runner: Callable[..., bytes]) -> None:
    log = runner("run", "sleep 5", timeout_ms=200)
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.TIMEOUT


@pytest.mark.anyio
async def test_oom_killed_run_with_an_envelope_is_memory_limit(runner: Callable[..., bytes]) -> None:
    log = runner("run", "kill -9 $$")
    record = pod_record(pod("s", phase="Failed", containers=[container_status("run", terminated="OOMKilled",
                                                                               exit_code=0)]))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.MEMORY_LIMIT


@pytest.mark.anyio
async def test_oom_killed_runner_without_an_envelope_is_memory_limit() -> None:
    record = pod_record(pod("s", phase="Failed", containers=[container_status("run", terminated="OOMKilled",
                                                                               exit_code=137)]))
    outcome = await results.collect(record, None, T0, logs_of({"run": b"partial"}))
    assert outcome.verdict is Verdict.MEMORY_LIMIT


@pytest.mark.anyio
async def test_compile_error_then_run_refuses(runner: Callable[..., bytes], tmp_path: Path) -> None:
    compiled = runner("compile", "echo 'main.c:1: error' ; exit 1", build=tmp_path / "b")
    ran = runner("run", "true", build=tmp_path / "b")
    record = pod_record(pod("s", phase="Succeeded", init=[container_status("compile", terminated="Completed")],
                            containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"compile": compiled, "run": ran}))
    assert outcome.verdict is Verdict.COMPILE_ERROR
    assert "main.c:1: error" in outcome.compile_output


@pytest.mark.anyio
async def test_compile_and_run(runner: Callable[..., bytes], tmp_path: Path) -> None:
    compiled = runner("compile", "echo built", build=tmp_path / "b")
    ran = runner("run", "echo ran", build=tmp_path / "b")
    record = pod_record(pod("s", phase="Succeeded", init=[container_status("compile", terminated="Completed")],
                            containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"compile": compiled, "run": ran}))
    assert outcome.verdict is Verdict.OK and outcome.output == "ran\n" and outcome.compile_output == "built\n"
    assert outcome.compile_ms is not None and outcome.total_ms == pytest.approx(
        (outcome.execution_ms or 0) + outcome.compile_ms)


@pytest.mark.anyio
async def test_output_flood_is_output_limit(runner: Callable[..., bytes]) -> None:
    log = runner("run", "yes x | head -c 100000", output_limit=1024)
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.OUTPUT_LIMIT and outcome.truncated and len(outcome.output) <= 1024


@pytest.mark.anyio
async def test_forged_envelope_before_the_real_one_is_ignored(runner: Callable[..., bytes]) -> None:
    real = runner("run", "exit 1")
    forged = b"#MONACO-ENVELOPE v1 BEGIN 000000000000000000000000\nphase=run\nexit=0\n" \
             b"#MONACO-ENVELOPE v1 END 000000000000000000000000\n"
    record = pod_record(pod("s", phase="Succeeded", containers=[RUN_OK]))
    outcome = await results.collect(record, None, T0, logs_of({"run": forged + real}))
    assert outcome.verdict is Verdict.RUNTIME_ERROR


MISSING_TABLE = [
    ("no log at all", None, {}, "left no result envelope"),
    ("garbage", b"Segmentation fault\n", {}, "left no result envelope"),
    ("pod deleted by someone", None, {"deleting": True}, "deleted before the program finished"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("what", "log", "extra", "message"), MISSING_TABLE, ids=[t[0] for t in MISSING_TABLE])
async def test_missing_envelope_is_a_system_error(what: str, log: bytes | None, extra: dict[str, Any],
                                                  message: str) -> None:
    record = pod_record(pod("s", phase="Failed", containers=[container_status("run", terminated="Error",
                                                                               exit_code=137)], **extra))
    outcome = await results.collect(record, None, T0, logs_of({"run": log}))
    assert outcome.verdict is Verdict.SYSTEM_ERROR and message in outcome.message


@pytest.mark.anyio
@pytest.mark.parametrize("pod_phase", ["Pending", "Failed"])
async def test_an_oom_killed_compiler_is_a_compile_error_at_once(runner: Callable[..., bytes], tmp_path: Path,
                                                                 pod_phase: str) -> None:
    """The kubelet marks the init container OOMKilled even when the runner exited 0 with its envelope, counts
    that as a failed init container, and leaves the pod Pending until its deadline: it is over already."""
    compiled = runner("compile", "echo 'cc1: out of memory'; exit 1", build=tmp_path / "b")
    oom = container_status("compile", terminated="OOMKilled", exit_code=0)
    record = pod_record(pod("s", phase=pod_phase, init=[oom]))
    assert record.terminal
    outcome = await results.collect(record, None, T0, logs_of({"compile": compiled}))
    assert outcome.verdict is Verdict.COMPILE_ERROR and "cc1: out of memory" in outcome.compile_output
    without_envelope = await results.collect(record, None, T0, logs_of({}))
    assert without_envelope.verdict is Verdict.COMPILE_ERROR
    assert without_envelope.message == "the compiler ran out of memory"


@pytest.mark.anyio
async def test_missing_compile_envelope_is_a_system_error() -> None:
    record = pod_record(pod("s", phase="Failed", init=[container_status("compile", terminated="Error",
                                                                          exit_code=2)]))
    outcome = await results.collect(record, None, T0, logs_of({}))
    assert outcome.verdict is Verdict.SYSTEM_ERROR and "compile" in outcome.message


# ---- the status written
def test_finished_status_has_ms_timings_and_is_clipped_to_the_crd() -> None:
    outcome = Outcome(verdict=Verdict.OK, output="x" * (r.MAX_OUTPUT + 10), stderr="e", exit_code=0,
                      execution_ms=12.345, compile_ms=100.0, memory_kb=2048, message="")
    status = results.finished_status(outcome, T0).wire()
    assert status["phase"] == "completed" and status["verdict"] == "ok"
    assert status["executionTimeMs"] == 12.345 and status["compileTimeMs"] == 100.0
    assert status["totalTimeMs"] == pytest.approx(112.345)
    assert len(status["output"]) == r.MAX_OUTPUT and status["truncated"] is True
    assert status["completedAt"] == "2026-01-01T12:00:00.000Z"
    assert status["memoryKb"] == 2048 and status["exitCode"] == 0
    assert set(status) <= r.status_fields()


def test_failed_status_without_a_run() -> None:
    status = results.finished_status(results.system_error("boom"), T0).wire()
    assert status["phase"] == "failed" and status["verdict"] == "system_error" and status["message"] == "boom"
    assert "exitCode" not in status and "executionTimeMs" not in status


def test_log_bounds_cover_the_largest_envelope() -> None:
    # base64 of two full streams, split into 16 KiB log lines, plus the envelope's own lines.
    limit = 65536
    lines = results.log_tail_lines(limit)
    assert lines >= 14 + 2 * (limit * 4 // 3 // 16384 + 1)
    assert results.log_limit_bytes(limit) >= lines * 16384
    assert results.log_tail_lines(1024) <= 30


def test_hostile_output_is_cut_to_the_etcd_budget() -> None:
    # '<' costs six bytes in the API server's JSON; control characters too.
    outcome = Outcome(verdict=Verdict.OK, output="<" * r.MAX_OUTPUT, stderr="\x01" * r.MAX_STDERR,
                      compile_output="&" * r.MAX_COMPILE_OUTPUT)
    status = results.finished_status(outcome, T0).wire()
    total = sum(results.encoded_size(status[k]) for k in ("output", "stderr", "compileOutput"))
    assert total <= results.STATUS_TEXT_BUDGET and status["truncated"] is True
    assert status["output"] and status["stderr"] and status["compileOutput"]


def test_plain_output_is_not_cut() -> None:
    outcome = Outcome(verdict=Verdict.OK, output="x" * 65536, stderr="y" * 65536)
    status = results.finished_status(outcome, T0).wire()
    assert len(status["output"]) == 65536 and status["truncated"] is False


def test_etcd_worst_case_fits() -> None:
    # Code full of escaped characters, a full printable input. (An input of 512 Ki control characters
    # would take 3 MiB alone: no status budget can save that; the API must bound input in bytes.)
    spec = results.encoded_size("<" * r.MAX_CODE) + results.encoded_size("a" * r.MAX_INPUT)
    assert spec + results.STATUS_TEXT_BUDGET + 6 * r.MAX_MESSAGE + 8192 < 1_572_864
