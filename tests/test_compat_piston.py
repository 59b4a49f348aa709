"""The Piston v2 API: its translation as pure functions, then its routes over HTTP on real runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from monaco.api.compat import piston as p
from monaco.core.languages import Registry
from tests.compat_support import b64

REGISTRY = Registry.load()
PY = {"language": "python", "version": "*"}


def translate(**body: Any) -> dict[str, Any]:
    return p.to_monaco(body, REGISTRY)[1]


def refusal(**body: Any) -> str:
    with pytest.raises(p.PistonInvalid) as refused:
        p.to_monaco(body, REGISTRY)
    return str(refused.value)


def test_runtimes_from_the_registry() -> None:
    runtimes = {r["language"]: r for r in p.runtimes(REGISTRY)}
    assert runtimes["python"] == {"language": "python", "version": "3.11.0",
                                  "aliases": ["py", "py3", "python3", "python3.11"]}
    assert runtimes["c++"]["runtime"] == "gcc" and "runtime" not in runtimes["java"]


@pytest.mark.parametrize(("want", "ok"), [("*", True), ("3.11.0", True), ("3", True), ("3.x", True),
                                          ("3.11.*", True), ("3.10.0", False), ("3.11.0.1", False), ("4", False)])
def test_version_selectors(want: str, ok: bool) -> None:
    assert p.version_matches("3.11.0", want) is ok


def test_a_request_with_every_field() -> None:
    body = translate(language="py3", version="3.11.0", stdin="in", args=["a", "b c"], run_timeout=2500,
                     run_cpu_time=3000, run_memory_limit=64 * 1024 * 1024 + 1, compile_timeout=10000,
                     compile_memory_limit=-1, files=[{"name": "x.py", "content": "import helper"},
                                                     {"name": "helper.py", "content": b64("X = 1"),
                                                      "encoding": "base64"},
                                                     {"content": "68690a", "encoding": "hex"}])
    assert body == {"language": "python", "code": "import helper", "input": "in", "args": ["a", "b c"],
                    "files": [{"name": "helper.py", "content": "X = 1"}, {"name": "file2.code", "content": "hi\n"}],
                    "timeoutSeconds": 2.5, "memoryMb": 65}


def test_a_plain_request_needs_nothing_new_of_monaco() -> None:
    assert translate(**PY, files=[{"content": "print(1)"}], args=[], run_memory_limit=-1, run_timeout=0) == {
        "language": "python", "code": "print(1)", "input": ""}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "*", "files": []}, "language is required as a string"),
        ({"language": 3, "version": "*", "files": []}, "language is required as a string"),
        ({"language": "python", "files": []}, "version is required as a string"),
        ({**PY, "files": "print(1)"}, "files is required as an array"),
        ({**PY, "files": [{"name": "a"}]}, "files[0].content is required as a string"),
        ({**PY, "files": ["print(1)"]}, "files[0].content is required as a string"),
        ({"language": "cobol", "version": "*", "files": [{"content": ""}]}, "cobol-* runtime is unknown"),
        ({"language": "python", "version": "3.10.0", "files": [{"content": ""}]}, "python-3.10.0 runtime is unknown"),
        ({**PY, "files": []}, "files must include at least one utf8 encoded file"),
        ({**PY, "files": [{"content": "x", "encoding": "utf16"}]},
         "files[0].encoding must be one of utf8, base64, hex"),
        ({**PY, "files": [{"content": "!!", "encoding": "base64"}]}, "files[0].content is not base64 of UTF-8 text"),
        ({**PY, "files": [{"content": "ff", "encoding": "hex"}]}, "files[0].content is not hex of UTF-8 text"),
        ({**PY, "files": [{"content": "x"}, {"name": "../../etc/x", "content": ""}]},
         "files[1].name '../../etc/x' is a path"),
        ({**PY, "files": [{"content": "x"}, {"name": ".bashrc", "content": ""}]}, "files[1].name '.bashrc' starts"),
        ({**PY, "files": [{"content": "x"}, {"name": 5, "content": ""}]}, "files[1].name must be a string"),
        ({**PY, "files": [{"content": "x"}], "stdin": 5}, "stdin must be a string"),
        ({**PY, "files": [{"content": "x"}], "args": "a b"}, "args must be an array of strings"),
        ({**PY, "files": [{"content": "x"}], "args": [1]}, "args must be an array of strings"),
        ({**PY, "files": [{"content": "x"}], "run_timeout": "5"}, "If specified, run_timeout must be a number"),
        ({**PY, "files": [{"content": "x"}], "run_timeout": True}, "If specified, run_timeout must be a number"),
        ({**PY, "files": [{"content": "x"}], "run_timeout": -5}, "run_timeout must be non-negative"),
        ({**PY, "files": [{"content": "x"}], "run_timeout": 30001},
         "run_timeout cannot exceed the configured limit of 30000"),
        ({**PY, "files": [{"content": "x"}], "run_memory_limit": 1024}, "run_memory_limit must be at least"),
        ({**PY, "files": [{"content": "x"}], "compile_timeout": 10**9},
         "compile_timeout cannot exceed the configured limit of 30000"),
    ],
)
def test_piston_s_messages(body: dict[str, Any], message: str) -> None:
    assert refusal(**body).startswith(message)


def result(**fields: Any) -> dict[str, Any]:
    return {"verdict": "ok", "output": "o", "stderr": "e", "compileOutput": "", "exitCode": 0, "message": "",
            "memoryKb": 2, "executionTimeMs": 5.0, "compileTimeMs": 100.0, **fields}


def test_answer_of_an_interpreted_run() -> None:
    assert p.from_monaco(result(), REGISTRY["python"]) == {"language": "python", "version": "3.11.0", "run": {
        "stdout": "o", "stderr": "e", "output": "oe", "code": 0, "signal": None, "message": None, "status": None,
        "memory": 2048, "cpu_time": None, "wall_time": 5.0}}


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"verdict": "runtime_error", "exitCode": 2, "message": "m"}, (2, None, "RE", "m")),
        ({"verdict": "runtime_error", "exitCode": None, "signalName": "SIGSEGV", "message": "m"},
         (None, "SIGSEGV", "SG", "m")),
        ({"verdict": "timeout", "exitCode": None, "message": "t"}, (None, "SIGKILL", "TO", "t")),
        ({"verdict": "memory_limit", "exitCode": None, "message": "oom"}, (None, "SIGKILL", "SG", "oom")),
        ({"verdict": "output_limit", "exitCode": None, "message": "big"}, (None, "SIGKILL", "OL", "big")),
        ({"verdict": "system_error", "exitCode": None, "message": "x"}, (None, None, "XX", "x")),
    ],
)
def test_run_states_as_piston_reports_isolate_s(fields: dict[str, Any], state: tuple[Any, ...]) -> None:
    run = p.from_monaco(result(**fields), REGISTRY["python"])["run"]
    assert (run["code"], run["signal"], run["status"], run["message"]) == state


def test_compiled_languages_have_a_compile_stage_and_a_failed_compile_is_both() -> None:
    ok = p.from_monaco(result(compileOutput="warning"), REGISTRY["c"])
    assert ok["compile"]["output"] == "warning" and ok["compile"]["code"] == 0 and ok["run"]["output"] == "oe"
    failed = p.from_monaco(result(verdict="compile_error", compileOutput="error", exitCode=1), REGISTRY["c"])
    assert failed["compile"] == failed["run"] and failed["run"]["stderr"] == "error" and failed["run"]["code"] == 1


# ---- over HTTP


async def execute(client: httpx.AsyncClient, body: dict[str, Any], prefix: str = "/api/v2") -> httpx.Response:
    return await client.post(f"{prefix}/execute", json=body)


@pytest.mark.anyio
async def test_runtimes_under_both_prefixes_with_and_without_a_slash(client: httpx.AsyncClient) -> None:
    for path in ("/api/v2/runtimes", "/api/v2/runtimes/", "/api/v2/piston/runtimes"):
        response = await client.get(path)
        assert response.status_code == 200 and {r["language"] for r in response.json()} == {"python", "java", "c",
                                                                                              "c++"}


@pytest.mark.anyio
async def test_execute_python(client: httpx.AsyncClient) -> None:
    response = await execute(client, {"language": "python3", "version": "3.x", "stdin": "abc",
                                      "files": [{"name": "anything.py", "content": "print(input()[::-1])"}]},
                             prefix="/api/v2/piston")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["language"], body["version"], body["run"]["stdout"], body["run"]["code"]) == (
        "python", "3.11.0", "cba\n", 0)
    assert "compile" not in body


@pytest.mark.anyio
async def test_execute_c_with_limits_runtime_error_and_timeout(client: httpx.AsyncClient) -> None:
    exited = await execute(client, {"language": "gcc", "version": "12.2.0", "run_timeout": 3000,
                                    "run_memory_limit": 64 * 1024 * 1024,
                                    "files": [{"content": '#include <stdio.h>\nint main(void){puts("x");return 5;}'}]})
    run = exited.json()["run"]
    assert (run["stdout"], run["code"], run["status"]) == ("x\n", 5, "RE")
    assert exited.json()["compile"]["code"] == 0
    slow = await execute(client, {**PY, "run_timeout": 500, "files": [{"content": "while True: pass"}]})
    assert (slow.json()["run"]["status"], slow.json()["run"]["signal"]) == ("TO", "SIGKILL")


@pytest.mark.anyio
async def test_refusals_in_piston_s_shape(client: httpx.AsyncClient) -> None:
    unknown = await execute(client, {"language": "python", "version": "2.7.18", "files": [{"content": "1"}]})
    assert (unknown.status_code, unknown.json()) == (400, {"message": "python-2.7.18 runtime is unknown"})
    form = await client.post("/api/v2/execute", content=b"language=python", headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert (form.status_code, form.json()) == (415, {"message": "requests must be of type application/json"})
    empty = await execute(client, {**PY, "files": [{"content": "   "}]})
    assert empty.status_code == 400 and "'code' is empty" in empty.json()["message"]
    big = await execute(client, {**PY, "files": [{"content": "#" * (70 * 1024)}]})
    assert big.status_code == 413 and "message" in big.json()
    huge = await client.post("/api/v2/execute", content=b"[" * (2 * 1024 * 1024),
                             headers={"content-type": "application/json"})
    assert huge.status_code == 413


@pytest.mark.anyio
async def test_args_and_extra_files(client: httpx.AsyncClient) -> None:
    response = await execute(client, {**PY, "args": ["x y", "z"], "files": [
        {"content": "import sys, helper\nprint(helper.X, sys.argv[1:])"}, {"name": "helper.py", "content": "X = 7"}]})
    assert response.json()["run"]["stdout"] == "7 ['x y', 'z']\n"


@pytest.mark.anyio
async def test_a_segfault_has_piston_s_signal_name(client: httpx.AsyncClient) -> None:
    response = await execute(client, {"language": "c", "version": "*",
                                      "files": [{"content": "int main(void) { return *(volatile int *)0; }"}]})
    run = response.json()["run"]
    assert (run["signal"], run["status"], run["code"]) == ("SIGSEGV", "SG", None)


def test_a_language_without_a_piston_entry_is_offered_by_its_name_and_version() -> None:
    registry = Registry.from_mapping({"languages": {"ruby": {
        "displayName": "Ruby", "version": "Ruby 3.2 (yjit)", "image": "ruby:3.2", "sourceFile": "main.rb",
        "run": "exec ruby main.rb", "judge0Ids": [72]}}})
    assert p.runtimes(registry) == [{"language": "ruby", "version": "Ruby 3.2 (yjit)", "aliases": []}]
    language, _body = p.to_monaco({"language": "ruby", "version": "*", "files": [{"content": "puts 1"}]}, registry)
    assert language.name == "ruby"
    assert registry.by_judge0_id(72) is registry["ruby"]


def test_one_id_or_piston_name_on_two_languages_is_refused_at_load() -> None:
    from monaco.core.languages import LanguageError

    entry = {"displayName": "X", "version": "1", "image": "x", "sourceFile": "x", "run": "x"}
    with pytest.raises(LanguageError, match="the Judge0 id 5 is given to both 'a' and 'b'"):
        Registry.from_mapping({"languages": {"a": {**entry, "judge0Ids": [5]}, "b": {**entry, "judge0Ids": [5]}}})
    with pytest.raises(LanguageError, match="the Piston name or alias 'a' is given to both 'a' and 'b'"):
        Registry.from_mapping({"languages": {"a": entry, "b": {**entry, "piston": {"version": "1", "aliases": ["a"]}}}})
