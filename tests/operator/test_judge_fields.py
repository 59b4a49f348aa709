"""The judge's fields (issue 11) on the Kubernetes side: the operator's checks of a resource, the sandbox's
ConfigMap and environment, warm-pool eligibility, the result with test cases, and its status round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monaco.core import envelope
from monaco.core import resource as r
from monaco.core.models import CaseResult, Outcome, Status, Verdict
from monaco.core.settings import Settings
from monaco.operator import builders, results
from monaco.operator.pool import warm_eligible
from monaco.operator.submission import SpecError
from tests.operator.test_builders import env_of, sub_of


def test_configmap_holds_extra_files_and_one_stdin_per_case(settings: Settings) -> None:
    sub = sub_of(settings, "c", code="int main(){}", input="",
                 files=[{"name": "helper.h", "content": "int f(void);"}],
                 testCases=[{"input": "1\n", "expectedOutput": "1"}, {"input": "2\n"}])
    data = builders.build_configmap(sub, settings)["data"]
    assert data == {"main.c": "int main(){}", "stdin": "", "helper.h": "int f(void);", "stdin-0": "1\n",
                    "stdin-1": "2\n"}


def test_args_and_options_travel_as_positional_parameters(settings: Settings) -> None:
    sub = sub_of(settings, "c", args=["$(id)", "two words"], compilerOptions=["-O0", "-DX=1"],
                 redirectStderrToStdout=True, testCases=[{"input": ""}] * 3, input="")
    pod = builders.build_pod_spec(sub, settings)
    compile_env, run_env = env_of(pod["initContainers"][0]), env_of(pod["containers"][0])
    def params(env: dict[str, str]) -> list[str]:
        return [env[f"MONACO_ARG_{i}"] for i in range(int(env["MONACO_ARGC"]))]

    assert params(compile_env) == ["-O0", "-DX=1"] and params(run_env) == ["$(id)", "two words"]
    assert "$(id)" not in run_env["MONACO_COMMAND"] and run_env["MONACO_COMMAND"].endswith('"$@"')
    assert run_env["MONACO_MERGE_STDERR"] == "1" and run_env["MONACO_CASES"] == "3"
    assert "MONACO_MERGE_STDERR" not in compile_env and "MONACO_CASES" not in compile_env
    # every case has the run's time limit: the Job's deadline covers all of them
    job = builders.build_job(sub, settings)
    assert job["spec"]["activeDeadlineSeconds"] == 30 + 3 * 5 + settings.job_deadline_slack_seconds


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"files": [{"name": "../x", "content": ""}]}, "not a plain file name"),
        ({"files": [{"name": "main.py", "content": ""}]}, "main source file"),
        ({"compilerOptions": ["-O2"]}, "not compiled"),
        ({"testCases": [{"input": "1"}]}, "replaces"),  # the default body has an input
        ({"args": ["a\x00b"]}, "NUL"),
        ({"testCases": [{"input": 5}]}, "unreadable spec"),
    ],
)
def test_the_operator_checks_a_resource_as_the_api_does(settings: Settings, spec: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        sub_of(settings, **spec)


def test_compiler_options_the_operator_refuses(settings: Settings) -> None:
    with pytest.raises(SpecError, match="-I/etc"):
        sub_of(settings, "c", compilerOptions=["-O2", "-I/etc"])


@pytest.mark.parametrize(
    ("spec", "warm"),
    [
        ({}, True),
        ({"expectedOutput": "hi"}, True),  # decided by the operator, not the sandbox
        ({"args": ["x"]}, False),
        ({"files": [{"name": "a.py", "content": ""}]}, False),
        ({"redirectStderrToStdout": True}, False),
        ({"testCases": [{"input": ""}], "input": ""}, False),
    ],
)
def test_warm_pool_takes_only_what_its_job_frame_carries(settings: Settings, spec: dict[str, Any],
                                                         warm: bool) -> None:
    settings.warm_pool = {"python": 1}
    sub = sub_of(settings, "python", **spec, limits={})
    assert warm_eligible(sub, settings) is warm


def _envelope(nonce: str, case: int, stdout: bytes, exit_code: int = 0) -> bytes:
    import base64
    return (f"\n#MONACO-ENVELOPE v2 BEGIN {nonce}\nphase=run\ncase={case}\nexit={exit_code}\nsignal=\nwall_ns=1000000\n"
            f"cpu_ms=0\ncpu_limit_ms=2000\ntimed_out=0\ntimeout_ms=1000\noutput_limit=100\noutput_exceeded=0\n"
            f"memory_kb=10\noom_kills=\nstdout_bytes={len(stdout)}\nstderr_bytes=0\nerror=\n"
            f"stdout={base64.b64encode(stdout).decode()}\nstderr=\n#MONACO-ENVELOPE v2 END {nonce}\n").encode()


NONCE = "01234567-89ab-cdef-0123-456789abcdef"


def test_parse_all_reads_every_case_of_the_runners_nonce() -> None:
    forged = _envelope("ffffffff-ffff-ffff-ffff-ffffffffffff", 0, b"forged")
    log = forged + _envelope(NONCE, 0, b"a\n") + _envelope(NONCE, 1, b"b\n")
    assert [x.stdout for x in envelope.parse_all(log)] == [b"a\n", b"b\n"]


def test_status_with_cases_round_trips_through_the_resource() -> None:
    outcome = envelope.decide_cases(
        None,
        [envelope.parse(_envelope(NONCE, 0, b"4\n")), envelope.parse(_envelope(NONCE, 1, b"8\n"))],
        ["4", "9"],
    )
    assert outcome.verdict is Verdict.WRONG_ANSWER and outcome.message.startswith("test case 2:")
    status = results.finished_status(outcome, datetime(2026, 1, 1, tzinfo=UTC)).wire()
    assert [c["verdict"] for c in status["testCases"]] == ["ok", "wrong_answer"]
    view = r.submission_view({"metadata": {"name": "x"}, "spec": {"language": "python"}, "status": status})
    body = view.result_body()
    assert view.status is Status.FAILED and body["verdict"] == "wrong_answer"
    assert [c["output"] for c in body["testCases"]] == ["4\n", "8\n"]


def test_case_texts_share_the_status_budget() -> None:
    big = "x" * r.MAX_OUTPUT
    outcome = Outcome(verdict=Verdict.OK, output=big,
                      test_cases=[CaseResult(verdict=Verdict.OK, output=big) for _ in range(32)])
    status = results.finished_status(outcome, datetime(2026, 1, 1, tzinfo=UTC))
    assert status.test_cases is not None
    total = sum(results.encoded_size(c.output) for c in status.test_cases) + results.encoded_size(status.output or "")
    assert total <= results.STATUS_TEXT_BUDGET and all(c.truncated for c in status.test_cases)
