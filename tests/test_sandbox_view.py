"""What a program sees of the machine through the local sandbox (nsrun): its own root, and only that.

Each case is a real program through the real service; after it, the host is checked from outside
(tests/host_state.py): no process, run dir, cgroup, pty or message queue left behind. README.md's
"What a program sees" lists the same view as EXPECTED_* below; change both together.
"""

from __future__ import annotations

import fnmatch
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from monaco.core.settings import Settings
from tests.conftest import TEST_ROOT, run_program, summary
from tests.host_state import assert_host_clean, host_ptys_of, sandbox_uids

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="nsrun, the sandbox with a root of its own, needs root"),
    pytest.mark.skipif(os.environ.get("MONACO_TEST_SANDBOX", "auto") != "auto", reason="nsrun's view only"),
]

# nsrun.c's TOP and ETC, as found on this host: links (merged /usr) or read-only binds.
HOST_TOP = [n for n in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32") if os.path.lexists(f"/{n}")]
ETC_PATTERNS = ("alternatives", "ld.so.cache", "localtime", "nsswitch.conf", "java-*", "python3*")
HOST_ETC = [n for n in os.listdir("/etc") if any(fnmatch.fnmatchcase(n, p) for p in ETC_PATTERNS)]
EXPECTED_ROOT = sorted([*HOST_TOP, "dev", "etc", "proc", "tmp", "var"])
EXPECTED_ETC = sorted([*HOST_ETC, "group", "hostname", "hosts", "passwd"])
DEVICES = ["full", "null", "random", "tty", "urandom", "zero"]
EXPECTED_DEV = sorted([*DEVICES, "fd", "ptmx", "pts", "shm", "stderr", "stdin", "stdout"])
EXPECTED_MOUNTS = sorted(
    ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/var/tmp", "/tmp", "/tmp/.monaco/src", "/tmp/.monaco/build"]
    + [f"/{n}" for n in HOST_TOP if not os.path.islink(f"/{n}")]
    + [f"/etc/{n}" for n in HOST_ETC if not os.path.islink(f"/etc/{n}")]
)
PTY_MAX = 8  # nsrun.c's PTY_MAX

VIEW = r"""
import json, os, pwd, socket
def ls(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return exc.strerror
print(json.dumps({
    "/": ls("/"), "/dev": ls("/dev"), "/etc": ls("/etc"), "/var": ls("/var"), "/sys": ls("/sys"),
    "/run": ls("/run"), "/home": ls("/home"), "/root": ls("/root"), "/dev/mqueue": ls("/dev/mqueue"),
    "mounts": sorted(line.split()[4] for line in open("/proc/self/mountinfo")),
    "hostname": socket.gethostname(),
    "user": pwd.getpwuid(os.getuid()).pw_name,
}))
"""


async def run_json(client: httpx.AsyncClient, code: str) -> dict[str, Any]:
    result = await run_program(client, "python", code)
    assert result["verdict"] == "ok", summary(result)
    report: dict[str, Any] = json.loads(result["output"])
    return report


async def test_a_program_sees_only_its_own_root(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    view = await run_json(client, VIEW)
    assert view["/"] == EXPECTED_ROOT
    assert view["/dev"] == EXPECTED_DEV
    assert view["/etc"] == EXPECTED_ETC
    assert view["/var"] == ["tmp"]
    for absent in ("/sys", "/run", "/home", "/root", "/dev/mqueue"):
        assert view[absent] == "No such file or directory", (absent, view[absent])
    assert view["mounts"] == EXPECTED_MOUNTS
    assert view["hostname"] == "monaco"
    assert view["user"] == "monaco"  # the generated /etc/passwd names the sandbox uid
    await assert_host_clean(app, settings)


@pytest.fixture
def host_secrets() -> Iterator[dict[str, str]]:
    """World-readable files and world-connectable unix sockets on the host, where a program might look."""
    tag, secret = uuid.uuid4().hex, uuid.uuid4().hex
    TEST_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = [TEST_ROOT / f"secret-{tag}", Path(f"/etc/monaco-secret-{tag}"), Path(f"/root/monaco-secret-{tag}")]
    paths = [TEST_ROOT / f"{tag}.sock", Path(f"/run/monaco-{tag}.sock"), Path(f"/tmp/monaco-{tag}.sock")]
    servers = []
    try:
        for f in files:
            f.write_text(secret)
            f.chmod(0o644)
        for path in paths:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            path.chmod(0o777)
            server.listen()
            server.setblocking(False)
            servers.append(server)
        yield {"secret": secret, **{str(p): "file" for p in files}, **{str(p): "socket" for p in paths}}
        for server in servers:  # nothing connected
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()
        for p in [*files, *paths]:
            p.unlink(missing_ok=True)


REACH = r"""
import json, socket
report = {}
for path, kind in TARGETS.items():
    try:
        if kind == "file":
            report[path] = open(path).read()
        else:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                report[path] = "connected"
    except OSError as exc:
        report[path] = exc.strerror
print(json.dumps(report))
"""


async def test_host_files_and_unix_sockets_are_out_of_reach(
    client: httpx.AsyncClient, app: Starlette, settings: Settings, host_secrets: dict[str, str]
) -> None:
    targets = {k: v for k, v in host_secrets.items() if k != "secret"}
    targets.update({"/etc/shadow": "file", "/etc/os-release": "file", "/dev/log": "socket"})
    targets["/run/dbus/system_bus_socket"] = "socket"
    report = await run_json(client, REACH.replace("TARGETS", repr(targets)))
    assert host_secrets["secret"] not in json.dumps(report)
    assert report == dict.fromkeys(targets, "No such file or directory")
    await assert_host_clean(app, settings)


PTYS = r"""
import json, os
ptys, error = [], None
try:
    for _ in range(200):
        ptys.append(os.openpty())
except OSError as exc:
    error = exc.strerror
print(json.dumps({"opened": len(ptys), "error": error, "/dev/pts": sorted(os.listdir("/dev/pts"))}))
"""


async def test_devpts_is_private_and_capped(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    report = await run_json(client, PTYS)
    assert report["opened"] == PTY_MAX, report
    assert report["error"] == "No space left on device"
    assert report["/dev/pts"] == sorted([*map(str, range(PTY_MAX)), "ptmx"])  # its own ptys, no one else's
    assert not host_ptys_of(sandbox_uids(settings))
    await assert_host_clean(app, settings)


MQUEUE = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
flags = os.O_CREAT | os.O_RDWR if CREATE else os.O_RDONLY
fd = libc.mq_open(NAME.encode(), flags, 0o600, None)
print(json.dumps({"fd": fd, "errno": ctypes.get_errno()}))
"""


async def test_message_queues_are_the_runs_own(client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    name = f"/monaco-{uuid.uuid4().hex}"
    made = await run_json(client, MQUEUE.replace("NAME", repr(name)).replace("CREATE", "True"))
    assert made["fd"] >= 0, made  # a program may use them...
    seen = await run_json(client, MQUEUE.replace("NAME", repr(name)).replace("CREATE", "False"))
    assert seen == {"fd": -1, "errno": 2}, seen  # ...but its queues go with its IPC namespace
    await assert_host_clean(app, settings, mqueues=(name,))
