"""Monaco's native binaries (core/native.py): built from the checkout, found when installed, or a clear error."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from monaco.core.native import HOW_TO_BUILD, NATIVES, NativeMissing, binary, build_all

REPO = Path(__file__).resolve().parent.parent
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}  # e_machine


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


def test_a_missing_binary_says_how_to_build_it() -> None:
    with pytest.raises(NativeMissing, match="nope is not built") as caught:
        binary("nope", package="monaco.core")
    assert HOW_TO_BUILD in str(caught.value)


def test_the_installed_launcher_is_found() -> None:
    nsrun = binary("nsrun")
    assert os.access(nsrun, os.X_OK)
    assert elf_machine(nsrun) == ELF_MACHINE[os.uname().machine]


def test_build_all_builds_what_is_there_and_rebuilds_what_is_stale(tmp_path: Path) -> None:
    (tmp_path / "api" / "local").mkdir(parents=True)
    shutil.copy(REPO / "api" / "local" / "nsrun.c", tmp_path / "api" / "local")
    (built,) = build_all(tmp_path)  # monaco-init.c is not in this tree: skipped, not an error
    assert built == tmp_path / "api" / "local" / "bin" / "nsrun"
    first = built.stat().st_mtime_ns
    assert build_all(tmp_path) == [built] and built.stat().st_mtime_ns == first  # up to date: kept
    source = tmp_path / "api" / "local" / "nsrun.c"
    os.utime(source, ns=(first + 10**9, first + 10**9))
    build_all(tmp_path)
    assert built.stat().st_mtime_ns > first
    (into,) = build_all(tmp_path, into=tmp_path / "lib")  # a wheel's build dir: package folders
    assert into == tmp_path / "lib" / "monaco" / "api" / "local" / "bin" / "nsrun"


@pytest.mark.skipif(not (REPO / "core" / "monaco-init.c").exists(), reason="core/monaco-init.c is not here yet")
def test_monaco_init_is_static() -> None:
    init = binary("monaco-init")
    assert elf_machine(init) == ELF_MACHINE[os.uname().machine]
    done = subprocess.run(["ldd", str(init)], capture_output=True, text=True)
    assert "not a dynamic executable" in done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None, reason="no aarch64 cross compiler")
def test_nsrun_builds_for_aarch64_with_its_own_seccomp_arch(tmp_path: Path) -> None:
    source = REPO / NATIVES[0].source
    out = tmp_path / "nsrun"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-Wall", "-Werror", "-o", str(out), str(source)], check=True)
    assert elf_machine(out) == ELF_MACHINE["aarch64"]
    macros = subprocess.run(
        ["aarch64-linux-gnu-gcc", "-E", "-dM", str(source)], check=True, capture_output=True, text=True
    ).stdout
    assert "#define SECCOMP_ARCH AUDIT_ARCH_AARCH64" in macros
