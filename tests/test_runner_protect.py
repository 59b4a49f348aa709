"""MONACO_SELF_PROTECT: where the runner shares the program's uid (a pod), the program cannot reach it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from monaco.core.envelope import parse
from monaco.core.languages import runner_script

PROBE = """
import os
for what, path, mode in (("mem", "/proc/1/mem", os.O_RDONLY), ("fd", "/proc/1/fd/1", os.O_WRONLY)):
    try:
        os.close(os.open(path, mode)); print(what, "OPEN")
    except OSError as e:
        print(what, type(e).__name__)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another uid")
@pytest.mark.parametrize("protect", ["0", "1"])
def test_the_program_cannot_open_the_runners_memory_or_stdout(protect: str) -> None:
    # not pytest's tmp_path: its parents are private to root, and the program runs as another uid
    tmp_path = Path("/var/lib/monaco-test") / f"protect-{uuid.uuid4().hex}"
    tmp_path.mkdir(parents=True)
    os.chmod(tmp_path.parent, 0o755)
    try:
        _check(tmp_path, protect)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check(tmp_path: Path, protect: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(PROBE)
    (src / "runner.sh").write_text(runner_script())
    os.chmod(tmp_path, 0o1777)
    for f in (src, *src.iterdir()):
        os.chmod(f, 0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "MONACO_SELF_PROTECT": protect,
        "MONACO_SRC_DIR": str(src),
        "MONACO_SOURCE_FILE": "main.py",
        "MONACO_BUILD_DIR": str(tmp_path / "build"),
        "MONACO_WORK_DIR": str(tmp_path / "work"),
        "MONACO_COMMAND": "exec /usr/bin/python3 main.py",
    }
    done = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "setpriv",
            "--reuid=61999",
            "--regid=61999",
            "--clear-groups",
            "/bin/sh",
            str(src / "runner.sh"),
            "run",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = parse(done.stdout).stdout.decode().splitlines()
    if protect == "1":
        assert lines == ["mem PermissionError", "fd PermissionError"]
    else:  # the test can fail: without protection the runner's stdout is open to the program
        assert "fd OPEN" in lines
