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

# The program shares the runner's uid, and the kernel lets a process change the limits, nice value,
# scheduling and I/O priority of any process of its uid: each of these, aimed at the runner (PID 1), would
# starve or break it (with no file descriptors left, its poll() failed: a system_error the program chose).
RETUNE_RUNNER = """
import ctypes, os, platform, resource, time
libc = ctypes.CDLL(None, use_errno=True)
IOPRIO_SET = {"x86_64": 251, "aarch64": 30}[platform.machine()]
def ioprio(which, who):
    if libc.syscall(IOPRIO_SET, which, who, (3 << 13) | 7) != 0:
        raise OSError(ctypes.get_errno(), "ioprio_set")
attacks = {
    "prlimit-nofile": lambda: resource.prlimit(1, resource.RLIMIT_NOFILE, (0, 0)),
    "prlimit-cpu": lambda: resource.prlimit(1, resource.RLIMIT_CPU, (1, 1)),
    "prlimit-nproc": lambda: resource.prlimit(1, resource.RLIMIT_NPROC, (0, 0)),
    "prlimit-as": lambda: resource.prlimit(1, resource.RLIMIT_AS, (1 << 20, 1 << 20)),
    "nice": lambda: os.setpriority(os.PRIO_PROCESS, 1, 19),
    "nice-group": lambda: os.setpriority(os.PRIO_PGRP, 1, 19),
    "nice-user": lambda: os.setpriority(os.PRIO_USER, 0, 19),
    "affinity": lambda: os.sched_setaffinity(1, {0}),
    "idle": lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)),
    "ioprio": lambda: ioprio(1, 1),
    "ioprio-user": lambda: ioprio(3, os.getuid()),
}
changed = []
for name, attack in attacks.items():
    try:
        attack()
        changed.append(name)
    except PermissionError:
        pass
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # its own limits stay its own
os.setpriority(os.PRIO_PROCESS, 0, 15)
time.sleep(0.3)
print("changed: " + " ".join(changed) if changed else "refused")
"""

# The same through the raw syscall, with the pid's upper 32 bits set: the kernel reads an int, a filter that
# compared all 64 bits would let it by.
RETUNE_RUNNER_C = """#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  struct rlimit none = {0, 0};
  long rc = syscall(SYS_prlimit64, 0x100000001L, RLIMIT_NOFILE, &none, 0);
  usleep(300000);
  puts(rc == 0 ? "changed" : "refused");
  return 0;
}
"""

# With test cases the runner runs the program once per case in the same sandbox, and empties the scratch
# dirs in between: whatever a case leaves there (here a deep tree where the next case's source goes)
# must not make the next case fail to start.
BLOCK_THE_NEXT_CASE = """
import os
fd = os.open(".", os.O_RDONLY)
os.unlink("main.py", dir_fd=fd)
os.mkdir("main.py", dir_fd=fd)
d = os.open("main.py", os.O_RDONLY, dir_fd=fd)
for _ in range(200):
    os.mkdir("d", 0, dir_fd=d)
    os.chmod("d", 0o700, dir_fd=d)
    n = os.open("d", os.O_RDONLY, dir_fd=d)
    os.close(d)
    d = n
os.fchmod(d, 0)
print(input())
"""

BLOCK_THE_NEXT_CASE_JAVA = """import java.nio.file.*;
public class Main {
  public static void main(String[] a) throws Exception {
    Path src = Paths.get("Main.java").toAbsolutePath();
    Files.deleteIfExists(src);
    Path p = src;
    for (int i = 0; i < 200; i++) p = p.resolve("d");
    Files.createDirectories(p);
    Files.createFile(p.resolve("f"));
    System.out.println(new java.util.Scanner(System.in).next());
  }
}
"""


# Timers and limits a program sets on itself deliver the signals Monaco's own limits would (SIGALRM,
# SIGVTALRM, SIGXCPU, then SIGKILL at the hard limit): each is the program's own runtime error, far from
# the run's time limit. A program that stops itself is still timed by the runner's clock.
ALARM = "#include <unistd.h>\nint main(void) { alarm(1); for (;;) pause(); }\n"
VIRTUAL_TIMER = """#include <sys/time.h>
int main(void) {
  struct itimerval v = {{0, 0}, {0, 300000}};
  setitimer(ITIMER_VIRTUAL, &v, 0);
  for (;;) {}
}
"""
OWN_CPU_LIMIT = """#include <sys/resource.h>
int main(void) {
  struct rlimit r = {1, 2};
  setrlimit(RLIMIT_CPU, &r);
  for (;;) {}
}
"""
STOP_SELF = "#include <signal.h>\n#include <stdio.h>\nint main(void) { puts(\"stopping\"); fflush(stdout);" \
            " raise(SIGSTOP); puts(\"resumed\"); }\n"
# The interpreter's C stack overflows (repr of a list nested a million deep, the recursion limit lifted):
# a crash of the program's, SIGSEGV, never Monaco's fault.
C_STACK_OVERFLOW = """import sys
sys.setrecursionlimit(10**9)
l = []
for _ in range(10**6): l = [l]
print(len(repr(l)))
"""

TWO_CASES = {"testCases": [{"input": "1\n", "expectedOutput": "1"}, {"input": "2\n", "expectedOutput": "2"}]}

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
    Case("retuning-the-runner-is-refused", "python", RETUNE_RUNNER, "ok", output="refused\n"),
    Case("retuning-the-runner-by-raw-syscall-is-refused", "c", RETUNE_RUNNER_C, "ok", output="refused\n"),
    Case("a-test-case-cannot-block-the-next", "python", BLOCK_THE_NEXT_CASE, "ok", output="2\n", limits=TWO_CASES),
    Case("a-java-test-case-cannot-block-the-next", "java", BLOCK_THE_NEXT_CASE_JAVA, "ok", output="2\n",
         limits=TWO_CASES),
    Case("include-dev-zero-is-a-compile-error", "c", "#include </dev/zero>\nint main(void) { return 0; }\n",
         "compile_error"),
    Case("include-dev-random-is-a-compile-error", "cpp", "#include </dev/random>\nint main() { return 0; }\n",
         "compile_error"),
    Case("an-alarm-of-its-own-is-not-a-timeout", "c", ALARM, "runtime_error", message="SIGALRM",
         limits={"timeoutSeconds": 5}),
    Case("a-virtual-timer-of-its-own-is-not-a-timeout", "c", VIRTUAL_TIMER, "runtime_error", message="SIGVTALRM",
         limits={"timeoutSeconds": 5}),
    Case("a-cpu-limit-of-its-own-is-not-a-timeout", "c", OWN_CPU_LIMIT, "runtime_error", message="SIGXCPU",
         limits={"timeoutSeconds": 5}),
    Case("stopping-itself-is-timed-by-the-runner", "c", STOP_SELF, "timeout", output="stopping\n",
         limits={"timeoutSeconds": 1}),
    Case("a-c-stack-overflow-is-a-runtime-error", "python", C_STACK_OVERFLOW, "runtime_error", message="SIGSEGV",
         limits={"memoryMb": 256}),
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
