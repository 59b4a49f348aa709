"""Monaco's seccomp profile for sandbox pods, stricter than the runtime's default: the one source of truth.

`python -m monaco.core.seccomp` (from the repository root) writes it into the chart (helm/monaco/files/seccomp/), and
tests/test_seccomp.py fails when that copy drifts from `render()`. With the chart's
`sandbox.seccompProfile: monaco/sandbox-v1.json` the kubelet hands it to the container runtime as a
Localhost profile; `python -m monaco.core.seccomp install SRC DEST` is what the chart's
`seccompInstaller` DaemonSet runs to put the file on every node (and `check SRC DEST` its probe).

An allowlist, not a denylist: it replaces RuntimeDefault, so it must stand on its own, and a syscall
that a future kernel adds (as io_uring was, in 5.1) stays closed until someone opens it here. The list
is what RuntimeDefault (containerd's and Docker's profile) allows a container without capabilities --
every sandbox drops them all -- less io_uring, tracing and the other calls that `api/local/nsrun.c`
refuses on the local back end. A syscall outside the list fails with EPERM, as under RuntimeDefault;
runc answers ENOSYS for numbers above the highest one the profile names, so that libc falls back
from calls it does not know, and `clone3` answers ENOSYS so that libc falls back to `clone`, whose
flags the filter can see.

The format is the OCI runtime spec's LinuxSeccomp, which containerd reads for a Localhost profile as
is; CRI-O reads the same fields, and a Security Profiles Operator SeccompProfile takes all but
defaultErrnoRet (whose value, EPERM, is the runtimes' default anyway). Native architectures only: on
x86_64 the i386 (`int 0x80`) and x32 entry points stay shut, on aarch64 the 32-bit arm one (runc kills
a process that uses them with SIGSYS: tried with runc 1.1.5).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

FILE_NAME = "sandbox-v1.json"
# The chart ships its profiles here and the installer copies them to <kubelet root>/seccomp/monaco/.
CHART_DIR = Path("helm/monaco/files/seccomp")
# What sandbox.seccompProfile names: the path under the kubelet's seccomp root.
LOCALHOST_PROFILE = f"monaco/{FILE_NAME}"
OUTPUTS = (CHART_DIR / FILE_NAME,)  # relative to the repository root

EPERM, ENOSYS = 1, 38  # the same numbers on x86_64 and aarch64
AF_VSOCK = 40
CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
# personality(2) values RuntimeDefault allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# What a program may call, by concern. x86_64 names that aarch64 lacks (open, stat, fork ...) are
# harmless there: a runtime skips a name its architecture does not have.
ALLOWED: dict[str, tuple[str, ...]] = {
    "files": (
        "access", "chdir", "chmod", "chown", "close", "close_range", "copy_file_range", "creat", "dup", "dup2",
        "dup3", "faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown",
        "fchownat", "fcntl", "fdatasync", "flock", "fstat", "fstatfs", "fsync", "ftruncate", "futimesat",
        "getcwd", "getdents", "getdents64", "lchown", "link", "linkat", "lseek", "lstat", "mkdir", "mkdirat",
        "mknod", "mknodat", "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "pread64", "preadv",
        "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
        "rename", "renameat", "renameat2", "rmdir", "sendfile", "splice", "stat", "statfs", "statx", "symlink",
        "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "umask", "unlink", "unlinkat",
        "utime", "utimensat", "utimes", "vmsplice", "write", "writev",
    ),
    "extended attributes": (
        "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr", "listxattr", "llistxattr",
        "lremovexattr", "lsetxattr", "removexattr", "setxattr",
    ),
    "waiting on files, pipes and events": (
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
        "eventfd2", "fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
        "pipe", "pipe2", "poll", "ppoll", "pselect6", "select", "signalfd", "signalfd4", "timerfd_create",
        "timerfd_gettime", "timerfd_settime",
    ),
    "asynchronous I/O (the old interface; io_uring is refused)": (
        "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit",
    ),
    "memory": (
        "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock", "mlock2", "mlockall",
        "mmap", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free",
        "pkey_mprotect", "remap_file_pages",
    ),
    "processes and threads": (
        "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "get_robust_list",
        "getcpu", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrlimit", "getrusage", "getsid",
        "gettid", "ioprio_get", "ioprio_set", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64",
        "process_mrelease", "restart_syscall", "rseq", "sched_get_priority_max", "sched_get_priority_min",
        "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
        "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
        "set_robust_list", "set_tid_address", "setpgid", "setpriority", "setrlimit", "setsid", "vfork", "wait4",
        "waitid",
    ),
    "identity (no capabilities: only to ids the process already has)": (
        "getegid", "geteuid", "getgid", "getgroups", "getresgid", "getresuid", "getuid", "setfsgid", "setfsuid",
        "setgid", "setgroups", "setregid", "setresgid", "setresuid", "setreuid", "setuid",
    ),
    "signals": (
        "kill", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
        "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack", "tgkill", "tkill",
    ),
    "time and timers": (
        "adjtimex", "alarm", "clock_adjtime", "clock_getres", "clock_gettime", "clock_nanosleep", "getitimer",
        "gettimeofday", "nanosleep", "setitimer", "time", "timer_create", "timer_delete", "timer_getoverrun",
        "timer_gettime", "timer_settime", "times",
    ),
    "futexes": ("futex", "futex_waitv"),
    "sockets (the pod's network namespace and NetworkPolicy bound where they lead)": (
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recvfrom",
        "recvmmsg", "recvmsg", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socketpair",
    ),
    "System V and POSIX IPC (the pod's own IPC namespace)": (
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "msgctl", "msgget",
        "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "shmat", "shmctl", "shmdt", "shmget",
    ),
    "the system, read only": ("getrandom", "sysinfo", "uname"),
    "restricting oneself further": ("landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self"),
    "terminals and devices": ("ioctl",),
}

# What the profile refuses (EPERM, its default) and why, for readers and tests: none of these is in
# ALLOWED. They are not rules of the JSON: a rule with the default's action is redundant (runc 1.1+
# and crun skip it; runc 1.0 refuses the whole profile over it).
DENIED: dict[str, tuple[str, ...]] = {
    "io_uring: a second syscall interface the filter cannot see into, and a long run of kernel bugs": (
        "io_uring_enter", "io_uring_register", "io_uring_setup",
    ),
    "other processes' memory and execution (the runner judges from outside the program's reach)": (
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    ),
    "new namespaces (user namespaces above all); clone with namespace flags is refused below": (
        "setns", "unshare",
    ),
    "kernel keyrings, which are not namespaced": ("add_key", "keyctl", "request_key"),
    "kernel attack surface no judged program needs": (
        "bpf", "fanotify_init", "lookup_dcookie", "modify_ldt", "perf_event_open", "userfaultfd",
    ),
    "mounts and roots": (
        "chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount", "open_tree",
        "pivot_root", "quotactl", "quotactl_fd", "umount2",
    ),
    "the machine (RuntimeDefault refuses these too)": (
        "acct", "clock_settime", "delete_module", "finit_module", "init_module", "ioperm", "iopl", "kexec_file_load",
        "kexec_load", "open_by_handle_at", "reboot", "setdomainname", "sethostname", "settimeofday", "swapoff",
        "swapon", "syslog", "vhangup",
    ),
    "memory placement across NUMA nodes": (
        "get_mempolicy", "mbind", "migrate_pages", "move_pages", "set_mempolicy",
    ),
}


def allowed_names() -> list[str]:
    return sorted({name for group in ALLOWED.values() for name in group})


def denied_names() -> list[str]:
    return sorted({name for group in DENIED.values() for name in group})


def render() -> dict[str, Any]:
    """The profile as the OCI runtime spec's LinuxSeccomp."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": allowed_names(), "action": "SCMP_ACT_ALLOW"},
            # clone only without namespace flags (anything else falls to the default: EPERM)
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            # clone3 passes its flags in memory the filter cannot read: "not implemented", and libc uses clone
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            # every address family but vsock, which reaches the hypervisor past the network namespace
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
            *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]} for value in PERSONALITIES),
        ],
    }


def render_json() -> str:
    return json.dumps(render(), indent=2) + "\n"


def write(root: Path) -> list[Path]:
    written = []
    for rel in OUTPUTS:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_json())
        written.append(path)
    return written


def install(src: Path, dest: Path) -> list[Path]:
    """Copy every profile in `src` (the installer's ConfigMap) into `dest`, each by an atomic rename, so
    that a runtime reading a profile while a new one lands never sees half of it."""
    installed = []
    for profile in sorted(src.glob("*.json")):
        json.loads(profile.read_text())  # never install what no runtime could parse
        target = dest / profile.name
        partial = dest / f".{profile.name}.partial"
        partial.write_bytes(profile.read_bytes())
        os.chmod(partial, 0o644)
        os.replace(partial, target)
        installed.append(target)
    return installed


def installed(src: Path, dest: Path) -> bool:
    """Whether every profile in `src` is in `dest`, byte for byte (the installer's startup probe)."""
    return all((dest / p.name).is_file() and (dest / p.name).read_bytes() == p.read_bytes() for p in src.glob("*.json"))


def _install_and_wait(src: Path, dest: Path) -> int:
    """The DaemonSet's container: install, then stay up (a DaemonSet pod that exits is restarted) until
    told to stop. A ConfigMap change rolls the pods (a checksum annotation), which install again."""
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # waited for below: PID 1 has no default action
    for path in install(src, dest):
        print(f"installed {path}", flush=True)
    signal.sigwait(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["install"], ["check"]):
        if len(args) != 3:
            print(f"usage: python -m monaco.core.seccomp {args[0]} SRC DEST", file=sys.stderr)
            return 2
        src, dest = Path(args[1]), Path(args[2])
        return _install_and_wait(src, dest) if args[0] == "install" else int(not installed(src, dest))
    for path in write(Path(args[0]) if args else Path.cwd()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
