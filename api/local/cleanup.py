"""Removing a run's files, whatever tree its program made, without ever holding up the service.

In the compile phase a program writes its build dir (a tmpfs of its own under the nsrun sandbox,
unmounted first here; the host's disk in the other modes), and can fill it with a tree deeper than
Python's recursion limit or PATH_MAX (a Java package 1,100 levels deep is one `javac`), names of any
bytes but '/' and NUL, dirs of mode 000 and read-only files. `remove_tree` handles all of these without
recursion, with a bounded number of open dirs, and never follows a link. `Remover` moves a run's dir
aside at once (one rename), removes it, and leaves whatever it could not remove to a background thread
that retries with backoff and logs; start-up only renames (and detaches mounts a dead process left).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import secrets
import threading
from pathlib import Path

log = logging.getLogger("monaco.sandbox")

GONE = ".gone-"  # a dir being removed, in the sandboxes dir
_UP = ".up-"  # an entry moved up into the tree's top dir
_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN = 64  # dirs open at once while removing a tree
_RETRY_FIRST, _RETRY_MAX = 1.0, 600.0


def remove_tree(top: Path) -> None:
    """Remove `top` and everything below it, or raise OSError.

    A depth-first walk that holds at most _MAX_OPEN dirs open: a dir found deeper than that is moved
    up into `top` (a rename, on one file system) and walked from there later. Each dir is made
    writable before it is entered.
    """
    try:
        fd = os.open(top, _OPEN)
    except FileNotFoundError:
        return
    except OSError:
        if top.is_dir() and not top.is_symlink():
            raise
        top.unlink()  # a file or a link, never followed
        return
    try:
        os.fchmod(fd, 0o700)
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(top)


def _empty(top_fd: int) -> None:
    stack: list[tuple[int, str, list[str]]] = [(top_fd, "", _files_gone(top_fd))]  # (dir, its name, subdirs left)
    moved = 0
    try:
        while stack:
            fd, name, subdirs = stack[-1]
            if not subdirs:
                stack.pop()
                if stack:
                    os.close(fd)
                    os.rmdir(name, dir_fd=stack[-1][0])
                continue
            child = subdirs.pop()
            os.chmod(child, 0o700, dir_fd=fd)  # a dir of mode 000 is the program's to make (and ours to undo)
            if len(stack) < _MAX_OPEN:
                child_fd = os.open(child, _OPEN, dir_fd=fd)
                stack.append((child_fd, child, _files_gone(child_fd)))
                continue
            while True:  # a free name in top: the program may have made names like ours
                moved += 1
                up = f"{_UP}{moved}"
                try:
                    os.stat(up, dir_fd=top_fd, follow_symlinks=False)
                except FileNotFoundError:
                    break
            os.rename(child, up, src_dir_fd=fd, dst_dir_fd=top_fd)
            stack[0][2].append(up)
    finally:
        for fd, _, _ in stack[1:]:
            os.close(fd)


def _files_gone(fd: int) -> list[str]:
    """Unlink everything in dir `fd` but its subdirs, and return their names."""
    subdirs = []
    for entry in list(os.scandir(fd)):
        if entry.is_dir(follow_symlinks=False):
            subdirs.append(entry.name)
        else:
            os.unlink(entry.name, dir_fd=fd)
    return subdirs


_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(path: Path, size_mb: int) -> None:
    """Mount a tmpfs of `size_mb` MiB (and as many inodes as 4 KiB files would fill) on `path`: a run's build
    dir under nsrun, which `unmount` detaches before its files are removed."""
    options = f"size={size_mb}m,nr_inodes={max(1024, size_mb * 256)},mode=0755".encode()
    if _libc().mount(b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount the build tmpfs on {path}: {os.strerror(err)}")


def unmount(path: Path) -> None:
    """Detach the file system mounted on `path`, if one is (a run's build tmpfs); never raises."""
    _libc().umount2(os.fsencode(path), _MNT_DETACH)


def unmount_under(root: Path) -> int:
    """Detach every mount below `root` (build tmpfs left by a process that died): how many."""
    top = os.fsencode(os.path.realpath(root)) + b"/"
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", "rb") as info:
        for line in info:
            point = line.split(b" ")[4].decode("unicode_escape").encode("latin-1")  # octal escapes, e.g. \040
            if point.startswith(top):
                found.append(point)
    for point in sorted(found, key=len, reverse=True):
        unmount(Path(os.fsdecode(point)))
    return len(found)


class Remover:
    """Removes run dirs under `root`; a failure is logged and retried later, never raised."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # dirs being removed by a caller right now
        self._retrying: threading.Thread | None = None
        self._stop = threading.Event()

    def discard(self, path: Path) -> None:
        """Move `path` out of the way and remove it; what cannot be removed now is retried in the background."""
        gone = self._aside(path)
        if gone is None:
            return
        with self._lock:
            self._busy.add(gone.name)
        try:
            remove_tree(gone)
        except OSError as exc:
            log.warning("could not remove a run's files; retrying in the background", extra={"dir": str(gone)})
            log.debug("removal failed", exc_info=exc)
            self.retry_in_background()
        finally:
            with self._lock:
                self._busy.discard(gone.name)

    def discard_stale(self) -> None:
        """At start-up: move every dir left by a previous process aside and remove them in the background."""
        unmount_under(self.root)
        for path in self.root.iterdir():
            if path.is_dir() and not path.is_symlink() and not path.name.startswith(GONE):
                self._aside(path)
        self.retry_in_background()

    def retry_in_background(self) -> None:
        with self._lock:
            if self._retrying is None or not self._retrying.is_alive():
                self._retrying = threading.Thread(target=self._retry, name="monaco-remover", daemon=True)
                self._retrying.start()

    def stop(self) -> None:
        self._stop.set()

    def _aside(self, path: Path) -> Path | None:
        gone = self.root / f"{GONE}{path.name}-{secrets.token_hex(4)}"
        try:
            path.rename(gone)
        except FileNotFoundError:
            return None
        except OSError:
            log.exception("could not move a run's dir aside; removing it in place", extra={"dir": str(path)})
            return path
        return gone

    def _left(self) -> list[Path]:
        with self._lock, contextlib.suppress(OSError):
            return [p for p in self.root.iterdir() if p.name.startswith(GONE) and p.name not in self._busy]
        return []

    def _retry(self) -> None:
        delay = _RETRY_FIRST
        while left := self._left():
            failed = 0
            for path in left:
                try:
                    remove_tree(path)
                except OSError:
                    failed += 1
                    log.exception("could not remove a run's files", extra={"dir": str(path)})
            if not failed:
                continue
            log.warning("run dirs left to remove; retrying", extra={"left": failed, "seconds": delay})
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, _RETRY_MAX)
