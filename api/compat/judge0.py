"""The Judge0 CE 1.13 API under /judge0, translated onto Monaco's submission path.

An existing Judge0 client is pointed at http://<monaco>/judge0 and nothing else changes: the same paths,
request fields, status ids, answer fields and error shapes (422 `{"field": ["message"]}` for an invalid
field, `{"error": "..."}` otherwise). A field Monaco cannot honour is refused with a 422 that says so, never
dropped. The translation is pure (to_monaco here; the answer's from_monaco in core/judge0.py, shared with
the callback senders); the routes below parse, call routes.accept (the path of POST /submit: limits, queue,
store, metrics) and shape the answer.
"""

from __future__ import annotations

import base64
import binascii
import math
import shlex
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monaco.api import routes
from monaco.api.backend import NotCancellable, StoreUnavailable
from monaco.api.compat import unsupported_keys, zipfiles
from monaco.api.errors import ApiError
from monaco.core.judge0 import DEFAULT_FIELDS, FIELDS, STATUSES, from_monaco, judge0_name
from monaco.core.languages import Language, Registry
from monaco.core.models import SubmissionView
from monaco.core.phase import MIN_MEMORY_MB, MIN_TIMEOUT_SECONDS
from monaco.core.settings import Settings

VERSION = "1.13.1"  # the Judge0 CE release whose API this is

ENCODED_ANSWER_FIELDS = ("stdout", "stderr", "compile_output", "message")
MAX_STRING_OPTION = 512  # Judge0's length limit of compiler_options and command_line_arguments
MIN_MEMORY_KB = 2048  # Judge0's own minimum of memory_limit
# Limits Judge0 offers per submission that Monaco sets per language only: refused when sent.
NOT_PER_SUBMISSION = ("cpu_extra_time", "stack_limit", "max_processes_and_or_threads", "max_file_size")
# Monaco's submit keys -> the Judge0 field behind each, to name the field of a refusal
MONACO_TO_JUDGE0 = {
    "code": "source_code",
    "language": "language_id",
    "input": "stdin",
    "expectedOutput": "expected_output",
    "timeoutSeconds": "cpu_time_limit",
    "memoryMb": "memory_limit",
    "args": "command_line_arguments",
    "compilerOptions": "compiler_options",
    "redirectStderrToStdout": "redirect_stderr_to_stdout",
    "callbackUrl": "callback_url",
    "files": "additional_files",
}

Errors = dict[str, list[str]]


class Judge0Invalid(Exception):
    """A submission Judge0 would answer with 422: the messages by field, as Rails' `errors` renders them."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def decode64(value: str) -> bytes:
    """Ruby's Base64.decode64, which Judge0 reads with: characters outside the alphabet are skipped and
    missing padding is forgiven."""
    kept = "".join(c for c in value if c.isascii() and (c.isalnum() or c in "+/"))
    kept += "=" * (-len(kept) % 4)
    try:
        return base64.b64decode(kept)
    except binascii.Error:  # a lone trailing character: Ruby drops it
        return base64.b64decode(kept[: len(kept) // 4 * 4 - 4] if len(kept) > 4 else "")


# ---- the request: a Judge0 submission -> a Monaco submit body (pure)


def _text(body: dict[str, Any], key: str, errors: Errors, *, base64_encoded: bool) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.setdefault(key, []).append("must be a string")
        return None
    if not base64_encoded:
        return value
    try:
        return decode64(value).decode("utf-8")
    except UnicodeDecodeError:
        errors.setdefault(key, []).append("is not UTF-8 text once decoded from Base64; Monaco runs text")
        return None


def _number(value: Any) -> float | None:
    """A JSON number, or a string of one (Rails casts those); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _limit(body: dict[str, Any], key: str, errors: Errors, low: float, high: float) -> float | None:
    if body.get(key) is None:
        return None
    number = _number(body[key])
    if number is None:
        errors.setdefault(key, []).append("is not a number")
        return None
    if number < low:
        errors.setdefault(key, []).append(f"must be greater than or equal to {low:g}")
    elif number > high:
        errors.setdefault(key, []).append(f"must be less than or equal to {high:g}")
    else:
        return number
    return None


def _flag(body: dict[str, Any], key: str, errors: Errors) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if value is True or value is False:
        return bool(value)
    if value in ("true", "false"):
        return bool(value == "true")
    errors.setdefault(key, []).append("must be true or false")
    return None


def _words(body: dict[str, Any], key: str, errors: Errors) -> list[str] | None:
    """A Judge0 string option split as a shell would (`-O2 -DX="a b"` -> ['-O2', '-DX=a b'])."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.setdefault(key, []).append("must be a string")
        return None
    if len(value) > MAX_STRING_OPTION:
        errors.setdefault(key, []).append(f"is too long (maximum is {MAX_STRING_OPTION} characters)")
        return None
    try:
        return shlex.split(value) or None
    except ValueError as exc:
        errors.setdefault(key, []).append(f"cannot be split into words as a shell would: {exc}")
        return None


def _language(body: dict[str, Any], registry: Registry, errors: Errors) -> Language | None:
    value = body.get("language_id")
    if value is None or value == "":
        errors.setdefault("language_id", []).append("can't be blank")
        return None
    number = _number(value)
    if number is None or not number.is_integer():
        errors.setdefault("language_id", []).append("is not a number")
        return None
    language = registry.by_judge0_id(int(number))
    if language is None:
        errors.setdefault("language_id", []).append(f"language with id {int(number)} doesn't exist")
    return language


def _refusals(body: dict[str, Any], errors: Errors) -> None:
    """The fields Monaco cannot honour, refused with Judge0's own message where it has one."""
    for key in NOT_PER_SUBMISSION:
        if body.get(key) is not None:
            errors.setdefault(key, []).append(
                "Monaco does not take this limit per submission (the language's own applies); leave it out"
            )
    for key in ("enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit"):
        if _flag(body, key, errors):
            errors.setdefault(key, []).append("this option cannot be enabled")
    if _flag(body, "enable_network", errors):
        errors.setdefault("enable_network", []).append("enabling network is not allowed")
    runs = body.get("number_of_runs")
    if runs is not None and _number(runs) != 1:
        errors.setdefault("number_of_runs", []).append("Monaco runs a submission once; send 1 or leave it out")


def to_monaco(
    body: dict[str, Any], registry: Registry, *, base64_encoded: bool, max_files_bytes: int
) -> dict[str, Any]:
    """A Judge0 submission -> the body of a Monaco POST /submit; Judge0Invalid with every field's errors.

    Monaco has one time limit, on the wall clock: it is the smaller of cpu_time_limit and wall_time_limit.
    Keys are only set where they change something, so that a plain submission needs nothing new of Monaco.
    """
    errors: Errors = {}
    language = _language(body, registry, errors)
    code = _text(body, "source_code", errors, base64_encoded=base64_encoded)
    if not code and "source_code" not in errors:
        errors["source_code"] = ["can't be blank"]
    stdin = _text(body, "stdin", errors, base64_encoded=base64_encoded)
    expected = _text(body, "expected_output", errors, base64_encoded=base64_encoded)
    _refusals(body, errors)
    out: dict[str, Any] = {"code": code, "input": stdin or ""}
    if language is not None:
        out["language"] = language.name
        ceiling = language.limits.timeout_ceiling
        times = [
            _limit(body, "cpu_time_limit", errors, MIN_TIMEOUT_SECONDS, ceiling),
            _limit(body, "wall_time_limit", errors, max(1.0, MIN_TIMEOUT_SECONDS), ceiling),
        ]
        given = [t for t in times if t is not None]
        if given:
            out["timeoutSeconds"] = min(given)
        memory_kb = _limit(body, "memory_limit", errors, max(MIN_MEMORY_KB, MIN_MEMORY_MB * 1024),
                           language.limits.memory_ceiling * 1024)
        if memory_kb is not None:
            out["memoryMb"] = math.ceil(memory_kb / 1024)
    if expected is not None:
        out["expectedOutput"] = expected
    args = _words(body, "command_line_arguments", errors)
    if args:
        out["args"] = args
    options = _words(body, "compiler_options", errors)
    if options and language is not None and not language.compiles:
        errors.setdefault("compiler_options", []).append(
            "setting compiler options is only allowed for compiled languages"
        )
    elif options:
        out["compilerOptions"] = options
    if _flag(body, "redirect_stderr_to_stdout", errors):
        out["redirectStderrToStdout"] = True
    callback = body.get("callback_url")
    if callback is not None and callback != "":
        if isinstance(callback, str):
            out["callbackUrl"] = callback
        else:
            errors.setdefault("callback_url", []).append("must be a string")
    files = _additional_files(body, errors, max_files_bytes)
    if files:
        out["files"] = files
    if errors:
        raise Judge0Invalid(errors)
    return out


def _additional_files(body: dict[str, Any], errors: Errors, max_bytes: int) -> list[dict[str, str]] | None:
    value = body.get("additional_files")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.setdefault("additional_files", []).append("must be a Base64 string of a .zip archive")
        return None
    try:
        unpacked = zipfiles.unpack(decode64(value), zipfiles.Bounds(max_total_bytes=max_bytes))
    except zipfiles.ZipRefused as exc:
        errors.setdefault("additional_files", []).append(f"the archive {exc}")
        return None
    return [{"name": name, "content": text} for name, text in unpacked]


# ---- the answer's fields


def requested_fields(raw: str | None) -> tuple[str, ...]:
    """Judge0's `fields` query parameter: names separated by commas, `*` for all; 400 naming bad ones."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    invalid = [name for name in names if name != "*" and name not in FIELDS]
    if invalid:
        raise ApiError(400, f"invalid fields: [{', '.join(invalid)}]")
    if "*" in names:
        return FIELDS
    return tuple(dict.fromkeys(names)) or DEFAULT_FIELDS


# ---- the routes


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _true(request: Request, name: str) -> bool:
    return request.query_params.get(name) == "true"  # as Judge0: only the word true turns a flag on


def body_limit(settings: Settings) -> int:
    """One Judge0 submission: code, stdin, expected output and a zip of files, each a third larger in Base64."""
    raw = routes.submit_body_limit(settings) + settings.max_input_bytes + settings.max_code_bytes
    return raw * 4 // 3


def _answer(request: Request, view: SubmissionView, fields: Iterable[str], base64_encoded: bool) -> dict[str, Any]:
    language = _settings(request).registry.get(view.language)
    return from_monaco(view.result_body(), fields=fields, base64_encoded=base64_encoded, language=language)


class Judge0Error(ApiError):
    """An answer whose body is `payload` itself (Judge0's field errors), not Monaco's {"error": ...}."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, str(payload), headers)
        self.payload = payload


def _as_judge0(exc: ApiError) -> ApiError:
    """A refusal of Monaco's submission path in Judge0's words: a bad field is a 422 naming the Judge0
    field, a full queue Judge0's 503."""
    if exc.status == 429:
        return ApiError(503, "queue is full", headers=exc.headers)
    if exc.status == 400:
        key = next((j for m, j in MONACO_TO_JUDGE0.items() if exc.message.startswith(f"'{m}'")), None)
        return Judge0Error(422, {key or "base": [exc.message]})
    return exc


def _respond(exc: ApiError) -> Response:
    if isinstance(exc, Judge0Error):
        return JSONResponse(exc.payload, status_code=exc.status, headers=exc.headers)
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def _create(request: Request, item: Any, base64_encoded: bool) -> SubmissionView:
    """One Judge0 submission through Monaco's submission path; Judge0Error/ApiError when refused."""
    settings = _settings(request)
    if not isinstance(item, dict):
        raise Judge0Error(422, {"base": ["a submission must be a JSON object"]})
    try:
        body = to_monaco(item, settings.registry, base64_encoded=base64_encoded,
                         max_files_bytes=settings.max_code_bytes)
    except Judge0Invalid as exc:
        raise Judge0Error(422, exc.errors) from None
    missing = unsupported_keys(body)
    if missing:
        raise Judge0Error(422, {MONACO_TO_JUDGE0.get(k, k): ["this Monaco server does not support it yet"]
                                for k in missing})
    try:
        return await routes.accept(request, body, callback_format="judge0")
    except ApiError as exc:
        raise _as_judge0(exc) from None


def _judge0_errors(handler: Any) -> Any:
    """Route wrapper: every refusal in Judge0's shape, counted as Monaco counts refused submissions."""

    async def route(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except ApiError as exc:
            if request.method == "POST" and exc.status not in (429, 503):
                routes.count_refusal(request.app.state.metrics, exc.status)
            return _respond(exc)

    return route


@_judge0_errors
async def create_submission(request: Request) -> Response:
    settings = _settings(request)
    base64_encoded, fields = _true(request, "base64_encoded"), requested_fields(request.query_params.get("fields"))
    item = await routes.read_json(request, body_limit(settings))
    view = await _create(request, item, base64_encoded)
    if not _true(request, "wait"):
        return JSONResponse({"token": view.id}, status_code=201)
    done = await request.app.state.backend.wait(view.id, settings.wait_max_seconds)
    return JSONResponse(_answer(request, done or view, fields, base64_encoded), status_code=201)


async def _find(request: Request, token: str) -> SubmissionView | None:
    if len(token) > 128:
        return None
    try:
        view: SubmissionView | None = await request.app.state.backend.get(token)
    except StoreUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    return view


@_judge0_errors
async def get_submission(request: Request) -> Response:
    fields = requested_fields(request.query_params.get("fields"))
    view = await _find(request, request.path_params["token"])
    if view is None:
        raise ApiError(404, "record not found")
    return JSONResponse(_answer(request, view, fields, _true(request, "base64_encoded")))


@_judge0_errors
async def delete_submission(request: Request) -> Response:
    """Judge0 deletes a finished submission; Monaco keeps it (MONACO_RETENTION_HOURS) and cancels one that
    is still queued or running, answering with it as it ended (Base64, as Judge0 answers a delete)."""
    fields = requested_fields(request.query_params.get("fields"))
    token = request.path_params["token"]
    if await _find(request, token) is None:
        raise ApiError(404, "record not found")
    try:
        view = await request.app.state.backend.cancel(token)
    except NotCancellable:
        raise ApiError(400, "delete not allowed: Monaco keeps finished submissions; it cancels queued and "
                            "running ones") from None
    except StoreUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    return JSONResponse(_answer(request, view, fields, True))


@_judge0_errors
async def create_batch(request: Request) -> Response:
    """Up to MAX_BATCH submissions; each answered with its token or its errors, 201 if any was created."""
    settings, metrics = _settings(request), request.app.state.metrics
    base64_encoded = _true(request, "base64_encoded")
    data = await routes.read_json(request, routes.BATCH_SUBMISSIONS * body_limit(settings))
    items = data.get("submissions")
    if not isinstance(items, list):
        items = []
    count = len(items)
    if count > routes.MAX_BATCH:
        raise ApiError(400, f"number of submissions in a batch should be less than or equal to {routes.MAX_BATCH}")
    if count == 0:
        raise ApiError(400, "there should be at least one submission in a batch")
    answers: list[Any] = []
    for item in items:
        try:
            answers.append({"token": (await _create(request, item, base64_encoded)).id})
        except ApiError as exc:
            if exc.status not in (429, 503):
                routes.count_refusal(metrics, exc.status)
            answers.append(exc.payload if isinstance(exc, Judge0Error) else {"error": exc.message})
    created = any("token" in answer for answer in answers)
    return JSONResponse(answers, status_code=201 if created else 422)


@_judge0_errors
async def get_batch(request: Request) -> Response:
    fields = requested_fields(request.query_params.get("fields"))
    base64_encoded = _true(request, "base64_encoded")
    raw = request.headers.get("tokens") or request.query_params.get("tokens") or ""
    tokens = [t for t in raw.strip().split(",") if t]
    if len(tokens) > routes.MAX_BATCH:
        raise ApiError(400, f"number of submissions in a batch should be less than or equal to {routes.MAX_BATCH}")
    if not tokens:
        raise ApiError(400, "there should be at least one submission in a batch")
    views = [await _find(request, token) for token in tokens]
    return JSONResponse(
        {"submissions": [_answer(request, v, fields, base64_encoded) if v else None for v in views]}
    )


# ---- information


def languages_list(registry: Registry) -> list[dict[str, Any]]:
    """GET /languages: every Judge0 id of every language, with Monaco's name and version for it."""
    return sorted(
        ({"id": i, "name": judge0_name(lang)} for lang in registry for i in lang.judge0_ids),
        key=lambda entry: entry["id"],
    )


def language_detail(language: Language, language_id: int) -> dict[str, Any]:
    return {
        "id": language_id,
        "name": judge0_name(language),
        "is_archived": False,
        "source_file": language.source_file,
        "compile_cmd": language.compile,
        "run_cmd": language.run,
    }


def config_info(settings: Settings) -> dict[str, Any]:
    """GET /config_info: Judge0's configuration keys, with what Monaco does for each."""
    registry = settings.registry
    default = registry.get(settings.default_language) or next(iter(registry))
    most_seconds = max(lang.limits.timeout_ceiling for lang in registry)
    return {
        "maintenance_mode": False,
        "enable_wait_result": True,
        "enable_compiler_options": "compilerOptions" in routes.submit_fields(),
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": "args" in routes.submit_fields(),
        "enable_submission_delete": False,
        "enable_callbacks": "callbackUrl" in routes.submit_fields(),
        "callbacks_max_tries": settings.callbacks.attempts,
        "callbacks_timeout": float(settings.callbacks.timeout_seconds),
        "enable_additional_files": "files" in routes.submit_fields(),
        "max_queue_size": settings.queue_size,
        "cpu_time_limit": float(default.limits.timeout_seconds),
        "max_cpu_time_limit": float(most_seconds),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": 0.0,
        "wall_time_limit": float(default.limits.timeout_seconds),
        "max_wall_time_limit": float(most_seconds),
        "memory_limit": default.limits.memory_mb * 1024,
        "max_memory_limit": max(lang.limits.memory_ceiling for lang in registry) * 1024,
        "stack_limit": 0,
        "max_stack_limit": 0,
        "max_processes_and_or_threads": default.limits.processes,
        "max_max_processes_and_or_threads": default.limits.processes,
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": settings.output_limit_bytes // 1024,
        "max_max_file_size": settings.output_limit_bytes // 1024,
        "number_of_runs": 1,
        "max_number_of_runs": 1,
        "redirect_stderr_to_stdout": False,
        "max_extract_size": settings.max_code_bytes // 1024,
        "enable_batched_submissions": True,
        "max_submission_batch_size": routes.MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


async def about(request: Request) -> Response:
    return JSONResponse({
        "version": VERSION,
        "homepage": "https://github.com/judge0/judge0 (API served by Monaco)",
        "source_code": "https://github.com/judge0/judge0",
        "maintainer": "Monaco's Judge0 compatibility layer",
    })


async def version(request: Request) -> Response:
    return Response(VERSION, media_type="text/plain")


async def get_config_info(request: Request) -> Response:
    return JSONResponse(config_info(_settings(request)))


async def get_languages(request: Request) -> Response:
    return JSONResponse(languages_list(_settings(request).registry))


async def get_language(request: Request) -> Response:
    raw = request.path_params["id"]
    language = _settings(request).registry.by_judge0_id(int(raw)) if raw.isdigit() and len(raw) < 10 else None
    if language is None:
        return JSONResponse({"error": "record not found"}, status_code=404)
    return JSONResponse(language_detail(language, int(raw)))


async def get_statuses(request: Request) -> Response:
    return JSONResponse([{"id": i, "description": d} for i, d in STATUSES.items()])


def routes_list() -> list[Route]:
    """The routes, mounted under /judge0 (the batch paths before /submissions/{token}, which would take them)."""
    return [
        Route("/about", about, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/config_info", get_config_info, methods=["GET"]),
        Route("/languages", get_languages, methods=["GET"]),
        Route("/languages/{id}", get_language, methods=["GET"]),
        Route("/statuses", get_statuses, methods=["GET"]),
        Route("/submissions", create_submission, methods=["POST"]),
        Route("/submissions/batch", create_batch, methods=["POST"]),
        Route("/submissions/batch", get_batch, methods=["GET"]),
        Route("/submissions/{token}", get_submission, methods=["GET"]),
        Route("/submissions/{token}", delete_submission, methods=["DELETE"]),
    ]
