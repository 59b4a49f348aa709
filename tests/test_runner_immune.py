"""The runner judges from where the program cannot reach it, although both run as one uid (as in a pod).

Each case runs the real runner (core/monaco-init.c) as PID 1 of a new PID namespace, with the program
as an unprivileged uid, exactly as a Kubernetes pod runs it, and judges the envelope with the one
`decide`. The program attacks the runner (its memory, its stdout, signals), or tries to choose its own
verdict (exit statuses, words on stderr, signals to itself, hidden output): none of it may work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monaco.core.envelope import PhaseResult, decide, parse
from monaco.core.models import Outcome, Verdict
from monaco.core.native import binary
from tests.hostile_cases import HIDE_OUTPUT, STOP_EVERYTHING

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"),
    reason="needs root to make a PID namespace and become another uid",
)
PYTHON = os.path.realpath("/usr/bin/python3")
UID = 61999


@pytest.fixture
def workdir() -> Iterator[Path]:
    # not pytest's tmp_path: its parents are private to root, and the program runs as another uid
    path = Path("/var/lib/monaco-test") / f"runner-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def run(workdir: Path, program: str, *, timeout_ms: int = 3000, output_limit: int = 65536,
        command: str = f"exec {PYTHON} main.py") -> PhaseResult:
    src = workdir / "src"
    src.mkdir(exist_ok=True)
    (src / "main.py").write_text(program)
    runner = workdir / "monaco-init"
    shutil.copyfile(binary("monaco-init"), runner)
    for f in (src, *src.iterdir()):
        os.chmod(f, 0o755)
    os.chmod(runner, 0o555)
    env = {
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(workdir),
        "MONACO_SRC_DIR": str(src),
        "MONACO_SOURCE_FILE": "main.py",
        "MONACO_BUILD_DIR": str(workdir / "work"),
        "MONACO_WORK_DIR": str(workdir / "work"),
        "MONACO_COMMAND": command,
        "MONACO_TIMEOUT_MS": str(timeout_ms),
        "MONACO_OUTPUT_LIMIT": str(output_limit),
    }
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "setpriv", f"--reuid={UID}", f"--regid={UID}",
         "--clear-groups", str(runner), "run"],
        env=env, capture_output=True, timeout=60, check=True,
    )
    return parse(done.stdout)


def verdict(result: PhaseResult) -> Outcome:
    return decide(None, result)


def test_the_program_cannot_open_the_runners_memory_or_stdout(workdir: Path) -> None:
    probe = """
import os
for what, path, mode in (("mem", "/proc/1/mem", os.O_RDWR), ("fd", "/proc/1/fd/1", os.O_WRONLY),
                         ("environ", "/proc/1/environ", os.O_RDONLY)):
    try:
        os.close(os.open(path, mode)); print(what, "OPEN")
    except OSError as e:
        print(what, type(e).__name__)
"""
    result = run(workdir, probe)
    assert result.stdout.decode().splitlines() == ["mem PermissionError", "fd PermissionError",
                                                   "environ PermissionError"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGSTOP", "SIGKILL", "SIGALRM", "SIGUSR1",
                                 "SIGCHLD", "SIGXCPU", "SIGPIPE"])
def test_signals_to_the_runner_change_nothing(workdir: Path, sig: str) -> None:
    program = f"import os, signal, time\nos.kill(1, signal.{sig})\ntime.sleep(0.2)\nprint('alive')\n"
    outcome = verdict(run(workdir, program))
    assert (outcome.verdict, outcome.output) == (Verdict.OK, "alive\n"), outcome


def test_a_stopped_or_killed_runner_still_times_the_program(workdir: Path) -> None:
    """The timer is the runner's own deadline: no process the program could stop, kill or patch."""
    program = STOP_EVERYTHING.replace('time.sleep(60)', 'time.sleep(30)')
    result = run(workdir, program, timeout_ms=1000)
    outcome = verdict(result)
    assert outcome.verdict is Verdict.TIMEOUT, outcome
    assert 1000 <= outcome.execution_ms < 5000, outcome  # type: ignore[operator]
    assert "ran to the end" not in outcome.output


@pytest.mark.parametrize("status", [152, 137, 124, 139, 128 + 25])
def test_an_exit_status_chosen_by_the_program_is_a_runtime_error(workdir: Path, status: int) -> None:
    """exit 152 is what a shell reports for SIGXCPU: it must not read as a timeout, nor 137 as an OOM."""
    outcome = verdict(run(workdir, f"import sys\nsys.exit({status})\n"))
    assert outcome.verdict is Verdict.RUNTIME_ERROR, outcome
    assert outcome.exit_code == status
    assert outcome.message == f"the program exited with status {status}"


@pytest.mark.parametrize("sig", ["SIGXCPU", "SIGKILL", "SIGXFSZ", "SIGSEGV"])
def test_a_signal_the_program_sends_itself_is_a_runtime_error(workdir: Path, sig: str) -> None:
    program = f"import os, signal\ntry: signal.signal(signal.{sig}, signal.SIG_DFL)\nexcept OSError: pass\n" \
              f"os.kill(os.getpid(), signal.{sig})\n"
    outcome = verdict(run(workdir, program))
    assert outcome.verdict is Verdict.RUNTIME_ERROR, outcome
    assert "was killed by signal" in outcome.message


@pytest.mark.parametrize("words", ["MemoryError", "std::bad_alloc", "Cannot allocate memory",
                                   "java.lang.OutOfMemoryError: Java heap space"])
def test_words_on_stderr_do_not_make_a_memory_limit(workdir: Path, words: str) -> None:
    outcome = verdict(run(workdir, f"import sys\nprint({words!r}, file=sys.stderr)\nsys.exit(1)\n"))
    assert outcome.verdict is Verdict.RUNTIME_ERROR, outcome


def test_hidden_output_is_still_counted(workdir: Path) -> None:
    """The program's stdout is a pipe the runner reads: there is no capture file to delete or truncate."""
    program = HIDE_OUTPUT
    outcome = verdict(run(workdir, program, output_limit=65536))
    assert outcome.verdict is Verdict.OUTPUT_LIMIT, outcome
    assert outcome.truncated and len(outcome.output) == 65536


def test_a_run_past_its_limit_is_never_ok(workdir: Path) -> None:
    """A program that ignores every signal it can, and ends on its own just past the limit: timeout."""
    program = "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\n" \
              "time.sleep(0.6)\nprint('done')\n"
    result = run(workdir, program, timeout_ms=500)
    assert result.timed_out and result.wall_ns >= 500_000_000
    assert verdict(result).verdict is Verdict.TIMEOUT


def test_background_children_die_with_the_program(workdir: Path) -> None:
    """What the program leaves running is killed when it ends (the runner is PID 1: kill(-1) reaches all),
    and a pipe a child still holds does not keep the runner waiting."""
    program = """
import os, subprocess, sys
subprocess.Popen(['sleep', '30'], start_new_session=True)
if os.fork() == 0:
    os.setsid(); import time; time.sleep(30)
print('parent done'); sys.stdout.flush()
"""
    result = run(workdir, program, timeout_ms=5000)
    outcome = verdict(result)
    assert (outcome.verdict, outcome.output) == (Verdict.OK, "parent done\n"), outcome
    assert result.wall_ns < 3_000_000_000


def test_cpu_time_is_measured(workdir: Path) -> None:
    result = run(workdir, "x = 0\nfor i in range(3_000_000): x += i\nprint(x)\n", timeout_ms=10000)
    assert result.exit == 0 and result.cpu_ms > 0 and result.cpu_limit_ms == 11000
    assert verdict(result).verdict is Verdict.OK


# Two processes burn 0.8 s of CPU each (1.6 s in all: more than the 1.5 s time limit, far from the 3 s
# CPU-time rlimit) in about 0.8 s of wall time, then the program ends as it chooses.
BURN_IN_PARALLEL_THEN = """
import os, signal, sys, time
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 0.8: pass
        os._exit(0)
    children.append(pid)
for pid in children: os.waitpid(pid, 0)
sys.stdout.flush()
ENDING
"""


@pytest.mark.parametrize("ending", ["os._exit(0)", "os.kill(os.getpid(), signal.SIGKILL)",
                                    "os.kill(os.getpid(), signal.SIGXCPU)"])
def test_the_cpu_limit_is_not_chosen_by_the_programs_signal(workdir: Path, ending: str) -> None:
    """A run that used more CPU than its time limit (in parallel, within the wall time) and then killed
    itself with the signals the CPU-time rlimit would send was judged a timeout, and the same run ending
    with exit 0 ok: the verdict followed the program's choice. The CPU-time limit is the rlimit, measured
    whatever ended the program; below it, a signal is the program's own (runtime_error)."""
    program = BURN_IN_PARALLEL_THEN.replace("ENDING", ending)
    for _ in range(3):  # the run must really have burned in parallel: retry on a busy machine
        result = run(workdir, program, timeout_ms=1500)
        if not result.over_time and result.cpu_ms >= 1500:
            break
    else:
        pytest.skip(f"no two free cores: the program used {result.cpu_ms} ms of CPU in {result.wall_ms:.0f} ms")
    assert result.cpu_limit_ms == 3000
    outcome = verdict(result)
    expected = Verdict.OK if ending == "os._exit(0)" else Verdict.RUNTIME_ERROR
    assert outcome.verdict is expected, outcome
