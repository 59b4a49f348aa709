"""Programs that try to choose their own verdict, shared by the local back end's tests and the e2e suite.

Both back ends run the same runner (core/monaco-init.c) and judge with the same `decide`, so each case
must end with the same verdict on both; the tests are parametrized over this table, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    id: str
    language: str
    code: str
    verdict: str
    output: str | None = None  # the exact stdout expected, where it matters
    message: str | None = None  # a fragment of the result's message
    limits: dict[str, Any] = field(default_factory=dict)


SIGNAL_RUNNER = """
import os, signal, time
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM, signal.SIGSTOP,
            signal.SIGKILL):
    os.kill(1, sig)
time.sleep(0.3)
print('alive')
"""

STOP_EVERYTHING = """
import os, signal, time
for sig in (signal.SIGSTOP, signal.SIGKILL):
    for pid in os.listdir('/proc'):
        if pid.isdigit() and int(pid) != os.getpid():
            try: os.kill(int(pid), sig)
            except OSError: pass
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(60)
print('ran to the end')
"""

TRACE_RUNNER = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
results = []
for request in (PTRACE_ATTACH, PTRACE_SEIZE):
    rc = libc.ptrace(request, 1, None, None)
    results.append('attached' if rc == 0 else os.strerror(ctypes.get_errno()))
for path in ('/proc/1/mem', '/proc/1/fd/1'):
    try:
        os.close(os.open(path, os.O_RDWR)); results.append('opened')
    except OSError as e:
        results.append(type(e).__name__)
print(' '.join(sorted(set(results))))
"""

HIDE_OUTPUT = """
import os, sys
sys.stdout.write('x' * 160_000); sys.stdout.flush()
for fd in (1, 2):
    for attack in (lambda: os.ftruncate(fd, 0), lambda: os.lseek(fd, 0, 0)):
        try: attack()
        except OSError: pass
tmp = os.environ.get('TMPDIR', '/tmp')
for name in os.listdir(tmp):
    try: os.unlink(os.path.join(tmp, name))
    except OSError: pass
"""

PTY_FLOOD = """
import os
fds = []
try:
    for _ in range(5000):
        fds.append(os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY))
except OSError:
    pass
print('bounded' if len(fds) <= 64 else f'took {len(fds)} ptys')
"""

FORGERIES: list[Case] = [
    Case("exit-152-is-not-a-timeout", "python", "import sys\nsys.exit(152)\n", "runtime_error",
         message="exited with status 152"),
    Case("exit-137-is-not-a-memory-limit", "c", "int main(void) { return 137; }\n", "runtime_error"),
    Case("self-sigxcpu-is-not-a-timeout", "c",
         "#include <signal.h>\n#include <unistd.h>\nint main(void) { kill(getpid(), SIGXCPU); pause(); }\n",
         "runtime_error", message="signal 24"),
    Case("memoryerror-words-are-not-a-memory-limit", "python",
         "import sys\nprint('MemoryError', file=sys.stderr)\nsys.exit(1)\n", "runtime_error"),
    Case("bad-alloc-words-are-not-a-memory-limit", "cpp",
         '#include <cstdio>\nint main() { std::fputs("std::bad_alloc\\nCannot allocate memory\\n", stderr);'
         " return 3; }\n", "runtime_error"),
    Case("signals-to-the-runner-change-nothing", "python", SIGNAL_RUNNER, "ok", output="alive\n"),
    Case("stopping-everything-still-times-out", "python", STOP_EVERYTHING, "timeout", limits={"timeoutSeconds": 1}),
    Case("tracing-the-runner-is-refused", "python", TRACE_RUNNER, "ok",
         output="Operation not permitted PermissionError\n"),
    Case("hidden-output-is-still-counted", "python", HIDE_OUTPUT, "output_limit"),
    Case("a-pty-flood-is-bounded", "python", PTY_FLOOD, "ok", output="bounded\n"),
    Case("include-dev-zero-is-a-compile-error", "c", "#include </dev/zero>\nint main(void) { return 0; }\n",
         "compile_error"),
    Case("include-dev-random-is-a-compile-error", "cpp", "#include </dev/random>\nint main() { return 0; }\n",
         "compile_error"),
]


def check(case: Case, result: dict[str, Any]) -> None:
    assert result["verdict"] == case.verdict, (case.id, result)
    if case.output is not None:
        assert result["output"] == case.output, (case.id, result)
    if case.message is not None:
        assert case.message in result["message"], (case.id, result)
    if case.verdict == "timeout":
        limit_ms = 1000 * case.limits.get("timeoutSeconds", 0)
        assert result["executionTime"] >= limit_ms, (case.id, result)
