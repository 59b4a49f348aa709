"""Real programs in every language, through the real path: HTTP → store → worker → sandbox → runner → envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monaco.core.languages import LanguageError, Registry
from monaco.core.settings import Settings
from tests.conftest import run_program, summary

pytestmark = [pytest.mark.anyio, pytest.mark.languages]

LANGUAGES = ["python", "java", "c", "cpp"]

HELLO = {
    "python": 'print("Hello, World!")\n',
    "java": "public class Main {\n  public static void main(String[] args) {\n"
    '    System.out.println("Hello, World!");\n  }\n}\n',
    "c": '#include <stdio.h>\nint main(void) { printf("Hello, World!\\n"); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "Hello, World!" << std::endl; return 0; }\n',
}

ECHO = {
    "python": "import sys\nsys.stdout.write(sys.stdin.read())\n",
    "java": "import java.io.*;\npublic class Main {\n  public static void main(String[] args) throws IOException {\n"
    "    byte[] all = System.in.readAllBytes();\n    System.out.write(all);\n    System.out.flush();\n  }\n}\n",
    "c": "#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c); return 0; }\n",
    "cpp": "#include <iostream>\n#include <string>\nint main() {\n  std::string line;\n"
    "  while (std::getline(std::cin, line)) std::cout << line << '\\n';\n  return 0;\n}\n",
}
ECHO_INPUT = "first line\n  second, indented  \n\nthird after a blank line: üñí €\n12 34 56\n"

# Each uses a name that is never declared: the compiler's message names it.
COMPILE_ERROR = {
    "java": "public class Main {\n  public static void main(String[] args) {\n"
    "    System.out.println(undeclaredThing);\n  }\n}\n",
    "c": '#include <stdio.h>\nint main(void) { printf("%d\\n", undeclared_thing); return 0; }\n',
    "cpp": "#include <iostream>\nint main() { std::cout << undeclared_thing << std::endl; return 0; }\n",
}
UNDECLARED = {"java": "undeclaredThing", "c": "undeclared_thing", "cpp": "undeclared_thing"}

EXIT_3 = {
    "python": 'import sys\nprint("before", flush=True)\nprint("going down", file=sys.stderr)\nsys.exit(3)\n',
    "java": 'public class Main {\n  public static void main(String[] args) {\n    System.out.println("before");\n'
    '    System.err.println("going down");\n    System.exit(3);\n  }\n}\n',
    "c": '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { printf("before\\n"); fflush(stdout);\n'
    '  fprintf(stderr, "going down\\n"); exit(3); }\n',
    "cpp": '#include <iostream>\n#include <cstdlib>\nint main() { std::cout << "before" << std::endl;\n'
    '  std::cerr << "going down" << std::endl; std::exit(3); }\n',
}

# An uncaught exception (abort for C): non-zero exit and the reason in stderr.
CRASH = {
    "python": 'def f():\n    raise ValueError("bad value 42")\nf()\n',
    "java": "public class Main {\n  public static void main(String[] args) {\n"
    '    throw new IllegalStateException("bad state 42");\n  }\n}\n',
    "c": '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { fprintf(stderr, "bad pointer 42\\n");\n'
    "  fflush(stderr); abort(); }\n",
    "cpp": '#include <stdexcept>\nint main() { throw std::runtime_error("bad runtime 42"); }\n',
}
CRASH_SIGN = {
    "python": "ValueError: bad value 42",
    "java": "java.lang.IllegalStateException: bad state 42",
    "c": "bad pointer 42",
    "cpp": "bad runtime 42",
}

LOOP = {
    "python": "while True:\n    pass\n",
    "java": "public class Main {\n  public static void main(String[] args) {\n    long i = 0;\n"
    "    while (true) { i++; }\n  }\n}\n",
    "c": "int main(void) { volatile unsigned long i = 0; for (;;) i++; }\n",
    "cpp": "int main() { volatile unsigned long i = 0; for (;;) i++; }\n",
}

# About 1 GB, every page touched, far over every language's default limit.
MEMORY_HOG = {
    "python": "chunks = []\nfor _ in range(64):\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    "    chunks[-1][::4096] = b'x' * (16 * 1024 * 1024 // 4096)\nprint(len(chunks))\n",
    "java": "import java.util.*;\npublic class Main {\n  public static void main(String[] args) {\n"
    "    List<byte[]> chunks = new ArrayList<>();\n    for (int i = 0; i < 64; i++) {\n"
    "      byte[] b = new byte[16 * 1024 * 1024];\n      for (int j = 0; j < b.length; j += 4096) b[j] = 1;\n"
    "      chunks.add(b);\n    }\n    System.out.println(chunks.size());\n  }\n}\n",
    # volatile: at -O2 gcc may drop a malloc + memset whose result it can compute
    "c": "#include <stdio.h>\n#include <stdlib.h>\nint main(void) {\n"
    "  size_t n = (size_t)1 << 30; volatile char *p = malloc(n);\n"
    '  if (!p) { fprintf(stderr, "malloc failed\\n"); return 1; }\n'
    "  for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;\n"
    '  printf("%d\\n", p[n - 4096]); return 0; }\n',
    "cpp": "#include <iostream>\n#include <vector>\nint main() {\n"
    "  std::vector<char> v((size_t)1 << 30, 1);\n  std::cout << (int)v.back() << std::endl; return 0; }\n",
}


def assert_ran_ok(result: dict[str, Any]) -> None:
    assert result["verdict"] == "ok", summary(result)
    assert result["status"] == "completed", summary(result)
    assert result["exitCode"] == 0, summary(result)
    assert result["truncated"] is False, summary(result)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_hello_world(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, HELLO[language])
    assert_ran_ok(result)
    assert result["output"] == "Hello, World!\n"
    assert result["stderr"] == ""
    assert result["language"] == language
    assert isinstance(result["executionTime"], int) and isinstance(result["executionTimeMs"], float)
    assert result["executionTimeMs"] > 0
    assert isinstance(result["memoryKb"], int) and result["memoryKb"] > 0
    assert result["totalTime"] >= result["executionTime"]
    assert result["queuedAt"] and result["startedAt"] and result["completedAt"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_stdin_echo(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, ECHO[language], input=ECHO_INPUT)
    assert_ran_ok(result)
    assert result["output"] == ECHO_INPUT


@pytest.mark.parametrize("language", ["java", "c", "cpp"])
async def test_compile_error(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, COMPILE_ERROR[language])
    assert result["verdict"] == "compile_error", summary(result)
    assert result["status"] == "failed"
    assert UNDECLARED[language] in result["compileOutput"], result["compileOutput"]
    assert "error" in result["compileOutput"]
    assert not result["output"]


async def test_python_syntax_error_is_a_runtime_error(client: httpx.AsyncClient) -> None:
    result = await run_program(client, "python", "print('unclosed'\nx = = 1\n")
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["status"] == "failed"
    assert result["exitCode"] != 0
    assert "SyntaxError" in result["stderr"], result["stderr"]
    assert 'File "main.py"' in result["stderr"] or "main.py" in result["stderr"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_exit_code_and_stderr(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, EXIT_3[language])
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["status"] == "failed"
    assert result["exitCode"] == 3
    assert result["output"] == "before\n"
    assert "going down" in result["stderr"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_uncaught_exception(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, CRASH[language])
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["status"] == "failed"
    assert result["exitCode"] not in (0, None)
    assert CRASH_SIGN[language] in result["stderr"], result["stderr"]


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
async def test_timeout(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, LOOP[language], timeoutSeconds=1)
    assert result["verdict"] == "timeout", summary(result)
    assert result["status"] == "failed"
    assert 1000 <= result["executionTime"] < 5000, result["executionTime"]


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
async def test_memory_limit(client: httpx.AsyncClient, language: str) -> None:
    result = await run_program(client, language, MEMORY_HOG[language])
    assert result["verdict"] == "memory_limit", summary(result)
    assert result["status"] == "failed"
    assert result["output"] in ("", None), result["output"]


async def test_java_public_class_solution(client: httpx.AsyncClient) -> None:
    code = (
        "import java.util.Scanner;\n\npublic class Solution {\n"
        "  static int twice(int x) { return 2 * x; }\n"
        "  public static void main(String[] args) {\n    Scanner in = new Scanner(System.in);\n"
        '    System.out.println("Solution " + twice(in.nextInt()));\n  }\n}\n'
    )
    result = await run_program(client, "java", code, input="21\n")
    assert_ran_ok(result)
    assert result["output"] == "Solution 42\n"


async def test_java_non_public_class_with_main(client: httpx.AsyncClient) -> None:
    code = (
        'class Helper {\n  static String greet() { return "from helper"; }\n}\n\n'
        "class Program {\n  public static void main(String[] args) {\n"
        "    System.out.println(Helper.greet());\n  }\n}\n"
    )
    result = await run_program(client, "java", code)
    assert_ran_ok(result)
    assert result["output"] == "from helper\n"


@pytest.mark.parametrize(
    "code",
    [
        "// Unlike a public class Example, this one reads nothing.\npublic class Solution {\n"
        '  public static void main(String[] args) { System.out.println("found"); }\n}\n',
        "/**\n * public class Helper was here once.\n */\npublic class Solution {\n"
        '  public static void main(String[] args) { System.out.println("found"); }\n}\n',
        "public interface Greeter { String hi(); }\nclass Main {\n"
        '  public static void main(String[] args) { Greeter g = () -> "found"; System.out.println(g.hi()); }\n}\n',
        'public enum Solution { ONE; public static void main(String[] args) { System.out.println("found"); } }\n',
        'public record Solution(int x) { public static void main(String[] args) { System.out.println("found"); } }\n',
    ],
    ids=["comment-names-a-class", "javadoc-names-a-class", "public-interface", "public-enum", "public-record"],
)
async def test_java_file_named_after_its_public_type(client: httpx.AsyncClient, code: str) -> None:
    result = await run_program(client, "java", code)
    assert_ran_ok(result)
    assert result["output"] == "found\n"


async def test_cpp17_iostream_and_structured_bindings(client: httpx.AsyncClient) -> None:
    code = (
        "#include <iostream>\n#include <map>\n#include <string>\n#include <optional>\n\n"
        'int main() {\n  std::map<std::string, int> m{{"a", 1}, {"b", 2}};\n'
        "  for (const auto& [key, value] : m) std::cout << key << '=' << value << '\\n';\n"
        '  if constexpr (__cplusplus >= 201703L) std::cout << "cpp17\\n";\n'
        "  std::optional<int> o = 7;\n  std::cout << o.value_or(0) << '\\n';\n  return 0;\n}\n"
    )
    result = await run_program(client, "cpp", code)
    assert_ran_ok(result)
    assert result["output"] == "a=1\nb=2\ncpp17\n7\n"
    assert result["compileOutput"] == ""


def _registry_with(tmp_path: Path, **extra: dict[str, str]) -> Path:
    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "core" / "languages.yaml").read_text())
    data["languages"].update(extra)
    path = tmp_path / "languages.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


MISSING_TOOLCHAIN = {"displayName": "Nope", "version": "1", "image": "nope:1", "sourceFile": "main.nope",
                     "compile": "exec nopec-monaco-test main.nope", "run": "exec ./main"}


def test_the_executables_of_a_language_come_from_its_commands_or_requires() -> None:
    registry = Registry.load()
    assert registry["python"].executables == ["python3"]
    assert registry["c"].executables == ["gcc"]  # the run command `exec "$MONACO_BUILD_DIR/main"` names none
    assert registry["cpp"].executables == ["g++"]
    assert registry["java"].executables == ["javac", "javap", "java"]  # its compile script starts with `cls=`


@pytest.mark.anyio
async def test_the_local_back_end_offers_only_installed_languages(tmp_path: Path) -> None:
    from monaco.api.app import create_app

    settings = Settings(data_dir=tmp_path / "data", languages_file=_registry_with(tmp_path, nope=MISSING_TOOLCHAIN))
    assert settings.registry.absent == {"nope": ["nopec-monaco-test"]}
    # No lifespan: nothing runs; both requests are answered before the back end is asked.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        listed = [lang["name"] for lang in (await client.get("/languages")).json()["languages"]]
        answer = await client.post("/submit", json={"language": "nope", "code": "x"})
    assert "nope" not in listed and "python" in listed
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "language 'nope' is not installed on this server (nopec-monaco-test not found on its PATH); "
        f"installed: {', '.join(listed)}"
    )
    # The Kubernetes back end runs every language in its own image: nothing is filtered there.
    kube = Settings(backend="kubernetes", languages_file=settings.languages_file)
    assert "nope" in kube.registry and kube.registry.absent == {}


def test_no_installed_language_is_a_clear_start_up_error(tmp_path: Path) -> None:
    only = {"languages": {"nope": MISSING_TOOLCHAIN}}
    path = tmp_path / "languages.yaml"
    path.write_text(yaml.safe_dump(only))
    with pytest.raises(LanguageError, match=r"no language of the registry is installed here .*nope needs nopec"):
        Settings(data_dir=tmp_path / "data", languages_file=path).registry  # noqa: B018
