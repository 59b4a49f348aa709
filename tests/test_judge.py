"""The judge's fields (issue 11) through the real local back end: expected output, signals, merged
stderr, arguments, extra files, compiler options and test cases, in every language they apply to."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import run_program, summary

pytestmark = [pytest.mark.anyio, pytest.mark.languages]

ARGS = ["plain", "two words", "$(id)", "`id`; rm -rf /", "-o", "*", "ünï €", "", "'\"\\"]

PRINT_ARGS = {
    "python": "import sys\nfor a in sys.argv[1:]:\n    print(f'[{a}]')\n",
    "java": "public class Main {\n  public static void main(String[] args) {\n"
    "    for (String a : args) System.out.println(\"[\" + a + \"]\");\n  }\n}\n",
    "c": '#include <stdio.h>\nint main(int argc, char **argv) {\n'
    '  for (int i = 1; i < argc; i++) printf("[%s]\\n", argv[i]);\n  return 0;\n}\n',
    "cpp": '#include <iostream>\nint main(int argc, char **argv) {\n'
    '  for (int i = 1; i < argc; i++) std::cout << "[" << argv[i] << "]\\n";\n  return 0;\n}\n',
}

# The main source uses a function from an extra file.
WITH_FILES: dict[str, tuple[str, list[dict[str, str]]]] = {
    "python": ("import helper\nprint(helper.twice(21))\n",
               [{"name": "helper.py", "content": "def twice(x):\n    return 2 * x\n"}]),
    "java": ("public class Main {\n  public static void main(String[] args) {\n"
             "    System.out.println(Helper.twice(21));\n  }\n}\n",
             [{"name": "Helper.java", "content": "public class Helper {\n"
               "  public static int twice(int x) { return 2 * x; }\n}\n"}]),
    "c": ('#include <stdio.h>\n#include "helper.h"\nint main(void) { printf("%d\\n", twice(21)); return 0; }\n',
          [{"name": "helper.h", "content": "int twice(int x);\n"},
           {"name": "helper.c", "content": '#include "helper.h"\nint twice(int x) { return 2 * x; }\n'}]),
    "cpp": ('#include <iostream>\n#include "helper.hpp"\nint main() { std::cout << twice(21) << "\\n"; }\n',
            [{"name": "helper.hpp", "content": "int twice(int x);\n"},
             {"name": "helper.cpp", "content": '#include "helper.hpp"\nint twice(int x) { return 2 * x; }\n'}]),
}

# Reads one number, prints its square.
SQUARE = {
    "python": "print(int(input()) ** 2)\n",
    "java": "import java.util.Scanner;\npublic class Main {\n  public static void main(String[] args) {\n"
    "    long n = new Scanner(System.in).nextLong();\n    System.out.println(n * n);\n  }\n}\n",
    "c": '#include <stdio.h>\nint main(void) { long n; if (scanf("%ld", &n) != 1) return 2; '
    'printf("%ld\\n", n * n); return 0; }\n',
    "cpp": "#include <iostream>\nint main() { long n; if (!(std::cin >> n)) return 2; std::cout << n * n << '\\n'; }\n",
}
LANGUAGES = ["python", "java", "c", "cpp"]


async def run(client: httpx.AsyncClient, language: str, code: str, **fields: Any) -> dict[str, Any]:
    return await run_program(client, language, code, fields.pop("input", ""), **fields)


async def refused(client: httpx.AsyncClient, status: int, **body: Any) -> str:
    response = await client.post("/submit", json={"language": "python", "code": "print(1)\n", **body})
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


# ---- expectedOutput and wrong_answer
@pytest.mark.parametrize("language", LANGUAGES)
async def test_expected_output_passes_and_fails(client: httpx.AsyncClient, language: str) -> None:
    ok = await run(client, language, SQUARE[language], input="12\n", expectedOutput="144")
    assert ok["verdict"] == "ok" and ok["status"] == "completed", summary(ok)
    wrong = await run(client, language, SQUARE[language], input="12\n", expectedOutput="145\n")
    assert wrong["verdict"] == "wrong_answer" and wrong["status"] == "failed", summary(wrong)
    assert wrong["output"] == "144\n" and "line 1" in wrong["message"]


async def test_wrong_answer_only_for_runs_that_exit_zero(client: httpx.AsyncClient) -> None:
    crashed = await run(client, "python", "print(1)\nraise SystemExit(3)\n", expectedOutput="2")
    assert crashed["verdict"] == "runtime_error" and crashed["exitCode"] == 3, summary(crashed)


async def test_expected_output_must_be_a_string(client: httpx.AsyncClient) -> None:
    assert "expectedOutput" in await refused(client, 400, expectedOutput=144)


# ---- signal
@pytest.mark.parametrize("language", ["c", "cpp"])
async def test_signal_of_a_crash_is_reported(client: httpx.AsyncClient, language: str) -> None:
    code = "int main(void) { volatile int *p = 0; return *p; }\n"
    result = await run(client, language, code)
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["signal"] == 11 and result["signalName"] == "SIGSEGV", summary(result)


async def test_no_signal_for_a_normal_exit(client: httpx.AsyncClient) -> None:
    result = await run(client, "python", "print(1)\n")
    assert result["signal"] is None and result["signalName"] is None, summary(result)


# ---- redirectStderrToStdout
async def test_stderr_merged_into_stdout_in_order(client: httpx.AsyncClient) -> None:
    code = ("import sys\nfor i in range(3):\n    print(f'out {i}', flush=True)\n"
            "    print(f'err {i}', file=sys.stderr, flush=True)\n")
    merged = await run(client, "python", code, redirectStderrToStdout=True)
    assert merged["output"] == "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n", summary(merged)
    assert merged["stderr"] == ""
    apart = await run(client, "python", code, redirectStderrToStdout=False)
    assert apart["output"] == "out 0\nout 1\nout 2\n" and apart["stderr"] == "err 0\nerr 1\nerr 2\n"


async def test_merged_output_still_counts_toward_the_limit(client: httpx.AsyncClient) -> None:
    code = "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n"
    result = await run(client, "python", code, redirectStderrToStdout=True)
    assert result["verdict"] == "output_limit" and result["truncated"], summary(result)


async def test_redirect_must_be_a_boolean(client: httpx.AsyncClient) -> None:
    assert "redirectStderrToStdout" in await refused(client, 400, redirectStderrToStdout="yes")


# ---- args
@pytest.mark.parametrize("language", LANGUAGES)
async def test_args_reach_the_program_verbatim(client: httpx.AsyncClient, language: str) -> None:
    result = await run(client, language, PRINT_ARGS[language], args=ARGS)
    assert result["verdict"] == "ok", summary(result)
    assert result["output"] == "".join(f"[{a}]\n" for a in ARGS), summary(result)


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        ([f"a{i}" for i in range(65)], 413, "limit is 64"),
        (["x" * 4097], 413, "4096"),
        (["a\x00b"], 400, "NUL"),
        ("not a list", 400, "args"),
        ([1, 2], 400, "args"),
    ],
)
async def test_bad_args_are_refused(client: httpx.AsyncClient, args: Any, status: int, words: str) -> None:
    assert words in await refused(client, status, args=args)


# ---- files
@pytest.mark.parametrize("language", LANGUAGES)
async def test_extra_files_are_beside_the_source(client: httpx.AsyncClient, language: str) -> None:
    code, files = WITH_FILES[language]
    result = await run(client, language, code, files=files)
    assert result["verdict"] == "ok" and result["output"] == "42\n", summary(result)


HOSTILE_NAMES = ["../x", "/etc/passwd", "a/b", "a\x00b", "x" * 65, ".", "..", ".hidden", "-o", "", "a b",
                 "stdin", "stdin-0", "monaco-init", "main.py", "ä.py", "a\\b"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_file_names_are_refused(client: httpx.AsyncClient, name: str) -> None:
    message = await refused(client, 400, files=[{"name": name, "content": "x"}])
    assert "files" in message, message


async def test_duplicate_and_too_many_and_too_large_files(client: httpx.AsyncClient, settings: Any) -> None:
    twice = [{"name": "a.py", "content": "1"}, {"name": "a.py", "content": "2"}]
    assert "twice" in await refused(client, 400, files=twice)
    many = [{"name": f"f{i}.py", "content": ""} for i in range(17)]
    assert "limit is 16" in await refused(client, 413, files=many)
    half = settings.max_code_bytes // 2 + 1
    big = [{"name": "a.py", "content": "x" * half}, {"name": "b.py", "content": "x" * half}]
    assert "'code' and 'files'" in await refused(client, 413, files=big)
    assert "files" in await refused(client, 400, files=[{"name": "a.py"}])
    assert "files" in await refused(client, 400, files=[{"name": "a.py", "content": "", "mode": "0777"}])


async def test_a_file_cannot_escape_through_a_symlink_name(client: httpx.AsyncClient) -> None:
    """A program sees its files in its working dir and nothing of the host through them."""
    code = "import os\nprint(sorted(f for f in os.listdir('.') if not f.startswith('.')))\n"
    result = await run(client, "python", code, files=[{"name": "data.txt", "content": "hello"}])
    assert result["output"] == "['data.txt', 'main.py']\n", summary(result)


# ---- compilerOptions
OPTION_PROGRAM = {
    "c": '#include <stdio.h>\nint main(void) { printf("%d\\n", VALUE); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << VALUE << "\\n"; }\n',
}


@pytest.mark.parametrize("language", ["c", "cpp"])
async def test_compiler_options_are_used(client: httpx.AsyncClient, language: str) -> None:
    result = await run(client, language, OPTION_PROGRAM[language], compilerOptions=["-O0", "-DVALUE=7", "-Wall"])
    assert result["verdict"] == "ok" and result["output"] == "7\n", summary(result)
    werror = await run(client, language, "int main(void) { int unused; return 0; }\n",
                       compilerOptions=["-Wall", "-Werror"])
    assert werror["verdict"] == "compile_error" and "unused" in werror["compileOutput"], summary(werror)


async def test_java_compiler_options_are_used(client: httpx.AsyncClient) -> None:
    code = ("import java.util.*;\npublic class Main {\n  public static void main(String[] args) {\n"
            "    List raw = new ArrayList(); raw.add(1); System.out.println(raw);\n  }\n}\n")
    ok = await run(client, "java", code, compilerOptions=["-encoding", "UTF-8", "--release", "17"])
    assert ok["verdict"] == "ok" and ok["output"] == "[1]\n", summary(ok)
    strict = await run(client, "java", code, compilerOptions=["-Xlint:all", "-Werror"])
    assert strict["verdict"] == "compile_error" and "unchecked" in strict["compileOutput"], summary(strict)


HOSTILE_OPTIONS = {
    "c": [["-I/etc"], ["@/etc/passwd"], ["-fplugin=/tmp/x.so"], ["-wrapper", "/bin/sh"], ["-specs=/tmp/x"],
          ["-B/tmp"], ["--sysroot=/"], ["-o", "/tmp/x"], ["-Wl,-rpath,/tmp"], ["-Xlinker", "-T"], ["-include",
          "/etc/passwd"], ["-fdump-tree-all"], ["-save-temps"], ["-march=native"], ["-L/tmp"], ["-Wp,-MD,/tmp/x"],
          ["-iquote/etc"], ["-x", "c"]],
    "cpp": [["-I/etc"], ["@/etc/passwd"], ["-fplugin=x"], ["-isystem", "/etc"], ["-imacros", "/etc/passwd"]],
    "java": [["-processorpath", "/tmp"], ["-J-Xmx1g"], ["-cp", "/etc"], ["-classpath", "/"], ["-d", "/tmp"],
             ["-Xplugin:x"], ["@/etc/passwd"], ["-sourcepath", "/"], ["--module-path", "/"], ["-encoding"],
             ["-encoding", "/etc/passwd"], ["-h", "/tmp"], ["-s", "/tmp"]],
}


@pytest.mark.parametrize(("language", "options"), [(lang, o) for lang, opts in HOSTILE_OPTIONS.items() for o in opts])
async def test_dangerous_compiler_options_are_refused(client: httpx.AsyncClient, language: str,
                                                      options: list[str]) -> None:
    response = await client.post("/submit", json={"language": language, "code": "x", "compilerOptions": options})
    assert response.status_code == 400, response.text
    assert "compilerOptions" in response.json()["error"] and options[0][:20] in response.json()["error"]


async def test_compiler_options_only_for_compiled_languages(client: httpx.AsyncClient) -> None:
    assert "not compiled" in await refused(client, 400, compilerOptions=["-O2"])


# ---- testCases
@pytest.mark.parametrize("language", LANGUAGES)
async def test_cases_run_each_and_report_the_first_failure(client: httpx.AsyncClient, language: str) -> None:
    cases = [{"input": "2\n", "expectedOutput": "4"}, {"input": "3\n", "expectedOutput": "9\n"},
             {"input": "4\n", "expectedOutput": "17"}, {"input": "x\n", "expectedOutput": "0"}]
    result = await run(client, language, SQUARE[language], testCases=cases)
    assert result["verdict"] == "wrong_answer", summary(result)
    got = [(c["verdict"], c["output"]) for c in result["testCases"]]
    assert got[:3] == [("ok", "4\n"), ("ok", "9\n"), ("wrong_answer", "16\n")], got
    assert got[3][0] == "runtime_error", got
    assert result["output"] == "16\n" and "test case 3" in result["message"], summary(result)
    assert result["executionTimeMs"] == max(c["executionTimeMs"] for c in result["testCases"])


async def test_cases_all_pass(client: httpx.AsyncClient) -> None:
    cases = [{"input": f"{n}\n", "expectedOutput": f"{n * n}\n"} for n in range(10)]
    result = await run(client, "c", SQUARE["c"], testCases=cases)
    assert result["verdict"] == "ok" and len(result["testCases"]) == 10, summary(result)
    assert result["output"] == "81\n" and result["compileTimeMs"] is not None


async def test_each_case_has_its_own_limits_and_scratch(client: httpx.AsyncClient) -> None:
    code = ("import os, sys, time\nn = int(input())\nprint(os.path.exists('/tmp/mark'), flush=True)\n"
            "open('/tmp/mark', 'w').close()\nif n == 2:\n    time.sleep(60)\n")
    cases = [{"input": "1\n"}, {"input": "2\n"}, {"input": "3\n"}]
    result = await run(client, "python", code, testCases=cases, timeoutSeconds=1)
    verdicts = [c["verdict"] for c in result["testCases"]]
    assert verdicts == ["ok", "timeout", "ok"], summary(result)
    assert [c["output"] for c in result["testCases"]] == ["False\n", "False\n", "False\n"]
    assert result["verdict"] == "timeout"


async def test_cases_without_expected_output_only_run(client: httpx.AsyncClient) -> None:
    result = await run(client, "python", "print(input()[::-1])\n", testCases=[{"input": "abc"}, {"input": "xy"}])
    assert result["verdict"] == "ok" and [c["output"] for c in result["testCases"]] == ["cba\n", "yx\n"]


async def test_compile_error_ends_before_the_cases(client: httpx.AsyncClient) -> None:
    result = await run(client, "c", "int main(void) { return undeclared; }\n", testCases=[{"input": ""}])
    assert result["verdict"] == "compile_error" and result["testCases"] is None, summary(result)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"testCases": [{"input": ""}] * 33}, 413, "limit is 32"),
        ({"testCases": []}, 400, "empty"),
        ({"testCases": [{"input": "1"}], "input": "2"}, 400, "replaces"),
        ({"testCases": [{"input": "1"}], "expectedOutput": "2"}, 400, "replaces"),
        ({"testCases": [{"input": 1}]}, 400, "testCases"),
        ({"testCases": [{"stdin": "1"}]}, 400, "testCases"),
        ({"testCases": "1"}, 400, "testCases"),
    ],
)
async def test_bad_test_cases_are_refused(client: httpx.AsyncClient, body: dict[str, Any], status: int,
                                          words: str) -> None:
    assert words in await refused(client, status, **body)


async def test_inputs_and_expected_outputs_share_the_input_limit(client: httpx.AsyncClient, settings: Any) -> None:
    half = settings.max_input_bytes // 2 + 1
    cases = [{"input": "x" * half}, {"input": "", "expectedOutput": "y" * half}]
    assert "together" in await refused(client, 413, testCases=cases)
