"""The Judge0 CE 1.13 API: its translation as pure functions, then every route and error over HTTP against
the real app (local back end, real sandbox)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from monaco.api.compat import judge0 as j
from monaco.core import judge0 as jc
from monaco.core.languages import Registry
from monaco.core.settings import Settings
from tests.compat_support import b64, zip_of
from tests.conftest import serve
from tests.support import wait_until

REGISTRY = Registry.load()


def translate(base64_encoded: bool = False, **body: Any) -> dict[str, Any]:
    return j.to_monaco(body, REGISTRY, base64_encoded=base64_encoded, max_files_bytes=64 * 1024)


def refusal(**body: Any) -> dict[str, list[str]]:
    with pytest.raises(j.Judge0Invalid) as refused:
        translate(**body)
    return refused.value.errors


# ---- pure: request


def test_a_plain_submission_needs_nothing_new_of_monaco() -> None:
    assert translate(source_code="print(1)", language_id=71, stdin="x") == {
        "code": "print(1)", "input": "x", "language": "python"
    }


def test_every_field_that_has_a_monaco_key() -> None:
    body = translate(
        source_code="int main(){}", language_id=54, stdin=None, expected_output="42\n", cpu_time_limit=2,
        wall_time_limit="5", memory_limit=65536.5, command_line_arguments="a 'b c' \"d\"",
        compiler_options="-O0 -DX='1 2'", redirect_stderr_to_stdout=True, callback_url="http://example.com/x",
        additional_files=b64(zip_of({"a.h": b"#define A 1\n"})), number_of_runs=1, enable_network=False,
    )
    assert body == {
        "code": "int main(){}", "input": "", "language": "cpp", "expectedOutput": "42\n", "timeoutSeconds": 2.0,
        "memoryMb": 65, "args": ["a", "b c", "d"], "compilerOptions": ["-O0", "-DX=1 2"],
        "redirectStderrToStdout": True, "callbackUrl": "http://example.com/x",
        "files": [{"name": "a.h", "content": "#define A 1\n"}],
    }


def test_base64_fields_are_decoded_leniently_as_ruby_does() -> None:
    encoded = jc.encode64("print('é')\n" * 10)
    assert "\n" in encoded.rstrip("\n")  # Ruby's 60-character lines
    body = translate(True, source_code=encoded, language_id=71, stdin=b64("in")[:-1], expected_output=b64("out"))
    assert (body["code"], body["input"], body["expectedOutput"]) == ("print('é')\n" * 10, "in", "out")


def test_base64_that_is_no_utf8_text() -> None:
    assert refusal(base64_encoded=True, source_code=b64(b"\xff\xfe"), language_id=71) == {
        "source_code": ["is not UTF-8 text once decoded from Base64; Monaco runs text"]
    }


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"source_code": "x"}, {"language_id": ["can't be blank"]}),
        ({"language_id": 71}, {"source_code": ["can't be blank"]}),
        ({"source_code": "x", "language_id": 999}, {"language_id": ["language with id 999 doesn't exist"]}),
        ({"source_code": "x", "language_id": "abc"}, {"language_id": ["is not a number"]}),
        ({"source_code": "x", "language_id": 71.5}, {"language_id": ["is not a number"]}),
        ({"source_code": "x", "language_id": True}, {"language_id": ["is not a number"]}),
        ({"source_code": 5, "language_id": 71}, {"source_code": ["must be a string"]}),
        ({"source_code": "x", "language_id": 71, "stdin": ["a"]}, {"stdin": ["must be a string"]}),
        ({"source_code": "x", "language_id": 71, "cpu_time_limit": "fast"}, {"cpu_time_limit": ["is not a number"]}),
        ({"source_code": "x", "language_id": 71, "cpu_time_limit": 31},
         {"cpu_time_limit": ["must be less than or equal to 30"]}),
        ({"source_code": "x", "language_id": 71, "wall_time_limit": 0.5},
         {"wall_time_limit": ["must be greater than or equal to 1"]}),
        ({"source_code": "x", "language_id": 71, "memory_limit": 1000},
         {"memory_limit": ["must be greater than or equal to 16384"]}),
        ({"source_code": "x", "language_id": 71, "memory_limit": 10**12},
         {"memory_limit": ["must be less than or equal to 524288"]}),
        ({"source_code": "x", "language_id": 71, "enable_network": True},
         {"enable_network": ["enabling network is not allowed"]}),
        ({"source_code": "x", "language_id": 71, "enable_network": "yes"},
         {"enable_network": ["must be true or false"]}),
        ({"source_code": "x", "language_id": 71, "number_of_runs": 3},
         {"number_of_runs": ["Monaco runs a submission once; send 1 or leave it out"]}),
        ({"source_code": "x", "language_id": 71, "enable_per_process_and_thread_time_limit": True},
         {"enable_per_process_and_thread_time_limit": ["this option cannot be enabled"]}),
        ({"source_code": "x", "language_id": 71, "enable_per_process_and_thread_memory_limit": True},
         {"enable_per_process_and_thread_memory_limit": ["this option cannot be enabled"]}),
        ({"source_code": "x", "language_id": 71, "command_line_arguments": "a" * 513},
         {"command_line_arguments": ["is too long (maximum is 512 characters)"]}),
        ({"source_code": "x", "language_id": 71, "command_line_arguments": "'open"},
         {"command_line_arguments": ["cannot be split into words as a shell would: No closing quotation"]}),
        ({"source_code": "x", "language_id": 71, "command_line_arguments": ["a"]},
         {"command_line_arguments": ["must be a string"]}),
        ({"source_code": "x", "language_id": 71, "compiler_options": "-O2"},
         {"compiler_options": ["setting compiler options is only allowed for compiled languages"]}),
        ({"source_code": "x", "language_id": 71, "callback_url": 7}, {"callback_url": ["must be a string"]}),
        ({"source_code": "x", "language_id": 71, "additional_files": 7},
         {"additional_files": ["must be a Base64 string of a .zip archive"]}),
    ],
)
def test_judge0_s_422_for_each_bad_field(body: dict[str, Any], errors: dict[str, list[str]]) -> None:
    assert refusal(**body) == errors


@pytest.mark.parametrize("key", j.NOT_PER_SUBMISSION)
def test_limits_monaco_sets_per_language_are_refused_not_ignored(key: str) -> None:
    assert list(refusal(source_code="x", language_id=71, **{key: 1})) == [key]


def test_every_error_at_once_as_rails_collects_them() -> None:
    errors = refusal(source_code="", language_id=999, enable_network=True, stack_limit=1)
    assert set(errors) == {"source_code", "language_id", "enable_network", "stack_limit"}


def test_the_smaller_of_cpu_and_wall_time_is_monaco_s_one_limit() -> None:
    assert translate(source_code="x", language_id=71, cpu_time_limit=3, wall_time_limit=2)["timeoutSeconds"] == 2
    assert translate(source_code="x", language_id=71, wall_time_limit=4)["timeoutSeconds"] == 4


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"../evil.py": b"x"}, "is a path"),
        ({"/etc/passwd": b"x"}, "is a path"),
        ({"bomb.txt": b"0" * (20 * 1024 * 1024)}, "expands past the limit"),
        ({"zeros.txt": b"\0" * 30_000}, "expands"),
    ],
)
def test_hostile_additional_files(files: dict[str, bytes], why: str) -> None:
    errors = refusal(source_code="x", language_id=71, additional_files=b64(zip_of(files)))
    assert list(errors) == ["additional_files"] and why in errors["additional_files"][0]


# ---- pure: answer


def result(**fields: Any) -> dict[str, Any]:
    base = {"id": "t", "status": "completed", "verdict": "ok", "output": "", "stderr": "", "compileOutput": "",
            "message": "", "exitCode": 0, "executionTimeMs": 12.3456, "memoryKb": 2048, "language": "python",
            "queuedAt": "2024-01-01T00:00:00.000Z", "completedAt": "2024-01-01T00:00:01.000Z"}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"verdict": None, "status": "queued"}, 1),
        ({"verdict": None, "status": "pending"}, 1),
        ({"verdict": None, "status": "running"}, 2),
        ({}, 3),
        ({"verdict": "wrong_answer"}, 4),
        ({"verdict": "timeout"}, 5),
        ({"verdict": "compile_error"}, 6),
        ({"verdict": "runtime_error", "signal": 11}, 7),
        ({"verdict": "runtime_error", "signal": 25}, 8),
        ({"verdict": "runtime_error", "signal": 8}, 9),
        ({"verdict": "runtime_error", "signal": 6}, 10),
        ({"verdict": "runtime_error", "exitCode": 1}, 11),
        ({"verdict": "runtime_error", "signal": 9}, 12),
        ({"verdict": "runtime_error", "exitCode": None}, 12),
        ({"verdict": "memory_limit"}, 12),
        ({"verdict": "output_limit"}, 8),
        ({"verdict": "cancelled"}, 13),
        ({"verdict": "system_error"}, 13),
    ],
)
def test_status_ids(fields: dict[str, Any], status: int) -> None:
    assert jc.status_id(result(**fields)) == status


def test_the_answer_in_judge0_s_units_and_names() -> None:
    answer = jc.from_monaco(result(output="hi\n", message="m"), fields=jc.FIELDS, base64_encoded=False,
                           language=REGISTRY["python"])
    assert answer == {
        "token": "t", "language_id": 71, "language": {"id": 71, "name": "Python (3.11)"}, "status_id": 3,
        "status": {"id": 3, "description": "Accepted"}, "stdout": "hi\n", "stderr": None, "compile_output": None,
        "message": "m", "exit_code": 0, "exit_signal": None, "time": "0.012", "wall_time": "0.012", "memory": 2048,
        "created_at": "2024-01-01T00:00:00.000Z", "finished_at": "2024-01-01T00:00:01.000Z",
    }


def test_the_answer_in_base64_with_ruby_s_lines() -> None:
    answer = jc.from_monaco(result(output="x" * 100, stderr="e"), fields=("stdout", "stderr"), base64_encoded=True,
                           language=None)
    assert answer["stdout"].count("\n") == 3 and answer["stderr"] == "ZQ==\n"


def test_fields() -> None:
    assert j.requested_fields(None) == jc.DEFAULT_FIELDS
    assert j.requested_fields("*") == jc.FIELDS
    assert j.requested_fields("stdout,token,stdout") == ("stdout", "token")
    with pytest.raises(Exception, match=r"invalid fields: \[nope, x\]"):
        j.requested_fields("stdout,nope,x")


# ---- over HTTP


async def submit(client: httpx.AsyncClient, body: dict[str, Any], **params: str) -> httpx.Response:
    return await client.post("/judge0/submissions", json=body, params=params)


async def finished(client: httpx.AsyncClient, token: str) -> None:
    async def done() -> bool:
        answer = (await client.get(f"/judge0/submissions/{token}", params={"fields": "status_id"})).json()
        return bool(answer["status_id"] > 2)

    await wait_until(done, 60, f"submission {token} to finish")


async def run(client: httpx.AsyncClient, body: dict[str, Any], fields: str = "*") -> dict[str, Any]:
    response = await submit(client, body, wait="true", fields=fields)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.anyio
async def test_information_routes(client: httpx.AsyncClient) -> None:
    about = (await client.get("/judge0/about")).json()
    assert about["version"] == "1.13.1"
    statuses = (await client.get("/judge0/statuses")).json()
    assert statuses[0] == {"id": 1, "description": "In Queue"} and len(statuses) == 14
    languages = (await client.get("/judge0/languages")).json()
    assert {"id": 71, "name": "Python (3.11)"} in languages and [x["id"] for x in languages] == sorted(
        x["id"] for x in languages)
    detail = (await client.get("/judge0/languages/50")).json()
    assert detail["source_file"] == "main.c" and detail["compile_cmd"].startswith("exec gcc")
    missing = await client.get("/judge0/languages/4242")
    assert (missing.status_code, missing.json()) == (404, {"error": "record not found"})
    config = (await client.get("/judge0/config_info")).json()
    assert config["max_submission_batch_size"] == 20 and config["allow_enable_network"] is False
    assert config["callbacks_max_tries"] == 5 and config["callbacks_timeout"] == 5.0  # MONACO_CALLBACK_*
    assert (await client.get("/judge0/version")).text == "1.13.1"


@pytest.mark.anyio
async def test_create_then_get_with_default_fields(client: httpx.AsyncClient) -> None:
    created = await submit(client, {"source_code": "print(input() * 2)", "language_id": 71, "stdin": "ab"})
    assert created.status_code == 201 and list(created.json()) == ["token"]
    token = created.json()["token"]
    await finished(client, token)
    got = (await client.get(f"/judge0/submissions/{token}")).json()
    assert list(got) == list(jc.DEFAULT_FIELDS)
    assert got["stdout"] == "abab\n" and got["status"] == {"id": 3, "description": "Accepted"}
    encoded = (await client.get(f"/judge0/submissions/{token}", params={"base64_encoded": "true",
                                                                         "fields": "stdout,token"})).json()
    assert encoded == {"stdout": "YWJhYgo=\n", "token": token}


@pytest.mark.anyio
async def test_wait_with_base64_in_and_out(client: httpx.AsyncClient) -> None:
    response = await submit(client, {"source_code": b64("print('é' + input())"), "language_id": "71",
                                     "stdin": b64("x")}, wait="true", base64_encoded="true")
    assert response.status_code == 201
    assert response.json()["stdout"] == b64("éx\n") + "\n"


@pytest.mark.anyio
async def test_statuses_of_real_runs(client: httpx.AsyncClient) -> None:
    nzec = await run(client, {"source_code": "import sys; sys.stderr.write('bad'); sys.exit(4)", "language_id": 71})
    assert (nzec["status_id"], nzec["exit_code"], nzec["stderr"]) == (11, 4, "bad")
    tle = await run(client, {"source_code": "while True: pass", "language_id": 71, "cpu_time_limit": 0.5})
    assert tle["status"]["description"] == "Time Limit Exceeded"
    ce = await run(client, {"source_code": "int main(void) { return y; }", "language_id": 50})
    assert ce["status_id"] == 6 and "undeclared" in ce["compile_output"] and ce["stdout"] is None


@pytest.mark.anyio
async def test_422_over_http_and_400_for_bad_fields_or_json(client: httpx.AsyncClient) -> None:
    bad = await submit(client, {"source_code": "x", "language_id": 999})
    assert (bad.status_code, bad.json()) == (422, {"language_id": ["language with id 999 doesn't exist"]})
    fields = await submit(client, {"source_code": "x", "language_id": 71}, fields="stdout,bogus")
    assert (fields.status_code, fields.json()) == (400, {"error": "invalid fields: [bogus]"})
    not_json = await client.post("/judge0/submissions", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    array = await client.post("/judge0/submissions", json=[1])
    assert array.status_code == 400
    limit = await submit(client, {"source_code": "x" * (70 * 1024), "language_id": 71})
    assert limit.status_code == 413 and "'code'" in limit.json()["error"]


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_413_before_it_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/judge0/submissions", content=b"x" * (4 * 1024 * 1024),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.anyio
async def test_unknown_token_and_delete(client: httpx.AsyncClient) -> None:
    missing = await client.get("/judge0/submissions/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "record not found"})
    assert (await client.delete("/judge0/submissions/nope")).status_code == 404
    done = await run(client, {"source_code": "print(1)", "language_id": 71})
    finished = await client.delete(f"/judge0/submissions/{done['token']}")
    assert finished.status_code == 400 and "delete not allowed" in finished.json()["error"]
    slow = (await submit(client, {"source_code": "import time; time.sleep(30)", "language_id": 71})).json()
    cancelled = await client.delete(f"/judge0/submissions/{slow['token']}", params={"fields": "status,message"})
    assert cancelled.status_code == 200 and cancelled.json()["status"]["id"] == 13


@pytest.mark.anyio
async def test_batches(client: httpx.AsyncClient) -> None:
    created = await client.post("/judge0/submissions/batch", json={"submissions": [
        {"source_code": "print(1)", "language_id": 71},
        {"source_code": "print(2)", "language_id": 999},
        "not an object",
    ]})
    assert created.status_code == 201
    first, second, third = created.json()
    assert list(first) == ["token"] and second == {"language_id": ["language with id 999 doesn't exist"]}
    assert third == {"base": ["a submission must be a JSON object"]}
    await finished(client, first["token"])
    got = await client.get("/judge0/submissions/batch", params={"tokens": f"{first['token']},unknown",
                                                                 "fields": "stdout"})
    assert got.json() == {"submissions": [{"stdout": "1\n"}, None]}
    none_valid = await client.post("/judge0/submissions/batch", json={"submissions": [{"source_code": "x"}]})
    assert none_valid.status_code == 422
    bodies: list[dict[str, Any]] = [{"submissions": []}, {}, {"submissions": [{}] * 21}]
    for body in bodies:
        refused = await client.post("/judge0/submissions/batch", json=body)
        assert refused.status_code == 400 and "batch" in refused.json()["error"]
    too_many = await client.get("/judge0/submissions/batch", params={"tokens": ",".join(["a"] * 21)})
    assert too_many.status_code == 400


@pytest.mark.anyio
async def test_the_host_check_covers_the_compat_apis(client: httpx.AsyncClient) -> None:
    evil = await client.get("/judge0/about", headers={"host": "evil.example"})
    assert evil.status_code == 400
    evil = await client.get("/api/v2/runtimes", headers={"host": "evil.example"})
    assert evil.status_code == 400


@pytest.mark.anyio
async def test_submissions_count_in_monaco_s_metrics(client: httpx.AsyncClient) -> None:
    await run(client, {"source_code": "print(1)", "language_id": 71})
    await submit(client, {"source_code": "x", "language_id": 999})
    metrics = (await client.get("/metrics")).text
    assert 'monaco_submissions_received_total{language="python"} 1.0' in metrics
    assert 'reason="bad_request"} 1.0' in metrics


@pytest.mark.anyio
async def test_settings_turn_each_api_off(settings: Settings) -> None:
    from monaco.api.app import create_app

    settings.judge0_api = settings.piston_api = False
    async with serve(create_app(settings)) as client:
        assert (await client.get("/judge0/about")).status_code == 404
        assert (await client.get("/api/v2/runtimes")).status_code == 404


@pytest.mark.anyio
async def test_expected_output_accepted_and_wrong_answer(client: httpx.AsyncClient) -> None:
    ok = await run(client, {"source_code": "print(2)", "language_id": 71, "expected_output": "2  \n\n"})
    wa = await run(client, {"source_code": "print(3)", "language_id": 71, "expected_output": "2"})
    assert (ok["status_id"], wa["status_id"]) == (3, 4)


@pytest.mark.anyio
async def test_arguments_compiler_options_and_redirect(client: httpx.AsyncClient) -> None:
    source = '#include <stdio.h>\nint main(int c, char **v) { fprintf(stderr, "e"); printf("%s %d", v[1], X); }\n'
    done = await run(client, {"source_code": source, "language_id": 50, "command_line_arguments": "'a b'",
                              "compiler_options": "-DX=7", "redirect_stderr_to_stdout": True})
    assert done["status_id"] == 3 and sorted(done["stdout"]) == sorted("ea b 7") and done["stderr"] is None


@pytest.mark.anyio
async def test_additional_files_beside_the_program(client: httpx.AsyncClient) -> None:
    files = b64(zip_of({"helper.py": b"def twice(x):\n    return 2 * x\n"}))
    done = await run(client, {"source_code": "from helper import twice\nprint(twice(21))", "language_id": 71,
                              "additional_files": files})
    assert (done["status_id"], done["stdout"]) == (3, "42\n")


@pytest.mark.anyio
async def test_a_segfault_is_sigsegv(client: httpx.AsyncClient) -> None:
    done = await run(client, {"source_code": "int main(void) { return *(volatile int *)0; }", "language_id": 50})
    assert (done["status_id"], done["exit_signal"]) == (7, 11)
