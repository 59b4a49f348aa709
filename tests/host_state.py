"""What a run leaves behind on the host, checked from outside after each hostile case: nothing.

No process of a sandbox uid, no run dir, no run cgroup, no pty on the host's devpts, no POSIX message
queue in the host's IPC namespace.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from starlette.applications import Starlette

from monaco.core.settings import Settings
from tests.support import wait_until

_libc = ctypes.CDLL(None, use_errno=True)


def sandbox_uids(settings: Settings) -> range:
    return range(settings.sandbox_uid_base, settings.sandbox_uid_base + settings.max_workers)


def processes_of(uids: range) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
            if uid in uids:
                found.append(int(entry.name))
    return found


def host_ptys_of(uids: range) -> list[str]:
    """Ptys on the host's devpts that a sandbox uid opened (a pty belongs to the uid that opened it)."""
    return [p.name for p in Path("/dev/pts").iterdir() if p.name != "ptmx" and p.stat().st_uid in uids]


def host_mqueue_exists(name: str) -> bool:
    """Whether the host's IPC namespace holds the POSIX message queue `name` (mq_open without O_CREAT)."""
    _libc.mq_open.restype = ctypes.c_int
    fd = _libc.mq_open(name.encode(), os.O_RDONLY)
    if fd >= 0:
        _libc.mq_close(fd)
        return True
    return False


def run_dirs(settings: Settings) -> list[str]:
    return [p.name for p in settings.sandboxes.iterdir() if p.is_dir()]


def run_cgroups(app: Starlette) -> list[Path]:
    cgroups = app.state.backend.sandbox.cgroups
    if cgroups is None:
        return []
    return [d for parent in cgroups.parents if parent.exists() for d in parent.iterdir() if d.is_dir()]


async def assert_host_clean(app: Starlette, settings: Settings, mqueues: tuple[str, ...] = ()) -> None:
    uids = sandbox_uids(settings)
    await wait_until(lambda: not processes_of(uids), 5, "no process of a sandbox uid")
    await wait_until(lambda: not run_dirs(settings), 5, f"no run dir in {settings.sandboxes}")
    await wait_until(lambda: not run_cgroups(app), 5, "no run cgroup")
    assert not host_ptys_of(uids), "a sandbox took a pty of the host's devpts"
    for name in mqueues:
        assert not host_mqueue_exists(name), f"message queue {name} is in the host's IPC namespace"
