"""Removing a run's files works for any tree a program can make, and start-up never depends on it.

The attackers: a Java package 1,100 levels deep (one `javac`), and a C program run at compile time (a
language whose build runs code, as a build script does) that makes a tree 5,000 deep with odd names,
dirs of mode 000, read-only files, a FIFO and links pointing out at the host. Then the remover itself,
on such trees, and on one it cannot remove (an immutable file), which must neither block nor fail
start-up and is retried until it goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monaco.api.app import create_app
from monaco.api.local.cleanup import GONE, Remover, remove_tree
from monaco.api.local.sandbox import Sandbox
from monaco.core.settings import Settings
from tests.conftest import TEST_ROOT, run_program, serve, summary
from tests.host_state import assert_host_clean, run_dirs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox (and chattr) need root")

DEPTH = 5000


def make_hostile_tree(top: Path, outside: Path) -> None:
    """What a program can leave in its build dir, made the way it would: relative to an open dir."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    chain = [fd]
    for level in range(DEPTH):  # far past PATH_MAX and Python's recursion limit
        os.mkdir("d", dir_fd=chain[-1])
        if level % 1000 == 0:
            odd = os.open(b"odd\nname\xff\x01", os.O_CREAT | os.O_WRONLY, 0o400, dir_fd=chain[-1])
            os.close(odd)
            os.mkfifo("fifo", dir_fd=chain[-1])
            os.symlink(str(outside), "link-out", dir_fd=chain[-1])
            os.symlink(str(outside / "file"), "file-link-out", dir_fd=chain[-1])
            os.link(outside / "file", "hard-link-out", dst_dir_fd=chain[-1])
        next_fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=chain[-1])
        if len(chain) > 50:  # as deep as it likes, with few fds open
            os.close(chain.pop(1))
        chain.append(next_fd)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(f"/proc/self/fd/{chain[-1]}/sock")
    os.mkdir("empty", 0o000, dir_fd=chain[-1])  # 000 dirs: empty at the bottom, full on the way
    for fd in chain[1:]:
        os.fchmod(fd, 0o000)
        os.close(fd)
    os.chmod("d", 0o000, dir_fd=chain[0])
    os.fchmod(chain[0], 0o500)
    os.close(chain[0])


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host dir beside the tree that links point at: its content must survive the tree's removal."""
    TEST_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = TEST_ROOT / f"outside-{uuid.uuid4().hex}"
    path.mkdir()
    (path / "file").write_text("keep me")
    try:
        yield path
    finally:
        remove_tree(path)


def assert_untouched(outside: Path) -> None:
    assert (outside / "file").read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["file"]


def test_remove_tree_removes_whatever_a_program_made(data_dir: Path, outside: Path) -> None:
    data_dir.mkdir(parents=True)
    tree = data_dir / "run"
    make_hostile_tree(tree, outside)
    started = time.monotonic()
    remove_tree(tree)
    assert not tree.exists()
    assert_untouched(outside)
    assert time.monotonic() - started < 10


def test_remove_tree_of_a_link_removes_the_link_only(data_dir: Path, outside: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "run").symlink_to(outside)
    remove_tree(data_dir / "run")
    assert not os.path.lexists(data_dir / "run")
    assert_untouched(outside)
    remove_tree(data_dir / "missing")  # nothing there: nothing to do


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def set_immutable(path: Path, on: bool) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
        flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags))
    finally:
        os.close(fd)


@needs_root
def test_start_up_neither_waits_for_nor_fails_on_stale_run_dirs(
    data_dir: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=data_dir)
    sandboxes = settings.sandboxes
    sandboxes.mkdir(parents=True)
    make_hostile_tree(sandboxes / "crashed-deep", outside)
    stuck = sandboxes / "crashed-stuck"
    stuck.mkdir()
    (stuck / "immutable").write_text("x")
    try:
        set_immutable(stuck / "immutable", True)
    except OSError as exc:
        pytest.skip(f"this file system has no immutable flag: {exc}")
    sandbox = Sandbox(settings)
    try:
        started = time.monotonic()
        sandbox.prepare()
        assert time.monotonic() - started < 2, "start-up waited for the stale dirs"
        assert not (sandboxes / "crashed-deep").exists() and not stuck.exists()  # moved aside at once

        def only_the_stuck_one_left() -> bool:
            return [n.rsplit("-", 1)[0] for n in run_dirs(settings)] == [f"{GONE}crashed-stuck"]

        deadline = time.monotonic() + 30
        while not only_the_stuck_one_left():
            assert time.monotonic() < deadline, run_dirs(settings)
            time.sleep(0.05)
        assert any("could not remove" in r.getMessage() for r in caplog.records)  # said, not raised
        (gone,) = [sandboxes / n for n in run_dirs(settings)]
        set_immutable(gone / "immutable", False)
        deadline = time.monotonic() + 30
        while run_dirs(settings):  # retried in the background until it goes
            assert time.monotonic() < deadline, run_dirs(settings)
            time.sleep(0.05)
        assert_untouched(outside)
    finally:
        sandbox.close()
        for path in sandboxes.glob("*/immutable"):
            with contextlib.suppress(OSError):
                set_immutable(path, False)


def test_remover_logs_and_retries_instead_of_raising(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    remover = Remover(data_dir)
    (data_dir / "run" / "sub").mkdir(parents=True)
    remover.discard(data_dir / "run")
    assert list(data_dir.iterdir()) == []
    remover.discard(data_dir / "never-was")  # gone already: nothing to do
    remover.stop()


# ---------------------------------------------------------------- through the real service

DEEP_JAVA = "package " + ".".join(["a"] * 1100) + ";\npublic class Main {\n" + (
    '  public static void main(String[] args) { System.out.println("deep"); }\n}\n'
)


@needs_root
@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
async def test_a_java_package_1100_levels_deep(settings: Settings) -> None:
    app = create_app(settings)
    async with serve(app) as client:
        result = await run_program(client, "java", DEEP_JAVA)
        assert result["verdict"] == "ok", summary(result)  # javac made build/a/a/.../a/Main.class, 1,100 deep
        assert result["output"] == "deep\n"
        await assert_host_clean(app, settings)
    started = time.monotonic()
    async with serve(create_app(settings)):  # and the next start is as quick as ever
        assert time.monotonic() - started < 10


TREE_IN_BUILD_DIR = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    int depth = 0;
    for (; depth < 5000; depth++) {
        if (depth % 1000 == 0) {
            close(open("odd\nname\xff", O_CREAT | O_WRONLY, 0400));
            mkfifo("fifo", 0600);
            symlink("OUTSIDE", "link-out");
            symlink("/", "root-link");
        }
        if (mkdir("d", 0700) != 0 || chdir("d") != 0) break;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "sock"};
    bind(s, (struct sockaddr *)&a, sizeof a);
    for (int i = 0; i < depth; i++) {  /* on the way up, every dir becomes 000 */
        chdir("..");
        chmod("d", 0);
    }
    printf("depth %d\n", depth);
    return 0;
}
"""


@pytest.fixture
def build_runs_code(settings: Settings, data_dir: Path) -> Settings:
    """A language whose compile step runs the program (as build scripts and macros do), in the build dir."""
    languages = yaml.safe_load(Path(__file__).resolve().parent.parent.joinpath("core/languages.yaml").read_text())
    # a copy of C without its Judge0 ids and Piston names, which the registry lets only one language have
    c = {k: v for k, v in languages["languages"]["c"].items() if k not in ("judge0Ids", "piston")}
    languages["languages"]["c-build-script"] = {**c, "compile": "gcc -O2 -o main main.c && ./main"}
    path = data_dir.parent / f"{data_dir.name}-languages.yaml"
    path.write_text(yaml.safe_dump(languages))
    settings.languages_file = path
    return settings


@needs_root
@pytest.mark.slow
@pytest.mark.languages
@pytest.mark.anyio
async def test_a_c_build_step_that_makes_a_5000_deep_tree_of_000_dirs(
    build_runs_code: Settings, outside: Path
) -> None:
    settings = build_runs_code
    app = create_app(settings)
    try:
        async with serve(app) as client:
            code = TREE_IN_BUILD_DIR.replace("OUTSIDE", str(outside))
            result = await run_program(client, "c-build-script", code)
            assert result["verdict"] == "ok", summary(result)
            assert "depth 5000" in result["compileOutput"], summary(result)
            await assert_host_clean(app, settings)
        assert_untouched(outside)
    finally:
        assert settings.languages_file is not None
        settings.languages_file.unlink()
