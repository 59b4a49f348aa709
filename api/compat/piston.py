"""The Piston v2 API at /api/v2/ (and /api/v2/piston/, the public instance's prefix), on Monaco's path.

`POST /api/v2/execute` is synchronous as in Piston: the submission goes through routes.accept (the path of
POST /submit) and the answer waits for it as `POST /submit?wait=` does. Refusals are Piston's
`{"message": "..."}` with its status codes. The translation is pure (to_monaco, from_monaco).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monaco.api import routes
from monaco.api.backend import NotCancellable
from monaco.api.compat import unsupported_keys, zipfiles
from monaco.api.errors import ApiError
from monaco.core.languages import Language, Registry
from monaco.core.phase import MIN_MEMORY_MB, MIN_TIMEOUT_SECONDS
from monaco.core.settings import Settings

MIB = 1024 * 1024
ENCODINGS = ("utf8", "base64", "hex")
PREFIXES = ("/api/v2", "/api/v2/piston")


class PistonInvalid(ValueError):
    """A request Piston would answer with 400 {"message": ...}."""


def runtimes(registry: Registry) -> list[dict[str, Any]]:
    """GET /api/v2/runtimes: one entry per language; `runtime` only where the registry names one."""
    out = []
    for language in registry:
        runtime = language.piston_runtime
        entry: dict[str, Any] = {"language": runtime.language, "version": runtime.version, "aliases": runtime.aliases}
        if runtime.runtime:
            entry["runtime"] = runtime.runtime
        out.append(entry)
    return out


def version_matches(have: str, want: str) -> bool:
    """Piston's version selector, as far as a single version needs it: `*`, the version itself, or a
    prefix of its dotted parts where any part may be `x` or `*` (`3`, `3.x`, `3.11.*` all match 3.11.0)."""
    if want in ("*", "x", "X") or want == have:
        return True
    have_parts, want_parts = have.split("."), want.split(".")
    if len(want_parts) > len(have_parts):
        return False
    return all(w in ("x", "X", "*") or w == h for w, h in zip(want_parts, have_parts, strict=False))


def _content(file: dict[str, Any], index: int) -> str:
    encoding = file.get("encoding") or "utf8"
    if encoding not in ENCODINGS:
        raise PistonInvalid(f"files[{index}].encoding must be one of {', '.join(ENCODINGS)}")
    content: str = file["content"]
    if encoding == "utf8":
        return content
    try:
        raw = base64.b64decode(content, validate=True) if encoding == "base64" else bytes.fromhex(content)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise PistonInvalid(
            f"files[{index}].content is not {encoding} of UTF-8 text; Monaco places source text files only"
        ) from None


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    """One of Piston's limits: left out, 0 or -1 is the default (None); else a number in [low, high]."""
    value = body.get(key)
    if value is None or value == 0 or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PistonInvalid(f"If specified, {key} must be a number")
    if value < 0:
        raise PistonInvalid(f"{key} must be non-negative")
    if value > high:
        raise PistonInvalid(f"{key} cannot exceed the configured limit of {high:g}")
    if value < low:
        raise PistonInvalid(f"{key} must be at least {low:g} for Monaco")
    return float(value)


def _runtime(body: dict[str, Any], registry: Registry) -> Language:
    language_name, version = body.get("language"), body.get("version")
    if not language_name or not isinstance(language_name, str):
        raise PistonInvalid("language is required as a string")
    if not version or not isinstance(version, str):
        raise PistonInvalid("version is required as a string")
    files = body.get("files")
    if not isinstance(files, list):
        raise PistonInvalid("files is required as an array")
    for i, file in enumerate(files):
        if not isinstance(file, dict) or not isinstance(file.get("content"), str):
            raise PistonInvalid(f"files[{i}].content is required as a string")
    language = registry.by_piston_name(language_name)
    if language is None or not version_matches(language.piston_runtime.version, version):
        raise PistonInvalid(f"{language_name}-{version} runtime is unknown")
    if not files:
        raise PistonInvalid("files must include at least one utf8 encoded file")
    return language


def _files(files: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """The main source (the first file, as Piston runs the first) and the others as Monaco's `files`."""
    main = _content(files[0], 0)
    others = []
    for i, file in enumerate(files[1:], start=1):
        name = file.get("name") or f"file{i}.code"
        if not isinstance(name, str):
            raise PistonInvalid(f"files[{i}].name must be a string")
        problem = zipfiles.file_name_problem(name)
        if problem:
            raise PistonInvalid(f"files[{i}].name {name!r} {problem}")
        others.append({"name": name, "content": _content(file, i)})
    return main, others


def to_monaco(body: dict[str, Any], registry: Registry) -> tuple[Language, dict[str, Any]]:
    """A Piston execute request -> its language and a Monaco submit body; PistonInvalid says what is wrong.

    run_timeout and run_cpu_time (ms) become Monaco's one wall-clock limit (the smaller), run_memory_limit
    (bytes) its memory limit; the compile_* limits are checked against the language's compile limits,
    which Monaco applies as they are.
    """
    language = _runtime(body, registry)
    main, others = _files(body["files"])
    out: dict[str, Any] = {"language": language.name, "code": main}
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise PistonInvalid("stdin must be a string")
    out["input"] = stdin or ""
    args = body.get("args")
    if args is not None and (not isinstance(args, list) or not all(isinstance(a, str) for a in args)):
        raise PistonInvalid("args must be an array of strings")
    if args:
        out["args"] = args
    if others:
        out["files"] = others
    most_ms = language.limits.timeout_ceiling * 1000
    times = [_number(body, key, MIN_TIMEOUT_SECONDS * 1000, most_ms) for key in ("run_timeout", "run_cpu_time")]
    given = [t for t in times if t is not None]
    if given:
        out["timeoutSeconds"] = min(given) / 1000
    memory = _number(body, "run_memory_limit", MIN_MEMORY_MB * MIB, language.limits.memory_ceiling * MIB)
    if memory is not None:
        out["memoryMb"] = math.ceil(memory / MIB)
    compile_ms = language.compile_limits.timeout_seconds * 1000
    for key, high in (("compile_timeout", compile_ms), ("compile_cpu_time", compile_ms),
                      ("compile_memory_limit", language.compile_limits.memory_mb * MIB)):
        _number(body, key, 0, high)
    return language, out


# ---- the answer


def _stage(stdout: str, stderr: str, code: int | None, signal: str | None, message: str | None,
           status: str | None, memory: int | None = None, wall_time: float | None = None) -> dict[str, Any]:
    return {
        "stdout": stdout, "stderr": stderr, "output": stdout + stderr, "code": code, "signal": signal,
        "message": message or None, "status": status, "memory": memory, "cpu_time": None, "wall_time": wall_time,
    }


def _run_state(result: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """(code, signal, status) of the run stage, as Piston reports isolate's verdicts."""
    verdict, code, signal = result.get("verdict"), result.get("exitCode"), result.get("signalName")
    if verdict in ("ok", "wrong_answer"):
        return code, None, None
    if verdict == "runtime_error":
        return (None, signal, "SG") if signal else (code, None, "RE")
    if verdict == "timeout":
        return None, "SIGKILL", "TO"
    if verdict == "memory_limit":
        return None, signal or "SIGKILL", "SG"
    if verdict == "output_limit":
        return None, "SIGKILL", "OL"
    return None, None, "XX"  # cancelled, system_error


def from_monaco(result: dict[str, Any], language: Language) -> dict[str, Any]:
    """A finished Monaco result -> Piston's answer: `run`, and `compile` for a compiled language (when
    the compile fails, `run` repeats it, as Piston does)."""
    runtime = language.piston_runtime
    answer: dict[str, Any] = {"language": runtime.language, "version": runtime.version}
    compile_output = result.get("compileOutput") or ""
    message = result.get("message") or None
    if result.get("verdict") == "compile_error":
        failed = _stage("", compile_output, result.get("exitCode") or 1, None, message, "RE")
        return {**answer, "compile": failed, "run": failed}
    if language.compiles:
        answer["compile"] = _stage(compile_output, "", 0, None, None, None, wall_time=result.get("compileTimeMs"))
    code, signal, status = _run_state(result)
    memory_kb = result.get("memoryKb")
    answer["run"] = _stage(
        result.get("output") or "", result.get("stderr") or "", code, signal, message if status else None, status,
        memory=memory_kb * 1024 if memory_kb is not None else None, wall_time=result.get("executionTimeMs"),
    )
    return answer


# ---- the routes


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def body_limit(settings: Settings) -> int:
    """A Piston request: the code and its files (hex doubles them) beside the input."""
    return routes.submit_body_limit(settings) + 2 * settings.max_code_bytes


def _refusal(exc: ApiError) -> Response:
    message = "requests must be of type application/json" if exc.status == 415 else exc.message
    return JSONResponse({"message": message}, status_code=exc.status, headers=exc.headers)


async def execute(request: Request) -> Response:
    settings, backend = _settings(request), request.app.state.backend
    try:
        body = await routes.read_json(request, body_limit(settings))
        try:
            language, submit = to_monaco(body, settings.registry)
        except PistonInvalid as exc:
            raise ApiError(400, str(exc)) from None
        missing = unsupported_keys(submit)
        if missing:
            raise ApiError(400, f"this Monaco server does not support {', '.join(missing)} yet")
        view = await routes.accept(request, submit)
    except ApiError as exc:
        if exc.status not in (429, 503):
            routes.count_refusal(request.app.state.metrics, exc.status)
        return _refusal(exc)
    done = await backend.wait(view.id, settings.wait_max_seconds)
    if done is None or not done.status.finished:
        try:
            await backend.cancel(view.id)
        except NotCancellable:  # it finished in between: answer with it
            done = await backend.get(view.id)
        if done is None or not done.status.finished:
            return JSONResponse(
                {"message": f"the program did not finish within {settings.wait_max_seconds:g} s of waiting "
                            "(the queue was long); Monaco cancelled it"},
                status_code=503, headers={"Retry-After": "5"},
            )
    return JSONResponse(from_monaco(done.result_body(), language))


async def list_runtimes(request: Request) -> Response:
    return JSONResponse(runtimes(_settings(request).registry))


def routes_list() -> list[Route]:
    """Piston's paths with and without a trailing slash (clients build both), under both prefixes."""
    out = []
    for prefix in PREFIXES:
        for slash in ("", "/"):
            out.append(Route(f"{prefix}/runtimes{slash}", list_runtimes, methods=["GET"]))
            out.append(Route(f"{prefix}/execute{slash}", execute, methods=["POST"]))
    return out
