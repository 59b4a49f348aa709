"""The command-line client: the real `monaco` command, as a process, against a real local server.

One server for the module (tests/support.served); each test runs `monaco ...` with its stdout and
stderr piped, as a script or CI job would, unless it says otherwise.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monaco.cli.client import Exit
from monaco.cli.commands import INTERRUPTED, VERDICT_EXIT
from tests.support import Front, Rule, free_port, served, wait_until_blocking

MONACO = str(Path(sys.executable).with_name("monaco"))
pytestmark = pytest.mark.languages


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served() as base:
        yield base


def monaco(*args: str, url: str | None = None, stdin: bytes | None = None, env: dict[str, str] | None = None,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`monaco ARGS` with stdin from `stdin` (else /dev/null), the server at `url` through MONACO_URL."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MONACO_")}
    environ.update({"MONACO_URL": url} if url else {})
    environ.update(env or {})
    options: dict[str, object] = {"capture_output": True, **kwargs}
    if stdin is None:
        options["stdin"] = subprocess.DEVNULL
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [MONACO, *args], input=stdin.decode() if stdin is not None else None, text=True, timeout=60, env=environ,
        **options,
    )


def source(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from c"); return 0; }\n'
REVERSE = "import sys\nfor line in sys.stdin: print(line.rstrip()[::-1])\n"


def test_hello_world_in_python_prints_its_output_and_nothing_else(url: str, tmp_path: Path) -> None:
    done = monaco("run", source(tmp_path, "hello.py", "print('hello')\n"), url=url)
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello\n", "")


def test_hello_world_in_c_language_from_the_extension(url: str, tmp_path: Path) -> None:
    done = monaco("run", source(tmp_path, "hello.c", HELLO_C), url=url)
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello from c\n", "")


def test_language_option_wins_over_the_extension(url: str, tmp_path: Path) -> None:
    done = monaco("run", "--language", "c", source(tmp_path, "prog.txt", HELLO_C), url=url)
    assert (done.returncode, done.stdout) == (0, "hello from c\n")


def test_stdin_from_a_file(url: str, tmp_path: Path) -> None:
    data = source(tmp_path, "in.txt", "abc\nxyz\n")
    done = monaco("run", source(tmp_path, "rev.py", REVERSE), "--stdin", data, url=url)
    assert (done.returncode, done.stdout) == (0, "cba\nzyx\n")


def test_piped_stdin(url: str, tmp_path: Path) -> None:
    done = monaco("run", source(tmp_path, "rev.py", REVERSE), url=url, stdin=b"olleh\n")
    assert (done.returncode, done.stdout) == (0, "hello\n")


def test_server_option_and_environment(url: str, tmp_path: Path) -> None:
    """--server is the option; MONACO_URL (used by the other tests) its environment variable."""
    done = monaco("run", "--server", url, source(tmp_path, "hello.py", "print(1)\n"))
    assert (done.returncode, done.stdout) == (0, "1\n")


def test_runtime_error_passes_the_exit_status_and_stderr_through(url: str, tmp_path: Path) -> None:
    code = "import sys\nprint('out')\nprint('oops', file=sys.stderr)\nsys.exit(3)\n"
    done = monaco("run", source(tmp_path, "fail.py", code), url=url)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "oops\n")


def test_compile_error_exits_120_with_the_compiler_output_on_stderr(url: str, tmp_path: Path) -> None:
    done = monaco("run", source(tmp_path, "bad.c", "int main(void) { return 0 }\n"), url=url)
    assert done.returncode == VERDICT_EXIT["compile_error"] == 120
    assert done.stdout == ""
    assert "error" in done.stderr and "main.c" in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("monaco: compile error"), done.stderr


def test_timeout_exits_124(url: str, tmp_path: Path) -> None:
    done = monaco("run", "--timeout", "0.5", source(tmp_path, "loop.py", "while True: pass\n"), url=url)
    assert done.returncode == VERDICT_EXIT["timeout"] == 124
    assert done.stderr.startswith("monaco: timeout"), done.stderr


def test_json_prints_the_whole_result_and_keeps_the_exit_status(url: str, tmp_path: Path) -> None:
    done = monaco("run", "--json", source(tmp_path, "fail.py", "print('x')\nraise SystemExit(7)\n"), url=url)
    result = json.loads(done.stdout)
    assert done.returncode == 7
    assert (result["verdict"], result["output"], result["exitCode"], result["language"]) == (
        "runtime_error", "x\n", 7, "python")
    assert {"id", "status", "executionTime", "memoryKb", "stderr", "compileOutput"} <= result.keys()
    assert done.stderr == ""


def test_unreachable_server_is_one_line_and_exit_6(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = monaco("run", "--server", dead, source(tmp_path, "hello.py", "print(1)\n"))
    assert done.returncode == Exit.UNREACHABLE.value == 6
    assert done.stderr.startswith(f"monaco: cannot reach the server at {dead}"), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_unknown_language_lists_the_known_ones(url: str, tmp_path: Path) -> None:
    named = monaco("run", "--language", "cobol", source(tmp_path, "x.py", "print(1)\n"), url=url)
    by_extension = monaco("run", source(tmp_path, "x.rb", "puts 1\n"), url=url)
    for done in (named, by_extension):
        assert done.returncode == Exit.UNKNOWN_LANGUAGE.value == 3
        assert done.stderr.count("\n") == 1 and "c, cpp, java, python" in done.stderr, done.stderr


def test_too_large_file_gives_the_servers_413_message(url: str, tmp_path: Path) -> None:
    done = monaco("run", source(tmp_path, "big.py", "x = 1\n" * 20_000), url=url)
    assert done.returncode == Exit.TOO_LARGE.value == 4
    assert done.stderr == "monaco: 'code' is 120000 bytes; the limit is 65536 bytes\n"


def test_a_refused_request_gives_the_servers_400_message(url: str, tmp_path: Path) -> None:
    done = monaco("run", "--timeout", "999", source(tmp_path, "x.py", "print(1)\n"), url=url)
    assert done.returncode == Exit.REFUSED.value == 5
    assert done.stderr.startswith("monaco: 'timeoutSeconds' is 999"), done.stderr


def test_progress_only_on_a_terminal(url: str, tmp_path: Path) -> None:
    """Piped: nothing on stderr but the program's. On a terminal: the status while it runs, then cleared."""
    slow = source(tmp_path, "slow.py", "import time\ntime.sleep(0.6)\nprint('done')\n")
    piped = monaco("run", slow, url=url)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "done\n", "")

    leader, follower = pty.openpty()
    try:
        on_tty = monaco("run", slow, url=url, stderr=follower, capture_output=False, stdout=subprocess.PIPE)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert (on_tty.returncode, on_tty.stdout) == (0, "done\n")
    assert b"monaco: running" in seen, seen
    assert seen.endswith(b"\r\x1b[K"), seen  # the progress line is cleared before the output is final


def test_submit_status_cancel_result(url: str, tmp_path: Path) -> None:
    submitted = monaco("submit", source(tmp_path, "sleep.py", "import time\ntime.sleep(30)\n"), url=url)
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    status = monaco("status", submission_id, url=url)
    assert status.returncode == 0 and status.stdout.strip() in ("pending", "queued", "running"), status
    cancelled = monaco("cancel", submission_id, url=url)
    assert (cancelled.returncode, cancelled.stdout) == (0, "failed cancelled\n")
    result = monaco("result", submission_id, url=url)
    assert result.returncode == VERDICT_EXIT["cancelled"] == 123
    assert json.loads(monaco("status", "--json", submission_id, url=url).stdout)["verdict"] == "cancelled"
    again = monaco("cancel", submission_id, url=url)
    assert again.returncode == Exit.REFUSED and "already finished" in again.stderr, again


def test_status_of_an_unknown_id(url: str) -> None:
    done = monaco("status", "no-such-id", url=url)
    assert (done.returncode, done.stderr) == (Exit.REFUSED, "monaco: no submission with id 'no-such-id'\n")


def test_languages_from_the_server_and_from_the_local_registry(url: str) -> None:
    table = monaco("languages", url=url)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "LANGUAGE", "VERSION"]
    assert any(line.startswith("python *") for line in table.stdout.splitlines()), table.stdout  # the default
    served_names = [lang["name"] for lang in json.loads(monaco("languages", "--json", url=url).stdout)["languages"]]
    dead = f"http://127.0.0.1:{free_port()}"
    local = monaco("languages", "--local", "--server", dead)  # no server needed, as the image's self-test runs it
    assert local.returncode == 0
    assert [lang["name"] for lang in json.loads(local.stdout)] == served_names


def test_help_and_readme_document_every_exit_status() -> None:
    done = monaco("run", "--help")
    assert done.returncode == 0
    codes = {*VERDICT_EXIT.values(), *(e.value for e in Exit), INTERRUPTED}
    for code in codes:
        assert re.search(rf"^ +{code} ", done.stdout, re.MULTILINE), code
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Try it"):readme.index("## HTTP reference")]
    assert {int(n) for n in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)} == codes
    for verdict, code in VERDICT_EXIT.items():
        assert f"| {code} | `{verdict}`" in table, verdict


def test_the_service_commands_are_still_there() -> None:
    for command in ("serve", "operator"):
        done = monaco(command, "--help")
        assert done.returncode == 0 and f"Usage: monaco {command}" in done.stdout
    assert "--allowed-hosts" in monaco("serve", "--help").stdout


def test_the_programs_bytes_come_through_as_they_are(url: str, tmp_path: Path) -> None:
    """No newline added or lost, unicode as UTF-8; bytes that are not UTF-8 arrive as U+FFFD, as the server's
    JSON carries them (text, not bytes)."""
    code = ("import sys\nsys.stdout.write('h\\u00e9llo \\u2713 \\U0001f642')\nsys.stderr.write('no newline')\n"
            "sys.stdout.flush()\nsys.stdout.buffer.write(b' \\xff!')\n")
    done = subprocess.run([MONACO, "run", source(tmp_path, "bytes.py", code)], capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, "MONACO_URL": url})
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "h\u00e9llo \u2713 \U0001f642 \ufffd!".encode(), b"no newline")


def test_files_that_are_no_program_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing is sent: no server needed
    (tmp_path / "empty.py").write_text(" \n")
    (tmp_path / "blob.py").write_bytes(b"\x7fELF\x00\xff\xfe")
    (tmp_path / "adir.py").mkdir()
    for name, said in [("empty.py", "empty.py is empty: there is no program to run"),
                       ("blob.py", "blob.py is not UTF-8 text (byte 5)"), ("adir.py", "is a directory")]:
        done = monaco("run", "--server", dead, str(tmp_path / name))
        assert done.returncode == Exit.USAGE.value == 2, done
        assert said in done.stderr and done.stderr.count("monaco") <= 3 and "Traceback" not in done.stderr, done


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_through_an_ingress_path_over_https_with_or_without_a_trailing_slash(
        url: str, tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    hello = source(tmp_path, "hello.py", "print(input())\n")
    trusted = {"SSL_CERT_FILE": str(certificate[0])}
    with Front(url, tls=certificate) as front:
        assert front.url.startswith("https://") and front.url.endswith("/monaco")
        for server in (front.url, front.url + "/"):
            done = monaco("run", hello, url=server, stdin=b"via tls\n", env=trusted)
            assert (done.returncode, done.stdout, done.stderr) == (0, "via tls\n", ""), done
        assert monaco("languages", url=front.url + "/", env=trusted).stdout.startswith("NAME")
        untrusted = monaco("run", hello, url=front.url)
        assert untrusted.returncode == Exit.UNREACHABLE, untrusted
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr and "SSL_CERT_FILE" in untrusted.stderr, untrusted
    plain = monaco("run", hello, url=url.replace("http://", "https://"))
    assert plain.returncode == Exit.UNREACHABLE and "is the server https://" in plain.stderr, plain


def test_a_server_that_is_not_monaco_or_a_wrong_path(url: str, tmp_path: Path) -> None:
    hello = source(tmp_path, "hello.py", "print(1)\n")
    with Front(url) as front:
        front.rules[:] = [Rule("GET", "/languages", 200, {"content-type": "text/html"}, b"<html>a portal</html>")]
        page = monaco("run", hello, url=front.url)
        assert page.returncode == Exit.UNREACHABLE, page
        assert page.stderr == (f"monaco: {front.url}/languages answered something that is not JSON: is --server "
                               "Monaco's URL, with the path it is served under (e.g. https://example.com/monaco)?\n")
        front.rules.clear()
        wrong_path = monaco("run", "-l", "python", hello, url=front.url.removesuffix("/monaco") + "/elsewhere")
        assert wrong_path.returncode == Exit.UNREACHABLE, wrong_path
        assert "/elsewhere/submit answered HTTP 404" in wrong_path.stderr and "--server" in wrong_path.stderr
        front.rules[:] = [Rule("POST", "/submit", 429, {"content-type": "text/html", "retry-after": "7"}, b"busy")]
        busy = monaco("run", hello, url=front.url)
        assert busy.returncode == Exit.UNREACHABLE and "HTTP 429" in busy.stderr, busy


def test_a_full_queue_is_exit_7_with_the_servers_words(tmp_path: Path) -> None:
    sleeper = source(tmp_path, "sleep.py", "import time\ntime.sleep(30)\n")
    with served(MONACO_MAX_WORKERS="1", MONACO_QUEUE_SIZE="1") as small:
        ids = [monaco("submit", sleeper, url=small).stdout.strip() for _ in range(2)]
        full = monaco("run", sleeper, url=small)
        for submission_id in ids:
            monaco("cancel", submission_id, url=small)
    assert full.returncode == Exit.QUEUE_FULL.value == 7, full
    assert re.fullmatch(r"monaco: the queue is full \(1 submissions? waiting\); retry in \d+ s\n", full.stderr), full


def running_jobs(url: str) -> int:
    with urllib.request.urlopen(url + "/queue-stats", timeout=10) as answer:
        return int(json.load(answer)["queue_stats"]["running_jobs"])


def test_ctrl_c_cancels_the_run(url: str, tmp_path: Path) -> None:
    started = source(tmp_path, "slow.py", "import time\nprint('started', flush=True)\ntime.sleep(30)\n")
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("MONACO_")}, "MONACO_URL": url}
    process = subprocess.Popen([MONACO, "run", started], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environ)
    try:
        wait_until_blocking(lambda: running_jobs(url) >= 1, 20, "the program to run")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == INTERRUPTED == 130, stderr
    submission_id = re.fullmatch(r"monaco: interrupted: submission (\S+) cancelled\n", stderr)
    assert submission_id and stdout == "", stderr
    assert json.loads(monaco("status", "--json", submission_id[1], url=url).stdout)["verdict"] == "cancelled"
