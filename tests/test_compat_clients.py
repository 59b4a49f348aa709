"""Published clients of Judge0 and Piston, from PyPI and unmodified, against a real Monaco on loopback.

`judge0` 0.0.8 is Judge0's official Python SDK; `aiopyston` 1.2.1 a Piston v2 client. Each is pointed at
a real `monaco serve` (tests/support.served) whose local back end runs the programs in the real sandbox,
exactly as a user moving from Judge0 or Piston would point theirs.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import httpx
import judge0
import pytest
from pyston import File, PystonClient

from tests.support import Receiver, served, wait_until_blocking

pytestmark = pytest.mark.languages


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served() as base:
        yield base


@pytest.fixture(scope="module")
def judge0_client(url: str) -> Any:
    return judge0.Client(f"{url}/judge0")


def test_judge0_sdk_runs_python_with_stdin(judge0_client: Any) -> None:
    done = judge0.run(client=judge0_client, source_code="print(input()[::-1])", stdin="hello", language=71)
    assert done.status == judge0.Status.ACCEPTED
    assert done.stdout == "olleh\n"
    assert done.stderr is None and done.compile_output is None
    assert 0 < done.time < 10 and done.memory > 0
    assert done.exit_code == 0


def test_judge0_sdk_reads_the_languages_and_the_configuration(judge0_client: Any) -> None:
    ids = {language.id for language in judge0_client.languages}
    assert {71, 62, 50, 54} <= ids
    assert judge0_client.get_language(71).source_file == "main.py"
    assert judge0_client.config.enable_network is False
    assert judge0_client.config.max_submission_batch_size == 20
    assert judge0_client.version == "1.13.1"
    assert judge0_client.is_language_supported(judge0.LanguageAlias.PYTHON)  # the SDK's own table: 71


def test_judge0_sdk_compile_error_in_c(judge0_client: Any) -> None:
    done = judge0.run(client=judge0_client, source_code="int main(void) { return x; }", language=50)
    assert done.status == judge0.Status.COMPILATION_ERROR
    assert "x" in done.compile_output and "undeclared" in done.compile_output


def test_judge0_sdk_runtime_error_is_nzec(judge0_client: Any) -> None:
    done = judge0.run(client=judge0_client, source_code="import sys\nprint('out')\nsys.exit(3)", language=71)
    assert done.status == judge0.Status.RUNTIME_ERROR_NZEC
    assert (done.exit_code, done.stdout) == (3, "out\n")


def test_judge0_sdk_batch_of_submissions(judge0_client: Any) -> None:
    submissions = [judge0.Submission(source_code=f"print({i} * {i})", language=71) for i in range(3)]
    done = judge0.run(client=judge0_client, submissions=submissions)
    assert [s.stdout for s in done] == ["0\n", "1\n", "4\n"]
    assert all(s.status == judge0.Status.ACCEPTED for s in done)


def test_judge0_sdk_time_limit(judge0_client: Any) -> None:
    done = judge0.run(client=judge0_client, source_code="while True: pass", language=71, cpu_time_limit=0.5)
    assert done.status == judge0.Status.TIME_LIMIT_EXCEEDED


def test_judge0_sdk_refusal_reaches_the_user_as_judge0_s_422(judge0_client: Any) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        judge0.run(client=judge0_client, source_code="print(1)", language=71, enable_network=True)
    assert refused.value.response.status_code == 422
    assert refused.value.response.json() == {"enable_network": ["enabling network is not allowed"]}


def test_judge0_sdk_test_cases_accepted_and_wrong_answer(judge0_client: Any) -> None:
    done = judge0.run(
        client=judge0_client, source_code="print(int(input()) * 2)", language=71,
        test_cases=[("2", "4"), ("3", "7")],
    )
    assert [s.status for s in done] == [judge0.Status.ACCEPTED, judge0.Status.WRONG_ANSWER]


def test_judge0_sdk_command_line_arguments(judge0_client: Any) -> None:
    done = judge0.run(
        client=judge0_client, source_code="import sys; print(sys.argv[1:])", language=71,
        command_line_arguments="a 'b c'",
    )
    assert done.stdout == "['a', 'b c']\n"


def test_judge0_sdk_segfault_is_sigsegv(judge0_client: Any) -> None:
    done = judge0.run(client=judge0_client, source_code="int main(void) { return *(volatile int *)0; }", language=50)
    assert done.status == judge0.Status.RUNTIME_ERROR_SIGSEGV and done.exit_signal == 11


def test_judge0_sdk_callback_url_gets_judge0s_put_which_the_sdk_reads() -> None:
    """The SDK's callback_url: the receiver gets Judge0's PUT, which the SDK's own Submission decodes."""
    with Receiver() as receiver, served(MONACO_CALLBACK_ALLOW="127.0.0.1") as base:
        client = judge0.Client(f"{base}/judge0")
        asked = judge0.Submission(source_code="print(input()[::-1])", stdin="olleh", language=71,
                                  callback_url=f"{receiver.url}/sdk")  # fmt: skip
        token = client.create_submission(asked).token
        wait_until_blocking(lambda: receiver.received, 60, "Judge0's callback to arrive", 0.05)
    assert receiver.methods == ["PUT"] and receiver.received[0][0] == "/sdk"
    [body] = receiver.bodies()
    done = judge0.Submission(source_code="", language=71)
    done.set_attributes(body)
    assert str(done.token) == str(token) and done.status == judge0.Status.ACCEPTED and done.stdout == "hello\n"


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every aiopyston client of the module: a client's HTTP object schedules its own
    close on the loop it was made on when it is collected, so that loop stays open until all are gone."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        gc.collect()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()


def piston(url: str, loop: asyncio.AbstractEventLoop, work: Any) -> Any:
    """Run `work(client)` with an aiopyston client of this server's Piston API, closed afterwards."""

    async def main() -> Any:
        client = PystonClient(base_url=f"{url}/api/v2/")
        try:
            return await work(client)
        finally:
            await client.close_session()

    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)


# aiopyston builds its aiohttp connector with the deprecated verify_ssl argument; the warning is its own
piston_warnings = pytest.mark.filterwarnings("ignore:verify_ssl is deprecated:DeprecationWarning")


@piston_warnings
def test_pyston_lists_runtimes(url: str, loop: asyncio.AbstractEventLoop) -> None:
    runtimes = piston(url, loop, lambda client: client.runtimes())
    by_language = {r.language: r for r in runtimes}
    assert by_language["python"].version == "3.11.0" and "py3" in by_language["python"].aliases
    assert by_language["c++"].runtime == "gcc" and "cpp" in by_language["c++"].aliases


@piston_warnings
def test_pyston_executes_python_with_stdin(url: str, loop: asyncio.AbstractEventLoop) -> None:
    out = piston(url, loop, lambda client: client.execute(
        "py3", [File("import sys\nprint(sys.stdin.read().upper(), end='')")], stdin="shout"))
    assert out.langauge == "python" and out.version == "3.11.0"  # sic: aiopyston's own spelling
    assert (out.run_stage.stdout, out.run_stage.code, out.run_stage.signal) == ("SHOUT", 0, None)
    assert out.compile_stage is None


@piston_warnings
def test_pyston_compiles_and_runs_cpp(url: str, loop: asyncio.AbstractEventLoop) -> None:
    source = "#include <iostream>\nint main() { std::cout << 6 * 7 << std::endl; return 0; }\n"
    out = piston(url, loop, lambda client: client.execute("c++", [File(source, "main.cpp")], version="12.x"))
    assert out.compile_stage.code == 0
    assert (out.run_stage.output, out.run_stage.code) == ("42\n", 0)


@piston_warnings
def test_pyston_compile_error_repeats_in_run_as_piston_does(url: str, loop: asyncio.AbstractEventLoop) -> None:
    out = piston(url, loop, lambda client: client.execute("c", [File("int main(void) { return y; }")]))
    assert out.compile_stage.code != 0 and "y" in out.compile_stage.output
    assert out.raw_json["run"] == out.raw_json["compile"]


@piston_warnings
def test_pyston_unknown_version_is_piston_s_400(url: str, loop: asyncio.AbstractEventLoop) -> None:
    from pyston.exceptions import ExecutionError

    with pytest.raises(ExecutionError, match=r"python-2\.7\.18 runtime is unknown"):
        piston(url, loop, lambda client: client.execute("python", [File("print(1)")], version="2.7.18"))
