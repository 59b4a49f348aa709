"""The local sandbox's modes: nsrun (auto) and unshare + mount + setpriv isolate alike; auto never falls back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monaco.api.local import sandbox as sandbox_module
from monaco.api.local.sandbox import PhaseRun, Sandbox, SandboxUnavailable
from monaco.core.envelope import decide
from monaco.core.models import Limits, Verdict
from monaco.core.native import HOW_TO_BUILD, NativeMissing
from monaco.core.settings import Settings

PROBE = """
import os, socket
print("uid", os.getuid())
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("ifaces", sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", 22))
    print("net", "open")
except OSError as e:
    print("net", type(e).__name__)
print("env", sorted(k for k in os.environ if not k.startswith("MONACO_")))
open("/tmp/x", "w").write("x")
print("home-writable", os.access("/root", os.W_OK))
"""


def run_probe(settings: Settings, code: str, slot: int) -> tuple[str, PhaseRun]:
    """Run a Python program in a sandbox built as `settings` say; returns the sandbox's mode and the run."""
    sandbox = Sandbox(settings)
    sandbox.prepare()
    python = settings.registry.get("python")
    assert python is not None
    base = sandbox.workspace("probe", code, "", python)
    try:
        ran = asyncio.run(sandbox.run_phase(base, python, "run", Limits(timeout_seconds=5, memory_mb=100), slot))
    finally:
        sandbox.cleanup(base)
        sandbox.close()
    return sandbox.mode, ran


@pytest.mark.skipif(os.geteuid() != 0, reason="the launcher modes need root")
@pytest.mark.parametrize(("setting", "mode"), [("auto", "nsrun"), ("unshare", "unshare-root")])
def test_modes_isolate_alike(data_dir: Path, setting: str, mode: str) -> None:
    settings = Settings(data_dir=data_dir, sandbox=setting)
    built, ran = run_probe(settings, PROBE, slot=1)
    assert built == mode
    assert ran.result is not None, ran.error
    outcome = decide(None, ran.result, oom_killed=ran.oom_killed, memory_kb=ran.memory_kb)
    assert outcome.verdict is Verdict.OK, outcome
    lines = dict(line.split(" ", 1) for line in outcome.output.splitlines())
    assert lines["uid"] == str(settings.sandbox_uid_base + 1)
    pids = eval(lines["pids"])  # a list of ints printed by the probe
    assert pids[0] == 1 and len(pids) <= 4  # its own PID namespace: the runner (1), timeout, sh/python
    assert lines["ifaces"] == "['lo']"
    assert lines["net"] in ("ConnectionRefusedError", "OSError") or "Unreachable" in lines["net"]
    # the shell adds PWD; nothing of the server's environment is there
    assert lines["env"] == "['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']"
    assert lines["home-writable"] == "False"
    assert outcome.memory_kb and outcome.memory_kb > 1000


def test_a_sandbox_dir_under_tmp_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="under /tmp"):
        Sandbox(Settings(data_dir=Path("/var/lib/monaco-test/x"), sandbox_dir=tmp_path)).prepare()


SECCOMP_PROBE = """
import ctypes, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
print("unshare-user", libc.unshare(0x10000000), ctypes.get_errno())
try:
    socket.socket(40, socket.SOCK_STREAM)
    print("vsock open")
except OSError as e:
    print("vsock", e.errno)
print("ptrace", libc.ptrace(16, 1, 0, 0), ctypes.get_errno())
params = ctypes.create_string_buffer(120)  # struct io_uring_params
print("io_uring_setup", libc.syscall(425, 1, params), ctypes.get_errno())
print("fork", subprocess.run(["/bin/echo", "ok"], capture_output=True, text=True).stdout.strip())
t = threading.Thread(target=print, args=("thread ok",))
t.start()
t.join()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the launcher needs root")
def test_nsrun_seccomp_denies_namespaces_tracing_io_uring_and_vsock(data_dir: Path) -> None:
    mode, ran = run_probe(Settings(data_dir=data_dir), SECCOMP_PROBE, slot=0)
    assert mode == "nsrun"
    assert ran.result is not None, ran.error
    assert ran.result.stdout.decode().splitlines() == [
        "unshare-user -1 1",  # EPERM
        "vsock 1",
        "ptrace -1 1",
        "io_uring_setup -1 1",
        "fork ok",  # ordinary processes and threads still work
        "thread ok",
    ]


# ---- no silent fallback: auto is nsrun or a refusal that says what to do; weaker modes only when asked


def test_auto_without_root_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match=r"auto needs root .* MONACO_SANDBOX=unshare"):
        Sandbox(Settings(data_dir=data_dir, sandbox="auto")).prepare()


def without_binary(monkeypatch: pytest.MonkeyPatch, absent: str) -> None:
    """As if the native binary `absent` had not been built; the other one is the real one."""
    from monaco.core.native import binary as real

    def binary(name: str) -> Path:
        if name == absent:
            raise NativeMissing(f"Monaco's native binary {name} is not built: {HOW_TO_BUILD}")
        return real(name)

    monkeypatch.setattr(sandbox_module, "binary", binary)


def test_auto_without_a_built_nsrun_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    without_binary(monkeypatch, "nsrun")
    with pytest.raises(SandboxUnavailable, match="nsrun is not built: build it with `make setup`"):
        Sandbox(Settings(data_dir=data_dir, sandbox="auto")).prepare()


@pytest.mark.parametrize("mode", ["auto", "unshare"])
def test_a_missing_runner_is_refused_before_anything_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """`monaco serve` checks this before it listens: an image or install without monaco-init never compiles one."""
    without_binary(monkeypatch, "monaco-init")
    with pytest.raises(SandboxUnavailable, match="monaco-init is not built: build it with `make setup`"):
        Sandbox(Settings(data_dir=data_dir, sandbox=mode)).check()


@pytest.mark.skipif(os.geteuid() != 0, reason="nsrun's probe runs as root")
def test_auto_with_an_nsrun_that_cannot_build_a_sandbox_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = data_dir.parent / f"{data_dir.name}-nsrun"
    broken.write_text("#!/bin/sh\necho 'nsrun: unshare: Operation not permitted' >&2\nexit 111\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sandbox_module, "binary", lambda name: broken)
    try:
        with pytest.raises(SandboxUnavailable, match="cannot build a sandbox here: nsrun: unshare: Operation not"):
            Sandbox(Settings(data_dir=data_dir, sandbox="auto")).prepare()
    finally:
        broken.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="the unshare mode is probed as root here")
def test_unshare_is_logged_as_weaker(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    sandbox = Sandbox(Settings(data_dir=data_dir, sandbox="unshare"))
    sandbox.prepare()
    sandbox.close()
    assert sandbox.mode == "unshare-root"
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING" and "weaker" in r.getMessage()]
    assert "no seccomp filter" in warning.getMessage()


def test_none_needs_allow_unisolated(data_dir: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="MONACO_ALLOW_UNISOLATED=true"):
        Sandbox(Settings(data_dir=data_dir, sandbox="none")).prepare()


def test_serve_refuses_to_start_in_one_line(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONACO_")}
    env.update({"MONACO_DATA_DIR": str(data_dir), "MONACO_SANDBOX": "none", "PORT": "1"})
    done = subprocess.run(
        [sys.executable, "-P", "-m", "monaco.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "monaco: cannot start: MONACO_SANDBOX=none runs programs without any isolation: set "
        "MONACO_ALLOW_UNISOLATED=true too, and only on a throwaway development machine"
    ]
