"""Hostile programs through the real path: each ends with the right verdict, and the service keeps serving.

Every attack runs beside a well-behaved program submitted at the same moment, which must still finish
`ok` with its exact output. Nothing here sleeps for a fixed time: waits are conditions with deadlines.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from monaco.api.app import create_app
from monaco.core import envelope
from monaco.core.envelope import EnvelopeError
from monaco.core.settings import Settings
from tests.conftest import run_program, serve, submit, summary, wait_for_result
from tests.host_state import run_cgroups
from tests.hostile_cases import FORGERIES, Case, check
from tests.support import wait_until

SECRET_NAME = "MONACO_TEST_SECRET"
SECRET = "s3cr3t-" + uuid.uuid4().hex
NORMAL = 'import sys\nprint("still serving", sum(map(int, sys.stdin.read().split())))\n'
NORMAL_INPUT = "1 2 3 4\n"
NORMAL_OUTPUT = "still serving 10\n"


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Starlette:
    """The real app, created while the server's environment holds a secret no program may see."""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    app: Starlette = create_app(settings)
    return app


async def beside_normal(
    client: httpx.AsyncClient, language: str, code: str, input: str = "", **limits: Any
) -> dict[str, Any]:
    """Run a hostile program and a normal one at the same moment; the normal one must end ok."""
    hostile, normal = await asyncio.gather(
        run_program(client, language, code, input, **limits),
        run_program(client, "python", NORMAL, NORMAL_INPUT),
    )
    assert normal["verdict"] == "ok", summary(normal)
    assert normal["output"] == NORMAL_OUTPUT, normal
    return hostile


async def assert_still_prompt(client: httpx.AsyncClient, within: float = 5.0) -> None:
    """The next program after an attack starts and finishes promptly."""
    started = time.monotonic()
    result = await run_program(client, "python", NORMAL, NORMAL_INPUT)
    elapsed = time.monotonic() - started
    assert result["verdict"] == "ok", summary(result)
    assert result["output"] == NORMAL_OUTPUT
    assert elapsed < within, f"a hello-world run took {elapsed:.1f} s after the attack"


def cgroup_dirs_left(app: Starlette) -> list[Path]:
    """Per-run cgroups of this service that still exist (a run's cgroup goes when its processes do)."""
    return run_cgroups(app)


def leftover_processes(app: Starlette) -> list[str]:
    """Processes still in any of this service's run cgroups."""
    left = []
    for d in cgroup_dirs_left(app):
        with contextlib.suppress(OSError):
            left += (d / "cgroup.procs").read_text().split()
    return left


async def assert_nothing_left(app: Starlette, settings: Settings) -> None:
    """No process of any run survives it, and no run's files stay in the sandbox dir."""
    await wait_until(lambda: not leftover_processes(app), 5, "the runs' processes to be gone")
    await wait_until(lambda: not cgroup_dirs_left(app), 5, "the runs' cgroups to be removed")

    def run_dirs() -> list[str]:
        return [p.name for p in settings.sandboxes.iterdir() if p.is_dir()]

    # A run's dir is removed just after its result is stored.
    await wait_until(lambda: not run_dirs(), 5, f"the run dirs in {settings.sandboxes} to be removed")


def result_text(result: dict[str, Any]) -> str:
    return "\n".join(str(result.get(k) or "") for k in ("output", "stderr", "compileOutput", "message"))


# ---------------------------------------------------------------- fork bombs


@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("c", "#include <unistd.h>\nint main(void) { while (1) fork(); }\n"),
        (
            "python",
            "import os, subprocess\nwhile True:\n    try:\n        if os.fork() == 0:\n"
            "            subprocess.Popen(['sh', '-c', 'while :; do :; done'])\n    except OSError:\n        pass\n",
        ),
    ],
    ids=["c-fork", "python-fork-and-shell-out"],
)
async def test_fork_bomb(
    client: httpx.AsyncClient, app: Starlette, settings: Settings, language: str, code: str
) -> None:
    started = time.monotonic()
    result = await beside_normal(client, language, code, timeoutSeconds=2)
    # A bomb of many small processes may also fill the memory limit first: memory_limit is as right.
    assert result["verdict"] in ("timeout", "runtime_error", "memory_limit"), summary(result)
    assert result["status"] == "failed"
    assert time.monotonic() - started < 10
    await assert_nothing_left(app, settings)
    await assert_still_prompt(client)


# ---------------------------------------------------------------- memory


@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("language", "code"),
    [
        (
            "python",
            "hoard = []\nwhile True:\n    block = bytearray(8 << 20)\n    block[::4096] = b'x' * (len(block) // 4096)\n"
            "    hoard.append(block)\n",
        ),
        (
            "c",
            "#include <stdlib.h>\n#include <string.h>\nint main(void) {\n  for (;;) {\n"
            "    char *p = malloc(8 << 20);\n    if (p) memset(p, 'x', 8 << 20);\n  }\n}\n",
        ),
    ],
    ids=["python", "c"],
)
async def test_memory_bomb(
    client: httpx.AsyncClient, app: Starlette, settings: Settings, language: str, code: str
) -> None:
    result = await beside_normal(client, language, code, timeoutSeconds=5)
    assert result["verdict"] == "memory_limit", summary(result)
    assert result["status"] == "failed"
    await assert_nothing_left(app, settings)


@pytest.mark.languages
@pytest.mark.anyio
async def test_compiler_bomb(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    """A source that includes an endless file: the compiler's memory limit ends it, quickly."""
    started = time.monotonic()
    result = await beside_normal(client, "c", '#include "/dev/zero"\nint main(void) { return 0; }\n')
    assert result["verdict"] == "compile_error", summary(result)
    assert result["status"] == "failed"
    assert time.monotonic() - started < 15
    await assert_nothing_left(app, settings)


CPU_HOG_THREADS = """#include <pthread.h>
static void *spin(void *arg) { volatile unsigned long i = 0; for (;;) i++; return arg; }
int main(void) {
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], 0, spin, 0);
  pthread_join(t[0], 0);
}
"""


@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
async def test_threads_burning_cpu_end_as_a_timeout(client: httpx.AsyncClient) -> None:
    """Threads use CPU time faster than the clock: the CPU limit may end them first, as a timeout too."""
    result = await beside_normal(client, "c", CPU_HOG_THREADS, timeoutSeconds=2)
    assert result["verdict"] == "timeout", summary(result)
    assert result["executionTime"] < 5000


# ---------------------------------------------------------------- output


@pytest.mark.languages
@pytest.mark.anyio
async def test_infinite_output(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    result = await beside_normal(client, "python", 'while True:\n    print("x" * 1000)\n')
    assert result["verdict"] == "output_limit", summary(result)
    assert result["status"] == "failed"
    assert result["truncated"] is True
    output = result["output"].encode()
    assert len(output) == settings.output_limit_bytes == 65536
    assert set(output) <= {ord("x"), ord("\n")}
    await assert_nothing_left(app, settings)


@pytest.mark.languages
@pytest.mark.anyio
async def test_infinite_stderr(client: httpx.AsyncClient) -> None:
    result = await beside_normal(client, "c", '#include <stdio.h>\nint main(void) { for (;;) fputs("e", stderr); }\n')
    assert result["verdict"] == "output_limit", summary(result)
    assert result["truncated"] is True
    assert result["stderr"] == "e" * 65536


@pytest.mark.languages
@pytest.mark.anyio
async def test_a_larger_output_cap_is_honoured(settings: Settings, anyio_backend: str) -> None:
    """An operator may raise the cap (up to 16 MiB): the whole output must still come back."""
    settings.output_limit_bytes = 4 << 20
    code = "import sys\nsys.stdout.write('o' * (3 << 20))\nsys.stderr.write('e' * (3 << 20))\n"
    async with serve(create_app(settings)) as client:
        result = await run_program(client, "python", code)
        over = await run_program(client, "python", "import sys\nsys.stdout.write('o' * (5 << 20))\n")
    assert result["verdict"] == "ok", {k: v for k, v in result.items() if k not in ("output", "stderr")}
    assert result["output"] == "o" * (3 << 20)
    assert result["stderr"] == "e" * (3 << 20)
    assert over["verdict"] == "output_limit", {k: v for k, v in over.items() if k != "output"}
    assert len(over["output"]) == 4 << 20


# ---------------------------------------------------------------- disk

FILL_DISK = r"""
import json, os
CHUNK = b"d" * 60000  # below the per-file size limit: many files, so that only free space stops it
report = {}
for where in ["/tmp", ".", "/var/tmp", "/dev/shm", "/tmp/.monaco/build", "/tmp/.monaco/src", "/", "/var/lib",
              HOST_DIR]:
    total, error, written = 0, None, []
    try:
        for i in range(20000):  # at most 1.2 GB per place
            path = os.path.join(where, f"fill-{i}")
            with open(path, "wb") as f:
                written.append(path)
                f.write(CHUNK)
            total += len(CHUNK)
    except OSError as exc:
        error = exc.strerror
    report[where] = {"bytes": total, "error": error}
    if where == "/tmp":  # full: try the working dir (the same tmpfs) before making room
        continue
    for path in written:
        os.remove(path)
    if where == ".":
        for i in range(report["/tmp"]["bytes"] // len(CHUNK) + 1):
            os.remove(f"/tmp/fill-{i}")
# Its own output lives on the same tmpfs: only now, with room again, can it be written.
print(json.dumps(report))
"""


def java_build_filler(classes: int = 19, constants: int = 200) -> str:
    """64 KiB of Java whose class files hold 64 KB string constants: javac writes about 12 MB per class into
    the build dir (found by a red-team run: 208 MB on the host's disk before javac ran out of memory)."""
    head = ('public class Main {\n static final String A = "' + "x" * 8000 + '";\n'
            " static final String B = A+A+A+A+A+A+A+A;\n"
            " public static void main(String[] x){System.out.println(B.length());}\n}\n")
    fields = ",".join(f"a{i}=Main.B+{i}" for i in range(constants))
    body = "".join(f"class C{c}{{static final String {fields};}}\n" for c in range(classes))
    return head + body


@pytest.mark.languages
@pytest.mark.slow
@pytest.mark.anyio
async def test_a_compile_fills_only_a_build_dir_of_its_own_size(
        client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    """The compile phase's build dir is a tmpfs of the compile's output-file size (as the build emptyDir's
    sizeLimit on Kubernetes), not the host's disk: javac stops at its bound with ENOSPC."""
    code = java_build_filler()
    assert len(code.encode()) <= settings.max_code_bytes
    before = shutil.disk_usage(settings.data_dir).free
    result = await beside_normal(client, "java", code)
    assert result["verdict"] == "compile_error", summary(result)
    assert "No space left on device" in result["compileOutput"], summary(result)
    dropped = before - shutil.disk_usage(settings.data_dir).free
    assert dropped < 64 << 20, f"the host lost {dropped >> 20} MB of free space"
    await assert_nothing_left(app, settings)
    mounts = await asyncio.to_thread(Path("/proc/self/mountinfo").read_text)
    assert str(settings.sandboxes.resolve()) + "/" not in mounts, "a build tmpfs is still mounted"


@pytest.mark.languages
@pytest.mark.slow
@pytest.mark.anyio
async def test_filling_the_disk(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    host_dir = settings.data_dir  # where the service keeps its database and sandboxes
    before = shutil.disk_usage(host_dir).free
    code = FILL_DISK.replace("HOST_DIR", repr(str(host_dir)))
    result = await beside_normal(client, "python", code, timeoutSeconds=20)
    assert result["verdict"] == "ok", summary(result)
    report = json.loads(result["output"])
    tmpfs = settings.sandbox_tmp_mb << 20
    # /tmp and the working dir share the sandbox's own tmpfs: it fills up, then every write fails.
    assert tmpfs // 2 < report["/tmp"]["bytes"] <= tmpfs, report
    assert report["/tmp"]["error"] == "No space left on device"
    assert report["/tmp"]["bytes"] + report["."]["bytes"] <= tmpfs
    for small in ("/var/tmp", "/dev/shm"):
        assert report[small]["bytes"] <= 1 << 20, report
    for host in ("/tmp/.monaco/build", "/tmp/.monaco/src", "/", "/var/lib", str(host_dir)):
        assert report[host]["bytes"] == 0, (host, report[host])
        # the host's /var is not in the sandbox's root at all
        errors = ("Permission denied", "Read-only file system", "No such file or directory")
        assert report[host]["error"] in errors, (host, report[host])
    # Had it landed on the host, the program would have written gigabytes there.
    dropped = before - shutil.disk_usage(host_dir).free
    assert dropped < 256 << 20, f"the host lost {dropped >> 20} MB of free space"
    assert not list(host_dir.glob("fill-*"))
    await assert_nothing_left(app, settings)
    await assert_still_prompt(client)


# ---------------------------------------------------------------- network


def host_ipv4_addresses() -> list[str]:
    """Every IPv4 address of this machine's interfaces (SIOCGIFADDR on each)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                found.append(socket.inet_ntoa(packed[20:24]))
    return found


NETWORK_PROBE = r"""
import json, socket
report = {}
def attempt(name, fn):
    try:
        fn()
        report[name] = "connected"
    except Exception as exc:
        report[name] = f"failed: {type(exc).__name__}: {exc}"
def tcp(host, port, family=socket.AF_INET):
    def go():
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect((host, port))
    return go
for host in HOSTS:
    attempt(f"tcp {host}:{PORT}", tcp(host, PORT))
attempt(f"tcp [::1]:{PORT}", tcp("::1", PORT, socket.AF_INET6))
attempt("tcp localhost", lambda: socket.create_connection(("localhost", PORT), timeout=3).close())
attempt("tcp 1.1.1.1:443", tcp("1.1.1.1", 443))
attempt("dns example.com", lambda: socket.getaddrinfo("example.com", 443))
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
                 ("8.8.8.8", 53))
attempt("udp 8.8.8.8:53", udp)
def abstract():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(ABSTRACT)
attempt("unix abstract", abstract)
print(json.dumps(report))
"""


@pytest.mark.languages
@pytest.mark.anyio
async def test_no_network_not_even_the_api_host(client: httpx.AsyncClient) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))  # every address of this machine, loopback included
    listener.listen(16)
    listener.setblocking(False)
    abstract_name = f"\0monaco-test-{uuid.uuid4().hex}"
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_listener.bind(abstract_name)
    unix_listener.listen(16)
    unix_listener.setblocking(False)
    port = listener.getsockname()[1]
    hosts = ["127.0.0.1", *[a for a in host_ipv4_addresses() if a != "127.0.0.1"]]
    code = (
        NETWORK_PROBE.replace("HOSTS", repr(hosts)).replace("PORT", str(port)).replace("ABSTRACT", repr(abstract_name))
    )
    try:
        # The listener is reachable from here, so a failure inside the sandbox is the sandbox's doing.
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        accepted, _ = listener.accept()
        accepted.close()
        result = await beside_normal(client, "python", code)
        assert result["verdict"] == "ok", summary(result)
        report = json.loads(result["output"])
        assert len(report) == len(hosts) + 6, report
        connected = [name for name, outcome in report.items() if not outcome.startswith("failed")]
        assert connected == [], report
        for sock in (listener, unix_listener):
            with pytest.raises(BlockingIOError):
                sock.accept()
    finally:
        listener.close()
        unix_listener.close()


# ---------------------------------------------------------------- the server's secrets

READ_ENVIRONMENT = r"""
import glob, os
print("ENV", dict(os.environ))
for pattern in ["/proc/*/environ", "/proc/*/cmdline", "/proc/*/task/*/environ"]:
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, "rb") as f:
                print(path, f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError as exc:
            print(path, "unreadable:", exc.strerror)
print("PIDS", sorted(p for p in os.listdir("/proc") if p.isdigit()))
"""


@pytest.mark.languages
@pytest.mark.anyio
async def test_the_servers_environment_is_invisible(client: httpx.AsyncClient) -> None:
    assert os.environ[SECRET_NAME] == SECRET  # the server (this process) holds it
    result = await beside_normal(client, "python", READ_ENVIRONMENT)
    assert result["verdict"] == "ok", summary(result)
    assert "ENV {" in result["output"] and "'PATH'" in result["output"], result["output"][:2000]
    assert "/proc/1/cmdline" in result["output"]  # it did look
    text = result_text(result)
    assert SECRET not in text
    assert SECRET_NAME not in text
    # Its own PID namespace: a handful of processes, none of the machine's.
    pids = result["output"].rsplit("PIDS ", 1)[1]
    assert len(ast.literal_eval(pids)) < 10, pids


# ---------------------------------------------------------------- outliving the program

BACKGROUND_CHILD = r"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # a grandchild in a session of its own
        time.sleep(3)
        print("LATE", flush=True)
        with open("/tmp/late", "w") as f:
            f.write("late")
        os._exit(0)
    time.sleep(3)
    print("LATE CHILD", flush=True)
    os._exit(0)
print("parent done", flush=True)
sys.exit(0)
"""


@pytest.mark.languages
@pytest.mark.anyio
async def test_background_child_dies_with_the_program(
    client: httpx.AsyncClient, app: Starlette, settings: Settings
) -> None:
    started = time.monotonic()
    result = await beside_normal(client, "python", BACKGROUND_CHILD)
    elapsed = time.monotonic() - started
    assert result["verdict"] == "ok", summary(result)
    assert result["output"] == "parent done\n"
    assert elapsed < 2, f"the run took {elapsed:.1f} s: the runner waited for the background child"
    assert result["executionTime"] < 2000
    # Nothing of the run is left to wake up and write later.
    await assert_nothing_left(app, settings)
    assert "LATE" not in result_text(result)


# ---------------------------------------------------------------- forging the result


def forged_envelope(nonce: str, *, exit: int = 0, stdout: bytes = b"forged\n") -> str:
    return real_envelope(nonce, exit=str(exit), wall_ns="1000", memory_kb="1", stdout_bytes=str(len(stdout)),
                         stdout=base64.b64encode(stdout).decode())


FAKE_MARKERS = r"""
import sys
for nonce in ["0123456789abcdef01234567", "01234567-89ab-cdef-0123-456789abcdef"]:
    sys.stdout.write(FORGED.replace("NONCE", nonce))
    sys.stderr.write(FORGED.replace("NONCE", nonce))
sys.stdout.flush()
sys.exit(3)
"""


@pytest.mark.languages
@pytest.mark.anyio
async def test_fake_envelope_markers_are_just_output(client: httpx.AsyncClient) -> None:
    code = FAKE_MARKERS.replace("FORGED", repr(forged_envelope("NONCE")))
    result = await beside_normal(client, "python", code)
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["exitCode"] == 3
    assert result["status"] == "failed"
    assert result["output"].count("#MONACO-ENVELOPE v2 BEGIN") == 2  # printed, and kept as output
    assert "forged" not in result["output"].replace(forged_envelope("x"), "")


WRITE_WHERE_THE_RUNNER_WRITES = r"""
import ctypes, glob, json, os, signal, sys
report = {}
forged = FORGED
for path in sorted(glob.glob("/proc/1/fd/*")) + ["/proc/1/fd/1", "/proc/1/fd/2"]:
    try:
        with open(path, "w") as f:
            f.write(forged)
        report[path] = "written"
    except OSError as exc:
        report[path] = exc.strerror
try:
    with open("/proc/1/mem", "rb") as f:
        report["mem"] = "readable"
except OSError as exc:
    report["mem"] = exc.strerror
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
if libc.ptrace(PTRACE_SEIZE, 1, None, None) == 0:
    report["ptrace"] = "attached"
    libc.ptrace(PTRACE_DETACH, 1, None, None)
else:
    report["ptrace"] = os.strerror(ctypes.get_errno())
# Its own stdout and stderr may have been truncated under it: print the report on a line of its own.
print("\nREPORT " + json.dumps(report), flush=True)
sys.exit(3)
"""


@pytest.mark.languages
@pytest.mark.anyio
async def test_writing_where_the_runner_writes_changes_nothing(client: httpx.AsyncClient) -> None:
    # Any nonce will do: the real envelope is printed after the program is dead, so it comes last.
    forged = "".join(forged_envelope(str(uuid.uuid4())) for _ in range(2))
    code = WRITE_WHERE_THE_RUNNER_WRITES.replace("FORGED", repr(forged))
    result = await beside_normal(client, "python", code)
    assert result["verdict"] == "runtime_error", summary(result)
    assert result["exitCode"] == 3
    assert result["status"] == "failed"
    assert result["executionTimeMs"] > 0.01  # the runner's figure, not the forged 0.001 ms
    lines = [line for line in result["output"].splitlines() if line.startswith("REPORT ")]
    assert lines, result["output"]
    report = json.loads(lines[-1].removeprefix("REPORT "))
    # The runner is out of reach: neither its memory nor a tracer can rewrite what it will print.
    assert report["ptrace"] != "attached", report
    assert report["mem"] != "readable", report
    assert [path for path, outcome in report.items() if outcome == "written"] == [], report


STOP_THE_TIMER = r"""
import os, signal, time
os.kill(os.getppid(), signal.SIGSTOP)  # the process that would kill this one at the deadline
time.sleep(60)
"""

KILL_EVERYTHING = r"""
import os, signal, time
os.kill(-1, signal.SIGKILL)  # everything this user may signal: the timer included
time.sleep(60)
"""

SWAP_CAPTURE_FILES = r"""
import glob, os
for path in glob.glob("/tmp/.monaco-*"):
    os.remove(path)
    os.symlink("/proc/1/pagemap", path)  # endless to read
print("swapped")
"""


@pytest.mark.languages
@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "verdicts"),
    [
        (STOP_THE_TIMER, {"timeout"}),
        (KILL_EVERYTHING, {"timeout", "runtime_error"}),
        (SWAP_CAPTURE_FILES, {"ok"}),
    ],
    ids=["stop-the-timer", "kill-everything", "swap-capture-files"],
)
async def test_attacks_on_the_runner_end_with_the_programs_verdict(
    client: httpx.AsyncClient, app: Starlette, settings: Settings, code: str, verdicts: set[str]
) -> None:
    started = time.monotonic()
    result = await beside_normal(client, "python", code, timeoutSeconds=1)
    elapsed = time.monotonic() - started
    assert result["verdict"] in verdicts, summary(result)
    assert elapsed < 8, f"the run took {elapsed:.1f} s"
    await assert_nothing_left(app, settings)


# ---------------------------------------------------------------- the store and other submissions

SNOOP = r"""
import glob, json, os
report = {}
for name, path in PATHS.items():
    try:
        if os.path.isdir(path):
            report[name] = "listed: " + " ".join(os.listdir(path))
        else:
            with open(path, "rb") as f:
                report[name] = "read: " + f.read(4096).decode(errors="replace")
    except OSError as exc:
        report[name] = exc.strerror
MARKER = MARKER_REVERSED[::-1]  # not spelled out in this source, which sits in its own /tmp
found = []
for pattern in ["/tmp/**", "/proc/*/cwd/**", "/proc/*/root/tmp/**", "/dev/shm/**", "/var/tmp/**", SANDBOX_GLOB]:
    for path in glob.glob(pattern, recursive=True):
        try:
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    if MARKER.encode() in f.read():
                        found.append(path)
        except OSError:
            pass
report["found"] = found
# Names that the machine shows every process: the cgroup tree (where a run's name could leak its id).
names = []
for root, dirs, _files in os.walk("/sys/fs/cgroup"):
    names += dirs
    if root.count("/") > 5:
        dirs.clear()
report["cgroups"] = names
print(json.dumps(report))
"""

VICTIM = r"""
import os, sys, time
secret = sys.stdin.read()
for path in ["/tmp/victim", "victim", "/dev/shm/victim"]:
    try:
        with open(path, "w") as f:
            f.write(secret)
    except OSError:
        pass
deadline = time.time() + 2.5
while time.time() < deadline and not os.path.exists("/tmp/stop"):
    time.sleep(0.02)
print("victim done")
"""


@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
async def test_no_access_to_the_store_or_other_submissions(
    client: httpx.AsyncClient, app: Starlette, settings: Settings
) -> None:
    marker = "victim-" + uuid.uuid4().hex
    db = settings.database
    paths = {
        "db": str(db),
        "db dir": str(db.parent),
        "wal": str(db) + "-wal",
        "sandboxes": str(settings.sandboxes),
        "data dir": str(settings.data_dir),
    }
    code = (
        SNOOP.replace("PATHS", repr(paths))
        .replace("SANDBOX_GLOB", repr(str(settings.sandboxes) + "/**"))
        .replace("MARKER_REVERSED", repr(marker[::-1]))
    )
    # The victim holds its secret in its stdin, its files and its memory while the snoop looks.
    victim_id = await submit(client, "python", VICTIM, input=marker)

    async def victim_running() -> bool:
        status = (await client.get("/status", params={"id": victim_id})).json()["status"]
        assert status in ("queued", "running"), status
        return bool(status == "running")

    await wait_until(victim_running, 10, "the victim to run")
    assert db.exists()  # there is a database to steal
    snoop = await run_program(client, "python", code)
    still = (await client.get("/status", params={"id": victim_id})).json()
    assert still["status"] == "running", "the victim ended before the snoop did: nothing was tested"
    victim_result = await wait_for_result(client, victim_id)
    assert victim_result["verdict"] == "ok", summary(victim_result)
    assert victim_result["output"] == "victim done\n"
    assert snoop["verdict"] == "ok", summary(snoop)
    report = json.loads(snoop["output"])
    for name in ("db", "db dir", "wal", "sandboxes"):
        assert report[name] in ("Permission denied", "No such file or directory"), (name, report[name])
    assert report["found"] == [], report
    assert marker not in result_text(snoop)
    # An id is all it takes to read a submission's result: no run may learn another's.
    # (With the unshare sandbox, which shows the host's /sys, it does see the runs' cgroups, not their ids.)
    if settings.sandbox == "unshare":
        assert any(name.endswith("-run") for name in report["cgroups"]), report["cgroups"]
    else:  # nsrun: no /sys at all
        assert report["cgroups"] == [], report["cgroups"]
    assert victim_id not in result_text(snoop)


# ---------------------------------------------------------------- the envelope parser


def real_envelope(nonce: str = "01234567-89ab-cdef-0123-456789abcdef", **overrides: str) -> str:
    fields = {
        "phase": "run",
        "exit": "0",
        "signal": "",
        "wall_ns": "1500000",
        "cpu_ms": "1",
        "cpu_limit_ms": "11000",
        "timed_out": "0",
        "timeout_ms": "10000",
        "output_limit": "65536",
        "output_exceeded": "0",
        "memory_kb": "2048",
        "oom_kills": "",
        "stdout_bytes": "6",
        "stderr_bytes": "0",
        "error": "",
        "stdout": base64.b64encode(b"hello\n").decode(),
        "stderr": "",
        **overrides,
    }
    body = "".join(f"{k}={v}\n" for k, v in fields.items())
    v = envelope.VERSION
    return f"\n#MONACO-ENVELOPE {v} BEGIN {nonce}\n{body}#MONACO-ENVELOPE {v} END {nonce}\n"


def test_parse_reads_an_envelope() -> None:
    result = envelope.parse(real_envelope())
    assert result.phase == "run"
    assert result.exit == 0
    assert result.stdout == b"hello\n"
    assert result.wall_ms == 1.5
    assert result.memory_kb == 2048
    assert not result.timed_out and not result.over_output_limit


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hello\n",
        b"#MONACO-ENVELOPE v2 END 01234567-89ab-cdef-0123-456789abcdef\n",
        b"#MONACO-ENVELOPE v0 BEGIN 01234567-89ab-cdef-0123-456789abcdef\nphase=run\n",
    ],
    ids=["empty", "no-markers", "end-only", "other-version"],
)
def test_parse_without_an_envelope(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        envelope.parse(raw)


@pytest.mark.parametrize("cut", [10, 60, 150, -60, -2])
def test_parse_of_an_envelope_cut_short(cut: int) -> None:
    raw = real_envelope().encode()
    with pytest.raises(EnvelopeError):
        envelope.parse(raw[:cut])


def test_parse_rejects_output_after_the_end_marker() -> None:
    with pytest.raises(EnvelopeError):
        envelope.parse(real_envelope() + "late output\n")


def test_parse_rejects_an_end_marker_of_another_nonce() -> None:
    raw = real_envelope().replace("END 01234567", "END 11234567")
    with pytest.raises(EnvelopeError):
        envelope.parse(raw)


def test_parse_rejects_bad_base64() -> None:
    with pytest.raises(EnvelopeError):
        envelope.parse(real_envelope(stdout="not base64!"))


def test_parse_ignores_junk_before_the_envelope() -> None:
    junk = b"\x00\xff binary junk\n#MONACO-ENVELOPE v2 BEGIN half a marker\nexit=0\n" * 50
    result = envelope.parse(junk + real_envelope(exit="3").encode())
    assert result.exit == 3
    assert result.stdout == b"hello\n"


def test_parse_takes_the_last_of_two_envelopes() -> None:
    first = real_envelope("aaaaaaaa-89ab-cdef-0123-456789abcdef", exit="0", stdout=base64.b64encode(b"1st").decode())
    last = real_envelope("bbbbbbbb-89ab-cdef-0123-456789abcdef", exit="7", stdout=base64.b64encode(b"2nd").decode())
    result = envelope.parse(first + last)
    assert result.exit == 7
    assert result.stdout == b"2nd"


def test_parse_of_a_forged_envelope_inside_the_real_ones_output() -> None:
    # A forged envelope that the program printed travels base64-encoded inside the real one.
    forged = forged_envelope("cccccccc-89ab-cdef-0123-456789abcdef").encode()
    raw = real_envelope(exit="3", stdout=base64.b64encode(forged).decode(), stdout_bytes=str(len(forged)))
    result = envelope.parse(raw)
    assert result.exit == 3
    assert result.stdout == forged


@pytest.mark.parametrize(("exit", "signal", "cpu_ms", "verdict"), [
    ("0", "", "2800", "timeout"),     # caught the rlimit's SIGXCPU and exited 0: it still used the CPU
    ("137", "9", "2800", "timeout"),  # the rlimit's SIGKILL (rusage reads threads' CPU up to a tenth low)
    ("137", "9", "2000", "runtime_error"),  # over its 1.5 s time limit in threads, then a SIGKILL of its own
    ("152", "24", "2000", "runtime_error"),
    ("0", "", "2000", "ok"),
])
def test_the_cpu_limit_is_measured_whatever_ended_the_run(exit: str, signal: str, cpu_ms: str, verdict: str) -> None:
    """The CPU-time rlimit (3 s for a 1.5 s limit) decides a CPU timeout from the CPU time used, never from
    the signal: the same CPU time is one verdict however the run ended."""
    ran = envelope.parse(real_envelope(exit=exit, signal=signal, cpu_ms=cpu_ms, wall_ns="1000000000",
                                       timeout_ms="1500", cpu_limit_ms="3000"))
    assert envelope.decide(None, ran).verdict.value == verdict


def test_verdict_of_a_run_that_printed_a_forgery_before_the_real_envelope() -> None:
    forged = forged_envelope("dddddddd-89ab-cdef-0123-456789abcdef")
    ran = envelope.parse(forged + real_envelope(exit="3", stdout="", stdout_bytes="0"))
    outcome = envelope.decide(None, ran)
    assert outcome.verdict.value == "runtime_error"
    assert outcome.exit_code == 3


# ---------------------------------------------------------------- verdicts a program cannot choose


@pytest.mark.languages
@pytest.mark.anyio
@pytest.mark.parametrize("case", FORGERIES, ids=lambda c: c.id)
async def test_a_program_cannot_choose_its_verdict(client: httpx.AsyncClient, app: Starlette, settings: Settings,
                                                   case: Case) -> None:
    """The same table runs on the Kubernetes back end in e2e/test_monaco.py."""
    result = await beside_normal(client, case.language, case.code, **case.limits)
    check(case, result)
    await assert_nothing_left(app, settings)


@pytest.mark.languages
@pytest.mark.anyio
async def test_filling_tmp_under_a_small_memory_limit_is_a_memory_limit(client: httpx.AsyncClient) -> None:
    """The sandbox's /tmp is a tmpfs whose pages are charged to the run's memory cgroup: a program that fills
    it has used memory, and the runner, which needs no new page to report, still reports it."""
    code = "data = b'x' * (1 << 20)\nwith open('/tmp/fill', 'wb') as f:\n    for _ in range(60):\n" \
           "        f.write(data); f.flush()\nprint('wrote 60 MB')\n"
    result = await beside_normal(client, "python", code, memoryMb=24)
    assert result["verdict"] == "memory_limit", summary(result)
