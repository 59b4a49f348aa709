"""The sandbox seccomp profile (core/seccomp.py): its chart copy, what it refuses, and real programs under it.

The behaviour tests load the profile with the host's libseccomp (as runc does, rule by rule) into a
child process, and skip where libseccomp or x86_64 is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monaco.core import seccomp

ROOT = Path(__file__).resolve().parent.parent


# ---- the copy in the chart ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", seccomp.OUTPUTS, ids=[str(p) for p in seccomp.OUTPUTS])
def test_chart_copy_matches_the_generator(rel: Path) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} is missing: run `python -m monaco.core.seccomp`"
    assert path.read_text() == seccomp.render_json(), \
        f"{rel} drifted from core/seccomp.py: run `python -m monaco.core.seccomp`"


def test_the_chart_ships_only_generated_profiles() -> None:
    shipped = sorted(p.name for p in (ROOT / seccomp.CHART_DIR).iterdir())
    assert shipped == sorted(p.name for p in seccomp.OUTPUTS)
    assert seccomp.LOCALHOST_PROFILE.split("/") == ["monaco", seccomp.FILE_NAME]


def test_write_creates_the_copy(tmp_path: Path) -> None:
    [path] = seccomp.write(tmp_path)
    assert path == tmp_path / seccomp.OUTPUTS[0]
    assert json.loads(path.read_text()) == seccomp.render()


# ---- what the profile says -----------------------------------------------------------------------------


def rules(name: str) -> list[dict[str, Any]]:
    return [r for r in seccomp.render()["syscalls"] if name in r["names"]]


def test_an_allowlist_for_the_native_architectures_only() -> None:
    profile = seccomp.render()
    assert (profile["defaultAction"], profile["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", seccomp.EPERM)
    # no SCMP_ARCH_X86, X32 or ARM: the 32-bit entry points hit the bad-architecture action
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
    assert set(seccomp.allowed_names()).isdisjoint(seccomp.denied_names())
    for rule in profile["syscalls"]:
        assert rule["action"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO")
        assert rule["names"] == sorted(set(rule["names"]))


# io_uring; what api/local/nsrun.c refuses; what RuntimeDefault refuses a container without capabilities
REFUSED = [
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev", "unshare", "setns", "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "mount", "umount2", "pivot_root", "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "open_by_handle_at",
    "sethostname", "setdomainname", "syslog", "chroot", "iopl", "ioperm",
]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_eperm(name: str) -> None:
    assert name in seccomp.denied_names()
    assert rules(name) == []  # so the default answers: EPERM


def test_clone_only_without_namespaces_and_clone3_not_at_all() -> None:
    [clone] = rules("clone")
    assert clone["action"] == "SCMP_ACT_ALLOW"
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert rules("clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": seccomp.ENOSYS}]


def test_sockets_of_every_family_but_vsock() -> None:
    [socket] = rules("socket")
    assert socket["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


# ---- the profile loaded with libseccomp ----------------------------------------------------------------

SCMP_ACT_ALLOW = 0x7FFF0000
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6,
       "SCMP_CMP_MASKED_EQ": 7}
ARCHES = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_AARCH64": 0xC00000B7}


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@pytest.fixture(scope="module")
def libseccomp() -> ctypes.CDLL:
    found = ctypes.util.find_library("seccomp")
    if not found:
        pytest.skip("no libseccomp on this machine")
    lib = ctypes.CDLL(found)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def _action(rule: dict[str, Any], profile: dict[str, Any]) -> int:
    if rule["action"] == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    errno: int = rule.get("errnoRet", profile["defaultErrnoRet"])
    return 0x00050000 | errno


def loader(lib: ctypes.CDLL, profile: dict[str, Any]) -> Callable[[], None]:
    """A preexec_fn that loads `profile` into the child, the way runc does: names this libseccomp does
    not know are skipped; a masked comparison's `value` is the mask and `valueTwo` the expected bits."""

    def load() -> None:
        default = 0x00050000 | profile["defaultErrnoRet"]
        ctx = lib.seccomp_init(default)
        for arch in profile["architectures"]:
            lib.seccomp_arch_add(ctx, ARCHES[arch])  # -EEXIST for the native one
        for rule in profile["syscalls"]:
            if _action(rule, profile) == default:
                continue  # redundant, and libseccomp refuses it (EACCES): runc and crun skip it too
            args = (ArgCmp * 6)(*[ArgCmp(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                                  for a in rule.get("args", [])])
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue
                rc = lib.seccomp_rule_add_array(ctx, _action(rule, profile), nr, len(rule.get("args", [])), args)
                if rc != 0:
                    os.write(2, f"seccomp_rule_add {name}: {rc}\n".encode())
                    os._exit(121)
        if lib.seccomp_load(ctx) != 0:
            os._exit(122)

    return load


def test_every_name_is_a_syscall_and_none_is_newer_than_futex_waitv(libseccomp: ctypes.CDLL) -> None:
    """A typo would be skipped silently by runc; and runc answers ENOSYS above the highest number named."""
    names = {n for r in seccomp.render()["syscalls"] for n in r["names"]} | set(seccomp.denied_names())
    for arch in ARCHES.values():
        numbers = {n: libseccomp.seccomp_syscall_resolve_name_arch(arch, n.encode()) for n in names}
        assert max(numbers.values()) == numbers["futex_waitv"]
    unknown = [n for n in names if all(libseccomp.seccomp_syscall_resolve_name_arch(a, n.encode()) < 0
                                       for a in ARCHES.values())]
    assert not unknown


needs_x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86_64")

PROBE = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), "?") if r == -1 else "ok"
print(json.dumps({
    "io_uring_setup": call(425, 1, ctypes.addressof(buf)),
    "io_uring_enter": call(426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": call(427, -1, 0, 0, 0),
    "ptrace": call(101, 0, 0, 0, 0),
    "process_vm_readv": call(310, os.getpid(), 0, 0, 0, 0, 0),
    "unshare": call(272, 0x10000000),
    "setns": call(308, -1, 0),
    "keyctl": call(250, 0, -3, 0),
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, 0, 0, -1, -1, 0),
    "userfaultfd": call(323, 0),
    "modify_ldt": call(154, 0, ctypes.addressof(buf), 16),
    "clone_newuser": call(56, 0x10000000 | 0x200 | 17, 0, 0, 0, 0),  # with CLONE_FS: EINVAL were it allowed
    "clone3": call(435, 0, 0),
    "socket_vsock": call(41, 40, 1, 0),
    "socket_inet": call(41, 2, 1, 0),
    "getpid": call(39),
}))
"""


@needs_x86_64
def test_refused_calls_fail_as_the_profile_says(libseccomp: ctypes.CDLL) -> None:
    proc = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, timeout=60,
                          preexec_fn=loader(libseccomp, seccomp.render()))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got.pop("clone3") == "ENOSYS"
    assert got.pop("socket_inet") == got.pop("getpid") == "ok"
    assert got == {name: "EPERM" for name in got}


I386_GETPID = """#include <stdio.h>
int main(void) { long r; __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory"); printf("%ld\\n", r); }
"""


@needs_x86_64
def test_the_i386_entry_point_is_shut(libseccomp: ctypes.CDLL, tmp_path: Path) -> None:
    """Only the native architecture is named: a 32-bit syscall from a 64-bit process kills it."""
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    (tmp_path / "m.c").write_text(I386_GETPID)
    subprocess.run(["gcc", "-o", tmp_path / "m", tmp_path / "m.c"], check=True, timeout=60)
    assert subprocess.run([tmp_path / "m"], capture_output=True, timeout=10).returncode == 0  # works unfiltered
    load = loader(libseccomp, seccomp.render())
    proc = subprocess.run([tmp_path / "m"], capture_output=True, timeout=10, preexec_fn=load)
    assert proc.returncode == -signal.SIGSYS


SOURCES = {
    "c": ("main.c", '#include <stdio.h>\n#include <pthread.h>\nvoid *f(void *a) { return a; }\n'
          'int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); puts("hello c"); }\n'),
    "cpp": ("main.cpp", '#include <iostream>\n#include <thread>\nint main() { std::thread t([] {}); t.join();'
            ' std::cout << "hello cpp" << std::endl; }\n'),
    "java": ("Main.java", 'public class Main { public static void main(String[] a) throws Exception {'
             ' Thread t = new Thread(() -> {}); t.start(); t.join(); System.out.println("hello java"); } }\n'),
}


@needs_x86_64
@pytest.mark.parametrize("language", ["python", "c", "cpp", "java", "javascript"])
def test_real_programs_run_under_the_profile(libseccomp: ctypes.CDLL, language: str, tmp_path: Path) -> None:
    """Compilers and runtimes (threads, clone3's fallback to clone, the JVM) need nothing it refuses."""
    tools = {"python": [sys.executable], "c": ["gcc"], "cpp": ["g++"], "java": ["javac", "java"],
             "javascript": ["node"]}[language]
    if not all(shutil.which(t) for t in tools):
        pytest.skip(f"{' and '.join(tools)} not installed")
    load = loader(libseccomp, seccomp.render())

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=load,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    if language == "python":
        code = "import threading, subprocess, sys; t = threading.Thread(target=print); t.start(); t.join()\n" \
               "print(subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True).stdout.decode())"
        assert run(sys.executable, "-I", "-c", code).split() == ["42"]
        return
    if language == "javascript":
        code = "require('fs').readdirSync('.'); console.log(require('child_process').execSync('echo 42') + '')"
        assert run("node", "-e", code).split() == ["42"]
        return
    name, source = SOURCES[language]
    (tmp_path / name).write_text(source)
    if language == "java":
        run("javac", name)
        assert run("java", "-Xmx64m", "-cp", ".", "Main") == "hello java\n"
    else:
        run(tools[0], "-O2", "-pthread", "-o", "main", name)
        assert run("./main") == f"hello {language}\n"


# ---- the installer (the chart's DaemonSet) -------------------------------------------------------------


def test_install_copies_every_profile_whole(tmp_path: Path) -> None:
    src, dest = tmp_path / "configmap", tmp_path / "node"
    src.mkdir()
    dest.mkdir()
    (src / seccomp.FILE_NAME).write_text(seccomp.render_json())
    (src / "README").write_text("not a profile")
    (dest / seccomp.FILE_NAME).write_text("{}")  # an older one is replaced
    assert not seccomp.installed(src, dest)
    assert seccomp.install(src, dest) == [dest / seccomp.FILE_NAME]
    assert seccomp.installed(src, dest)
    assert sorted(p.name for p in dest.iterdir()) == [seccomp.FILE_NAME]  # no partial file left
    assert (dest / seccomp.FILE_NAME).read_text() == seccomp.render_json()
    assert (dest / seccomp.FILE_NAME).stat().st_mode & 0o777 == 0o644


def test_install_refuses_what_no_runtime_could_parse(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(json.JSONDecodeError):
        seccomp.install(tmp_path, tmp_path)
    assert not (tmp_path / ".bad.json.partial").exists()


def test_install_waits_for_sigterm(tmp_path: Path) -> None:
    src, dest = tmp_path / "configmap", tmp_path / "node"
    src.mkdir()
    dest.mkdir()
    (src / seccomp.FILE_NAME).write_text(seccomp.render_json())
    with subprocess.Popen([sys.executable, "-P", "-m", "monaco.core.seccomp", "install", str(src), str(dest)],
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout and proc.stdout.readline() == f"installed {dest / seccomp.FILE_NAME}\n"
        assert seccomp.main(["check", str(src), str(dest)]) == 0  # the startup probe
        proc.terminate()
        assert proc.wait(10) == 0
