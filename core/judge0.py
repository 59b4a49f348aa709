"""Judge0 CE 1.13's view of a finished submission, from Monaco's result body (pure, no web framework).

Shared by the Judge0 API (api/compat/judge0.py), which answers with it, and by the callback senders of
both back ends (core/callback.py), which PUT it to a Judge0 client's callback_url as Judge0 does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from monaco.core.languages import Language

STATUSES: dict[int, str] = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
# Judge0's Status.find_runtime_error_by_status_code: the signal that ended the program -> status id
SIGNAL_STATUS = {11: 7, 25: 8, 8: 9, 6: 10}
VERDICT_STATUS = {
    "ok": 3,
    "wrong_answer": 4,
    "timeout": 5,
    "compile_error": 6,
    "memory_limit": 12,  # Judge0's memory cgroup kills the program (SIGKILL): Runtime Error (Other)
    "output_limit": 8,  # Judge0's max_file_size covers stdout: the program dies of SIGXFSZ
    "cancelled": 13,
    "system_error": 13,
}

# Judge0's SubmissionSerializer: every attribute, and the eight it sends when `fields` is left out
FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id", "created_at", "finished_at",
    "time", "memory", "stderr", "token", "number_of_runs", "cpu_time_limit", "cpu_extra_time", "wall_time_limit",
    "memory_limit", "stack_limit", "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output", "exit_code", "exit_signal",
    "message", "wall_time", "compiler_options", "command_line_arguments", "redirect_stderr_to_stdout",
    "callback_url", "additional_files", "enable_network", "status", "language",
)
DEFAULT_FIELDS = ("token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status")


def encode64(text: str) -> str:
    """Ruby's Base64.encode64, which Judge0 answers with: lines of 60 characters, each ending in a newline."""
    raw = text.encode()
    return "".join(base64.b64encode(raw[i : i + 45]).decode() + "\n" for i in range(0, len(raw), 45))


def status_id(result: dict[str, Any]) -> int:
    """The Judge0 status of a Monaco result (GET /result's body)."""
    verdict = result.get("verdict")
    if verdict is None:
        return 2 if result.get("status") == "running" else 1
    if verdict == "runtime_error":
        signal = result.get("signal")
        if signal:
            return SIGNAL_STATUS.get(signal, 12)
        return 11 if result.get("exitCode") not in (None, 0) else 12
    return VERDICT_STATUS.get(verdict, 13)


def _seconds(ms: Any) -> str | None:
    return None if ms is None else f"{ms / 1000:.3f}"


def judge0_name(language: Language) -> str:
    """How GET /languages names a language: `Python (3.11)`, as Judge0 names its `Python (3.8.1)`."""
    return f"{language.display_name} ({language.version})"


def from_monaco(
    result: dict[str, Any], *, fields: Iterable[str], base64_encoded: bool, language: Language | None
) -> dict[str, Any]:
    """A Monaco result -> the Judge0 submission with `fields`. Monaco keeps no copy of a submission's
    request fields (source_code, stdin, limits...): those are left out of the answer even when asked for."""
    sid = status_id(result)
    language_id = language.judge0_ids[0] if language and language.judge0_ids else None

    def text(key: str) -> str | None:
        value = result.get(key) or None
        return encode64(value) if value is not None and base64_encoded else value

    known: dict[str, Any] = {
        "token": result.get("id"),
        "language_id": language_id,
        "language": {"id": language_id, "name": judge0_name(language) if language else result.get("language")},
        "status_id": sid,
        "status": {"id": sid, "description": STATUSES[sid]},
        "stdout": text("output"),
        "stderr": text("stderr"),
        "compile_output": text("compileOutput"),
        "message": text("message"),
        "exit_code": result.get("exitCode"),
        "exit_signal": result.get("signal"),
        "time": _seconds(result.get("executionTimeMs")),
        "wall_time": _seconds(result.get("executionTimeMs")),
        "memory": result.get("memoryKb"),
        "created_at": result.get("queuedAt"),
        "finished_at": result.get("completedAt"),
    }
    return {field: known[field] for field in fields if field in known}


def callback_body(result: dict[str, Any]) -> dict[str, Any]:
    """What Judge0 PUTs to a callback_url (IsolateJob#call_callback): the default fields, its text fields
    always in Base64, whatever the submission was created with."""
    return from_monaco(result, fields=DEFAULT_FIELDS, base64_encoded=True, language=None)
