"""The runner's warm-pool modes (core/monaco-init.c): a job read from stdin, and a run that waits for compile."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from monaco.core import envelope
from monaco.core.native import binary
from monaco.operator.builders import job_frame
from monaco.operator.pool import ACCEPTED


def env_of(tmp: Path, command: str, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp), "MONACO_SRC_DIR": str(tmp / "src"),
            "MONACO_SOURCE_FILE": "main.sh", "MONACO_BUILD_DIR": str(tmp / "build"),
            "MONACO_WORK_DIR": str(tmp / "work"), "MONACO_COMMAND": command, **extra}


def runner(tmp: Path, args: list[str], command: str, stdin: bytes, **extra: str) -> bytes:
    return subprocess.run([str(binary("monaco-init")), *args], input=stdin, env=env_of(tmp, command, **extra),
                          capture_output=True, timeout=30, check=True).stdout


def test_a_job_from_stdin_is_acknowledged_then_run_with_its_stdin(tmp_path: Path) -> None:
    out = runner(tmp_path, ["run", "job"], "sh main.sh", job_frame('read x; echo "got $x"', "hi\n"))
    assert out.startswith(ACCEPTED + b"\n")
    result = envelope.parse(out)
    assert result.exit == 0 and result.stdout == b"got hi\n"


def test_a_short_or_malformed_job_runs_nothing(tmp_path: Path) -> None:
    for frame in (job_frame("touch ran", "")[:-3], b"MONACO-JOB v9 1 1\nab", b""):
        out = runner(tmp_path, ["run", "job"], "sh main.sh", frame)
        assert ACCEPTED not in out and envelope.parse(out).error.startswith("no job")
        assert not (tmp_path / "work" / "ran").exists()


def test_run_waits_for_the_compile_container_and_sees_its_fate(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    waiting = subprocess.Popen([str(binary("monaco-init")), "run", "after-compile"], stdout=subprocess.PIPE,
                               env=env_of(tmp_path, "cat $MONACO_BUILD_DIR/out", MONACO_NEEDS_COMPILE="1"))
    compiled = runner(tmp_path, ["compile", "job"], "cp main.sh $MONACO_BUILD_DIR/out", job_frame("echo hi", ""))
    assert envelope.parse(compiled).exit == 0
    out, _ = waiting.communicate(timeout=30)
    assert envelope.parse(out).stdout == b"echo hi"
    # a failed compile ends the wait too, and the run refuses to start
    for f in (tmp_path / "build").iterdir():
        f.unlink()
    waiting = subprocess.Popen([str(binary("monaco-init")), "run", "after-compile"], stdout=subprocess.PIPE,
                               env=env_of(tmp_path, "true", MONACO_NEEDS_COMPILE="1"))
    runner(tmp_path, ["compile", "job"], "exit 1", job_frame("x", ""))
    out, _ = waiting.communicate(timeout=30)
    assert "compile phase did not succeed" in envelope.parse(out).error
