"""Per-run memory and pids cgroups for the local sandbox, where the service may create them (root).

With them the local back end sees what Kubernetes sees: a program over its memory limit is OOM-killed
and reported as `memory_limit`, its peak memory is measured, and a fork bomb stops at `pids.max`.
Without them (not root, or no writable cgroup file system) the sandbox falls back to rlimits alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "monaco"


@dataclass(frozen=True)
class RunCgroup:
    dirs: tuple[Path, ...]
    memory: Path
    v2: bool

    def stats(self) -> tuple[int | None, bool]:
        """(peak memory in KiB, whether the OOM killer fired)."""
        peak_file = self.memory / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes")
        events = self.memory / ("memory.events" if self.v2 else "memory.oom_control")
        peak = None
        with contextlib.suppress(OSError, ValueError):
            peak = int(peak_file.read_text().split()[0]) // 1024
        killed = False
        with contextlib.suppress(OSError):
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    killed = True
        return peak, killed

    def kill_all_but_init(self) -> int:
        """SIGKILL every process of the run except the launcher and its namespace's PID 1 (the runner).

        The runner's timer runs as the program's uid, so the program can stop or kill it; killing the
        program's processes from here lets the runner see the program end and report it. Returns how
        many were killed.
        """
        pids: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        killed = 0
        for pid in sorted(pids):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if len(nspid) < 2 or nspid[-1] == "1":
                continue  # the launcher, outside the namespace; or the runner
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
                killed += 1
        return killed

    def remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # tasks still exiting
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


class Cgroups:
    """Creates one cgroup per sandboxed phase under monaco/ in the memory and pids hierarchies."""

    def __init__(self, owner: str, root: Path = ROOT) -> None:
        # One parent per service instance (by data dir), so two services on one machine never touch
        # each other's sandboxes.
        name = f"{PARENT}-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"
        self.v2 = (root / "cgroup.controllers").exists()
        self.parents: tuple[Path, ...]
        if self.v2:
            self.parents = (root / name,)
        else:
            self.parents = (root / "memory" / name, root / "pids" / name)

    @classmethod
    def detect(cls, owner: str) -> Cgroups | None:
        if os.geteuid() != 0:
            return None
        cg = cls(owner)
        try:
            for p in cg.parents:
                p.mkdir(exist_ok=True)
            if cg.v2:
                (ROOT / "cgroup.subtree_control").write_text("+memory +pids")
                (cg.parents[0] / "cgroup.subtree_control").write_text("+memory +pids")
            cg.reap_stale()
            probe = cg.create("probe", memory_bytes=64 << 20, pids=8)
            probe.remove()
        except OSError:
            return None
        return cg

    def reap_stale(self) -> int:
        """Kill what a previous, crashed server left running and remove its cgroups; returns how many."""
        removed = 0
        for parent in self.parents:
            for d in [p for p in parent.iterdir() if p.is_dir()]:
                with contextlib.suppress(OSError, ValueError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), 9)
                RunCgroup((d,), d, self.v2).remove()
                removed += 1
        return removed

    def close(self) -> None:
        for parent in self.parents:
            with contextlib.suppress(OSError):
                parent.rmdir()

    def create(self, name: str, *, memory_bytes: int, pids: int) -> RunCgroup:
        dirs = tuple(p / name for p in self.parents)
        for d in dirs:
            d.mkdir(exist_ok=True)
        if self.v2:
            d = dirs[0]
            (d / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(pids))
            return RunCgroup(dirs, d, True)
        mem, pid = dirs
        (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):  # only where swap accounting is on
            (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (pid / "pids.max").write_text(str(pids))
        return RunCgroup(dirs, mem, False)
