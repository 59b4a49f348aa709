"""Restart durability: a real `monaco serve` process is killed with work queued and running."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, server, wait_until_blocking

pytestmark = [pytest.mark.slow]



@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_work_queued_and_running_survives_a_restart(data_dir: Path, how: signal.Signals) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    long_run = {"code": "import time\ntime.sleep(1.5)\nprint('long')", "timeoutSeconds": 10}
    with server(data_dir, port, MAX_WORKERS="1") as proc:
        running = httpx.post(f"{base}/submit", json=long_run).json()["id"]
        queued = [httpx.post(f"{base}/submit", json={"code": f"print({i})"}).json()["id"] for i in range(5)]
        wait_until_blocking(
            lambda: httpx.get(f"{base}/status", params={"id": running}).json()["status"] == "running",
            10,
            "running",
            0.05,
        )
        assert httpx.get(f"{base}/queue-stats").json()["queue_stats"]["queue_length"] == 5
        proc.send_signal(how)
        proc.wait(15)

    db = data_dir / "db" / "monaco.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        states = dict(conn.execute("SELECT id, status FROM submissions").fetchall())
    assert states[running] == "running"
    assert all(states[q] == "queued" for q in queued)

    with server(data_dir, port, MAX_WORKERS="1"):
        ids = [running, *queued]

        def all_done() -> bool:
            return all(
                httpx.get(f"{base}/status", params={"id": i}).json()["status"] in ("completed", "failed") for i in ids
            )

        wait_until_blocking(all_done, 60, "every submission to finish after the restart", 0.05)
        results = {i: httpx.get(f"{base}/result", params={"id": i}).json() for i in ids}
        assert results[running]["output"] == "long\n" and results[running]["verdict"] == "ok"
        assert [results[q]["output"] for q in queued] == [f"{i}\n" for i in range(5)]
        assert httpx.get(f"{base}/queue-stats").json()["submissions"] == 6

    with contextlib.closing(sqlite3.connect(db)) as conn:
        attempts = dict(conn.execute("SELECT id, attempts FROM submissions").fetchall())
    # the interrupted one ran twice (once cut short), every other exactly once
    assert attempts[running] == 2
    assert all(attempts[q] == 1 for q in queued)


def test_a_run_interrupted_twice_ends_as_system_error(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sid = ""
    for _ in range(2):
        with server(data_dir, port, MAX_WORKERS="1") as proc:
            if not sid:
                sid = httpx.post(
                    f"{base}/submit", json={"code": "import time; time.sleep(20)", "timeoutSeconds": 30}
                ).json()["id"]
            wait_until_blocking(
                lambda sid=sid: httpx.get(f"{base}/status", params={"id": sid}).json()["status"] == "running",
                10,
                "running",
                0.05,
            )
            proc.kill()
            proc.wait(10)
    with server(data_dir, port, MAX_WORKERS="1"):
        result = httpx.get(f"{base}/result", params={"id": sid}).json()
        assert result["status"] == "failed" and result["verdict"] == "system_error"
        assert "stopped while this submission ran" in result["message"]


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def test_a_killed_server_takes_its_running_programs_with_it(data_dir: Path) -> None:
    """A server killed with SIGKILL mid-run: its sandboxes die with it, not when their programs end (an
    orphan would run on beside the restarted server's re-run of it, under the same worker's uid)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    marker = f"orphan-{uuid.uuid4().hex}"  # the program's argument: in its command line, for finding it
    long_run = {"code": "import time\ntime.sleep(14)", "timeoutSeconds": 15, "args": [marker]}
    with server(data_dir, port, MAX_WORKERS="1") as proc:
        sid = httpx.post(f"{base}/submit", json=long_run).json()["id"]
        wait_until_blocking(lambda: _processes_with(marker), 10, "the program to start", 0.05)
        proc.kill()
        proc.wait(15)
        wait_until_blocking(lambda: not _processes_with(marker), 3, "the sandbox to die with the server", 0.05)
        assert _mounts_under(data_dir), "the run's build tmpfs: left mounted by the killed server"
    with server(data_dir, port, MAX_WORKERS="1"):
        result = wait_until_blocking(
            lambda: (r := httpx.get(f"{base}/result", params={"id": sid}).json())["status"] in ("completed", "failed")
            and r, 40, "the interrupted run to be run again", 0.2)
        assert result["verdict"] == "ok", result
        # start-up detached what the dead server left mounted; the re-run's own goes with its files
        wait_until_blocking(lambda: not _mounts_under(data_dir), 10, "no build tmpfs left mounted", 0.05)


def _mounts_under(path: Path) -> list[str]:
    top = str(path.resolve()) + "/"
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if top in line]
