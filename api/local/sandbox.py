"""The local sandbox: runs one phase of the runner with what Linux offers without a daemon.

Each phase gets new network (loopback only, and down: no network at all), PID, mount, IPC and UTS
namespaces; with nsrun (MONACO_SANDBOX=auto), a root file system of its own holding only the toolchains
and what README.md's "What a program sees" lists, with size-limited tmpfs mounts for every writable
place (/tmp, /var/tmp, /dev/shm); the build dir bound read-only for the run; an unprivileged uid of its
own per worker slot with every capability dropped, no_new_privs and a seccomp filter; an empty
environment; rlimits set by the runner; and memory and pids cgroups. The runner is PID 1 of the
namespace, so when it exits the kernel kills whatever the program left behind. MONACO_SANDBOX=unshare
is the weaker path (the host's file system read-only, no seccomp), only when asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monaco.core.envelope import EnvelopeError, PhaseResult, parse, parse_all
from monaco.core.languages import SANDBOX_PATH, Language
from monaco.core.models import Limits, RunSpec
from monaco.core.native import NativeMissing, binary
from monaco.core.phase import RUN, RUNNER_MEMORY_MB, Enforcement, Layout, phase_env, phase_limits, source_files
from monaco.core.settings import Settings

from .cgroups import Cgroups, RunCgroup
from .cleanup import Remover, mount_tmpfs, remove_tree, unmount

log = logging.getLogger("monaco.sandbox")

# A program may scribble into the runner's stdout while it lives; the envelope is always last, so keep
# only the tail of what the runner printed.
_KEEP_TAIL = 1 << 20
_INSIDE = "/tmp/.monaco"  # where a run's source, runner and build dir appear inside its sandbox
# After a phase's time limit and this grace, whatever of the program still lives is killed from outside
# (see RunCgroup.kill_all_but_init), so that the runner reports a timeout before the hard deadline.
_OVERDUE_GRACE = 2.0
# The namespaces of the unshare path (nsrun makes the same ones itself); the new PID namespace's /proc is
# mounted by _INNER.
_NAMESPACES = ("--net", "--pid", "--ipc", "--uts", "--mount", "--fork", "--kill-child")

# Runs as root inside the new namespaces: private mounts, then drop to the sandbox uid and exec the
# runner with an empty environment ("$@" is `env -i K=V ... /tmp/.monaco/src/monaco-init PHASE`).
# /proc: the new PID namespace's own; where the kernel refuses one (in a user namespace inside a container,
# whose runtime masks parts of its /proc), an empty read-only tmpfs, so that no outer process shows.
# $SB_HIDE, the service's dirs (its database, every run's dir), are covered by an empty tmpfs once the
# run's own dirs are bound: in a user namespace a program is the service's uid outside, its files' owner.
_INNER = r"""
set -e
m() { mount -t tmpfs -o "size=$1,mode=1777,nosuid,nodev" tmpfs "$2"; }
mount -t proc -o nosuid,nodev,noexec proc /proc 2>/dev/null || mount -t tmpfs -o size=4k,mode=0555,ro tmpfs /proc
m "${SB_TMP_MB}m" /tmp
for d in /var/tmp /dev/shm /run/lock /dev/mqueue; do [ -d "$d" ] && m 1m "$d"; done
mkdir -m 0755 /tmp/.monaco /tmp/.monaco/src /tmp/.monaco/build
b() { mount --bind "$1" "$2"; if [ "$3" = ro ]; then mount -o remount,bind,ro,nosuid,nodev "$2"; fi; }
b "$SB_BASE/src" /tmp/.monaco/src ro
b "$SB_BASE/build" /tmp/.monaco/build "$([ "$SB_PHASE" = run ] && echo ro || echo rw)"
IFS=:
for d in $SB_HIDE; do [ -d "$d" ] && mount -t tmpfs -o size=4k,mode=0555,ro tmpfs "$d"; done
unset IFS
if [ -n "${SB_UID:-}" ]; then
  exec setpriv --reuid="$SB_UID" --regid="$SB_UID" --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs -- "$@"
fi
exec setpriv --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
"""
# Joins the phase's cgroups, then becomes the namespace builder.
_OUTER = r'for d in $SB_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 111; done; exec "$@"'


# What a container needs for the user-namespace sandbox (the README's `docker run` line).
_ALLOW_NAMESPACES = (
    "allow user namespaces: with Docker add `--security-opt seccomp=unconfined` (its default seccomp profile refuses "
    "them), in a Kubernetes pod `securityContext.seccompProfile.type: Unconfined`; on a host, enable unprivileged "
    "user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone) or run as root"
)


class SandboxUnavailable(RuntimeError):
    """No isolation is possible here; the message says what to do."""


@dataclass(frozen=True)
class PhaseRun:
    result: PhaseResult | None
    memory_kb: int | None
    oom_killed: bool
    error: str = ""
    cases: tuple[PhaseResult, ...] = ()  # with test cases: every case's envelope, in order


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root_dir = settings.sandboxes
        self.mode = "none"
        self.cgroups: Cgroups | None = None
        self._init = self.root_dir / "monaco-init"
        self._unshare = shutil.which("unshare") or "unshare"
        self._nsrun: Path | None = None
        self.proc = True  # whether programs get a /proc of their own (unshare: not in a container's user namespace)
        self._remover = Remover(self.root_dir)
        hidden = (settings.data_dir, settings.sandboxes, settings.database.parent)
        self._hidden = ":".join(dict.fromkeys(str(d.resolve()) for d in hidden))

    # ---- start-up
    def prepare(self) -> None:
        self._check_dir()
        # Private to the service: each sandbox sees only its own run, bound in at /tmp/.monaco.
        self.root_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root_dir, 0o700)
        # Nothing runs yet: whatever dirs are here were left by a crash. Only moved aside now; removed
        # in the background, so that no tree a program made can keep the service from starting.
        self._remover.discard_stale()
        self.mode = self._choose_mode()
        try:  # the runner, PID 1 of every sandbox: hard-linked into each run's src/
            runner = binary("monaco-init")
        except NativeMissing as exc:
            raise SandboxUnavailable(str(exc)) from None
        tmp_init = self._init.with_suffix(".tmp")
        shutil.copyfile(runner, tmp_init)
        os.chmod(tmp_init, 0o555)
        tmp_init.rename(self._init)
        if self.mode in ("nsrun", "unshare-root"):
            self.cgroups = Cgroups.detect(str(self.root_dir.resolve()))
        log.info(
            "sandbox ready",
            extra={"mode": self.mode, "cgroups": bool(self.cgroups), "dir": str(self.root_dir)},
        )

    def check(self) -> str:
        """The mode MONACO_SANDBOX asks for, once it is known to work here, or SandboxUnavailable saying why
        not in one line (`monaco serve` checks this before it starts). Never a fallback to something weaker."""
        self._check_dir()
        if self.settings.sandbox != "none":
            try:  # the runner: a build step of the image or the install, never compiled here
                binary("monaco-init")
            except NativeMissing as exc:
                raise SandboxUnavailable(str(exc)) from None
        wanted = self.settings.sandbox
        if wanted == "auto":
            self._nsrun = self._working_nsrun()
            return "nsrun"
        if wanted == "unshare":
            return self._unshare_mode()
        if self.settings.allow_unisolated:
            return "none"
        raise SandboxUnavailable(
            "MONACO_SANDBOX=none runs programs without any isolation: set MONACO_ALLOW_UNISOLATED=true too, "
            "and only on a throwaway development machine"
        )

    def _check_dir(self) -> None:
        resolved = self.root_dir.resolve()
        for hidden in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
            if resolved.is_relative_to(hidden):
                raise SandboxUnavailable(
                    f"MONACO_SANDBOX_DIR={self.root_dir} is under {hidden}, which every sandbox covers with its "
                    "own tmpfs; choose a directory elsewhere (the default is $MONACO_DATA_DIR/sandboxes)"
                )

    def _choose_mode(self) -> str:
        mode = self.check()
        if mode.startswith("unshare"):
            no_cgroups = "; and, without root, no cgroups (memory is bounded by RLIMIT_AS only)"
            log.warning(
                "MONACO_SANDBOX=unshare: a weaker sandbox than nsrun's, as asked. Programs see the host's "
                "file system read-only (its files, unix sockets under /run, /dev with the host's ptys and "
                "mqueue, /sys) and have no seccomp filter (tracing, new namespaces, io_uring, vsock)"
                + (no_cgroups if mode == "unshare-user" else ""),
                extra={"mode": mode},
            )
            if not self.proc:
                log.warning(
                    "programs get an empty /proc: the kernel refuses a new one in a user namespace where the "
                    "container's /proc is masked. Python, C and C++ do not mind; to give programs their own /proc "
                    "(a JVM wants one), add `--security-opt systempaths=unconfined` to `docker run` "
                    "(Kubernetes: securityContext.procMount: Unmasked)",
                    extra={"mode": mode},
                )
        elif mode == "none":
            log.critical(
                "RUNNING SUBMISSIONS WITHOUT ISOLATION (MONACO_SANDBOX=none, MONACO_ALLOW_UNISOLATED=true): "
                "programs have the network, the file system and the environment of the service's own user. "
                "Never expose this."
            )
        return mode

    def _working_nsrun(self) -> Path:
        """The installed nsrun, once it has built a sandbox here; SandboxUnavailable says why not."""
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "MONACO_SANDBOX=auto needs root (nsrun makes namespaces, mounts and cgroups and switches to the "
                "sandbox uids): run Monaco as root, or set MONACO_SANDBOX=unshare to accept the weaker "
                "user-namespace sandbox"
            )
        try:
            nsrun = binary("nsrun")
        except NativeMissing as exc:
            raise SandboxUnavailable(f"MONACO_SANDBOX=auto: {exc}") from None
        self.root_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = self.root_dir / ".probe"
        remove_tree(probe)
        (probe / "src").mkdir(parents=True)
        (probe / "build").mkdir()
        argv = [str(nsrun), str(probe), "run", str(self.settings.sandbox_uid_base), "1", "", "--", "/bin/true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={"PATH": SANDBOX_PATH})
            said = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            failure = "" if done.returncode == 0 else said[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = str(exc)
        finally:
            remove_tree(probe)
        if failure:
            raise SandboxUnavailable(f"MONACO_SANDBOX=auto: {nsrun} cannot build a sandbox here: {failure}")
        return nsrun

    def _unshare_mode(self) -> str:
        if os.geteuid() == 0:
            mode, argv = "unshare-root", [self._unshare, *_NAMESPACES]
        else:
            mode, argv = "unshare-user", [self._unshare, "--user", "--map-root-user", *_NAMESPACES]
        failure = self._probe([*argv, "true"])
        if failure is not None:
            raise SandboxUnavailable(
                f"MONACO_SANDBOX=unshare: `unshare` cannot create {'user, ' if mode == 'unshare-user' else ''}network, "
                f"PID and mount namespaces here ({failure}): {_ALLOW_NAMESPACES}"
            )
        self.proc = self._probe([*argv, "/bin/sh", "-c", "mount -t proc proc /proc"]) is None
        return mode

    def _probe(self, argv: list[str]) -> str | None:
        """None when `argv` succeeds, else the last line it said."""
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env={"PATH": SANDBOX_PATH})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        said = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return None if done.returncode == 0 else said[-1]

    def close(self) -> None:
        self._remover.stop()
        if self.cgroups is not None:
            self.cgroups.close()

    # ---- one submission
    def workspace(self, submission_id: str, code: str, stdin: str, language: Language,
                  spec: RunSpec | None = None) -> Path:
        base: Path = self.root_dir / submission_id
        unmount(base / "build")
        shutil.rmtree(base, ignore_errors=True)
        (base / "src").mkdir(parents=True)
        (base / "build").mkdir()
        if self.mode == "nsrun":
            # The compile phase writes here: a tmpfs of the compile's output-file size bounds it as a build
            # emptyDir's sizeLimit does on Kubernetes (its pages count to the compile's memory cgroup), where
            # the host's disk would bound nothing (a javac of many classes wrote 208 MB before it failed).
            mount_tmpfs(base / "build", int(language.compile_limits.output_file_mb))
        os.chmod(base / "src", 0o755)
        for name, text in source_files(language, code, stdin, spec or RunSpec()).items():
            (base / "src" / name).write_text(text)
        for f in (base / "src").iterdir():
            os.chmod(f, 0o644)
        os.link(self._init, base / "src" / "monaco-init")  # the runner, bound in with src/
        return base

    def cleanup(self, base: Path) -> None:
        unmount(base / "build")
        self._remover.discard(base)

    def uid_for(self, slot: int) -> int | None:
        return self.settings.sandbox_uid_base + slot if self.mode in ("nsrun", "unshare-root") else None

    async def run_phase(
        self,
        base: Path,
        language: Language,
        phase: str,
        limits: Limits,
        slot: int,
        cancel: asyncio.Event | None = None,
        spec: RunSpec | None = None,
    ) -> PhaseRun:
        uid = self.uid_for(slot)
        cases = len(spec.test_cases) if spec is not None and phase == RUN else 0
        isolated = self.mode != "none"
        layout = Layout(
            src=f"{_INSIDE}/src" if isolated else str(base / "src"),
            build=f"{_INSIDE}/build" if isolated else str(base / "build"),
            work="/tmp/work" if isolated else str(base / "work"),
            tmp="/tmp" if isolated else str(base / "tmp"),
            scratch=("/tmp", "/var/tmp", "/dev/shm") if isolated else (str(base / "tmp"),),
        )
        if not isolated:
            (base / "tmp").mkdir(exist_ok=True)
        enforcement = Enforcement(memory_cgroup=self.cgroups is not None, own_uid=uid is not None,
                                  runner_reads_cgroup=False)
        pl = phase_limits(language, phase, limits, enforcement, self.settings.sandbox_tmp_mb)
        timeout = pl.timeout_seconds * max(1, cases)  # the cases run one after the other
        if uid is not None and phase == "compile":
            os.chown(base / "build", uid, uid)
        runner_env = {
            "PATH": SANDBOX_PATH,
            **phase_env(language, phase, limits, output_limit=self.settings.output_limit_bytes, layout=layout,
                        enforcement=enforcement, scratch_mb=self.settings.sandbox_tmp_mb, spec=spec),
        }
        runner = f"{layout.src}/monaco-init"
        inner_cmd = ["env", "-i", *(f"{k}={v}" for k, v in runner_env.items()), runner, phase]
        cg = None
        if self.cgroups is not None:
            cg = await asyncio.to_thread(
                self.cgroups.create,
                # Not named after the submission: every sandbox can list /sys/fs/cgroup, and an id is
                # all it takes to read a submission's result.
                f"{secrets.token_hex(8)}-{phase}",
                memory_bytes=(pl.memory_mb + RUNNER_MEMORY_MB) << 20,
                pids=pl.processes + 16,
            )
        outer_env = {
            "PATH": SANDBOX_PATH,
            "SB_TMP_MB": str(self.settings.sandbox_tmp_mb),
            "SB_PHASE": phase,
            "SB_BASE": str(base),
            "SB_UID": "" if uid is None else str(uid),
            "SB_HIDE": self._hidden,
            "SB_CGROUPS": " ".join(str(d) for d in cg.dirs) if cg else "",
        }
        if self.mode == "nsrun":
            assert self._nsrun is not None and uid is not None
            cgroups = ":".join(str(d) for d in cg.dirs) if cg else ""
            tmp_mb = str(self.settings.sandbox_tmp_mb)
            argv = [str(self._nsrun), str(base), phase, str(uid), tmp_mb, cgroups, "--", runner, phase]
            outer_env = runner_env
        elif self.mode == "unshare-root":
            argv = ["/bin/sh", "-c", _OUTER, "sb", self._unshare, *_NAMESPACES, "/bin/sh", "-c", _INNER, "sb",
                    *inner_cmd]
        elif self.mode == "unshare-user":
            argv = [self._unshare, "--user", "--map-root-user", *_NAMESPACES, "/bin/sh", "-c", _INNER, "sb",
                    *inner_cmd]
        else:
            argv = inner_cmd
        overdue = asyncio.ensure_future(self._kill_overdue(cg, timeout + _OVERDUE_GRACE)) if cg else None
        try:
            out, err = await self._spawn(argv, outer_env, timeout + 10, cancel, max(1, cases))
        finally:
            if overdue is not None:
                overdue.cancel()
            memory_kb, oom = (None, False)
            if cg is not None:
                memory_kb, oom = await asyncio.to_thread(cg.stats)
                await asyncio.to_thread(cg.remove)
        if out is None:
            return PhaseRun(None, memory_kb, oom, error=err)
        try:
            every = tuple(parse_all(out)) if cases else (parse(out),)
        except EnvelopeError as exc:
            detail = err.strip().splitlines()[-1:] if err else []
            return PhaseRun(None, memory_kb, oom, error=f"{exc}{': ' + detail[0] if detail else ''}")
        return PhaseRun(every[-1], memory_kb, oom, cases=every if cases else ())

    async def _kill_overdue(self, cg: RunCgroup, after: float) -> None:
        """A safety net: the runner's own deadline is out of the program's reach, but should the runner be
        stuck (a process the kernel will not kill at once), end the program's processes from outside."""
        await asyncio.sleep(after)
        killed = await asyncio.to_thread(cg.kill_all_but_init)
        if killed:
            log.warning("killed an overdue program from outside its sandbox", extra={"processes": killed})

    async def _spawn(
        self, argv: list[str], env: dict[str, str], hard_timeout: float, cancel: asyncio.Event | None,
        envelopes: int = 1,
    ) -> tuple[bytes | None, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None

        # The envelope carries both streams' captures in base64 (4/3 of up to the output limit each).
        keep = _KEEP_TAIL + 3 * self.settings.output_limit_bytes * envelopes

        async def tail(stream: asyncio.StreamReader) -> bytes:
            buf = bytearray()
            while chunk := await stream.read(65536):
                buf += chunk
                if len(buf) > 2 * keep:
                    del buf[: len(buf) - keep]
            return bytes(buf[-keep:])

        reading = asyncio.gather(tail(proc.stdout), tail(proc.stderr), proc.wait())
        waiters: list[asyncio.Future[Any]] = [reading]
        cancelled = None
        if cancel is not None:
            cancelled = asyncio.ensure_future(cancel.wait())
            waiters.append(cancelled)
        try:
            try:
                done, _ = await asyncio.wait(waiters, timeout=hard_timeout, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # the server is stopping: the sandbox must not outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                reading.cancel()
                raise
            if reading in done:
                out, err, _code = reading.result()
                return out, err.decode("utf-8", "replace")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reading, 10)
            why = "cancelled" if cancelled is not None and cancelled in done else "the sandbox did not finish in time"
            return None, why
        finally:
            if cancelled is not None:
                cancelled.cancel()
