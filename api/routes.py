"""The HTTP routes: parse, call the back end once, shape the response."""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monaco.api.backend import Backend, Invalid, NotCancellable, QueueFull, StoreUnavailable
from monaco.api.body import parse_object, read_body, require_json
from monaco.api.errors import ApiError
from monaco.api.metrics import Metrics
from monaco.core.callback import CallbackRefused, Format
from monaco.core.models import MAX_ARGS_TOTAL_BYTES, SubmissionView, SubmitRequest
from monaco.core.options import OptionError, request_spec
from monaco.core.phase import LimitError, resolve_limits
from monaco.core.settings import Settings

_BODY_SLACK = 16 * 1024  # JSON quoting and the other fields around code and input
# A batch body may be this many submissions' worth of bytes: room for 20 small programs, not 20 of the largest.
BATCH_SUBMISSIONS = 4


def _state(request: Request) -> tuple[Settings, Backend, Metrics]:
    s = request.app.state
    return s.settings, s.backend, s.metrics


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "missing":
            parts.append(f"'{field}' is required")
        elif err["type"].endswith("_type") or err["type"].startswith(("string_", "int_", "float_")):
            parts.append(f"'{field}': {err['msg'].lower()}")
        else:
            parts.append(f"'{field}': {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _wait_seconds(request: Request, settings: Settings) -> float | None:
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, f"'wait' must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(wait) or wait < 0 or wait > settings.wait_max_seconds:
        raise ApiError(400, f"'wait' must be between 0 and {settings.wait_max_seconds:g} seconds")
    return wait


# Refusals of a submission by status, as the metric monaco_submissions_rejected_total counts them.
REFUSED = {400: "bad_request", 413: "too_large", 415: "not_json", 422: "bad_request"}
MAX_BATCH = 20  # submissions in one POST /submit/batch, ids in one GET /results


def count_refusal(metrics: Metrics, status: int) -> None:
    reason = REFUSED.get(status)
    if reason is not None:
        metrics.rejected.labels(reason).inc()


def submit_body_limit(settings: Settings) -> int:
    """The most bytes one submission's JSON may take: code (with its extra files) and inputs (with the
    expected outputs) at their limits, the arguments and the JSON around them; each field's own bound then
    says which one is too large."""
    return settings.max_code_bytes + settings.max_input_bytes + MAX_ARGS_TOTAL_BYTES + _BODY_SLACK


def submit_fields() -> set[str]:
    """The keys of a submission body that Monaco reads (it ignores others); the compatibility APIs refuse
    a field of theirs that would translate to a key outside this set, rather than drop it unseen."""
    return {field.alias or name for name, field in SubmitRequest.model_fields.items()}


async def accept(request: Request, data: dict[str, Any], callback_format: Format = "monaco") -> SubmissionView:
    """Validate one submission body and store it: the one path of POST /submit, its batches and the
    compatibility APIs. Raises ApiError (400, 413, 429, 503); counts 429 and 503 and what it accepts.
    `callback_format` is the caller's, never the client's: the Judge0 API asks for Judge0's callbacks."""
    settings, backend, metrics = _state(request)
    try:
        req = SubmitRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _validation_message(exc)) from None
    if not req.code.strip():
        raise ApiError(400, "'code' is empty; send the program's source code")
    code_bytes, input_bytes = len(req.code.encode()), len(req.input.encode())
    if code_bytes > settings.max_code_bytes:
        raise ApiError(413, f"'code' is {code_bytes} bytes; the limit is {settings.max_code_bytes} bytes")
    if input_bytes > settings.max_input_bytes:
        raise ApiError(413, f"'input' is {input_bytes} bytes; the limit is {settings.max_input_bytes} bytes")
    if "\x00" in req.code:
        raise ApiError(400, "'code' contains a NUL character")
    name = req.language if req.language is not None else settings.default_language
    language = settings.registry.get(name)
    if language is None and (absent := settings.registry.not_installed(name)):
        raise ApiError(400, absent, languages=settings.registry.names)
    if language is None:
        known = ", ".join(settings.registry.names)
        raise ApiError(400, f"unknown language {name!r}; choose one of: {known}", languages=settings.registry.names)
    try:
        limits = resolve_limits(language, req.timeout_seconds, req.memory_mb)
    except LimitError as exc:
        raise ApiError(400, str(exc)) from None
    if req.callback_url is not None:
        try:
            settings.callbacks.check_url(req.callback_url)
        except CallbackRefused as exc:
            raise ApiError(400, str(exc)) from None
    try:
        spec = request_spec(req, language, max_code_bytes=settings.max_code_bytes,
                            max_input_bytes=settings.max_input_bytes)
    except OptionError as exc:
        raise ApiError(exc.status, str(exc)) from None
    try:
        view = await backend.submit(language, req.code, req.input, limits, spec, callback_url=req.callback_url,
                                    callback_format=callback_format)
    except QueueFull as exc:
        metrics.rejected.labels("queue_full").inc()
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except StoreUnavailable as exc:
        metrics.rejected.labels("store_unavailable").inc()
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    except Invalid as exc:
        raise ApiError(400, str(exc)) from None
    metrics.submitted.labels(language.name).inc()
    return view


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of a request's body: declared as JSON, at most `limit` bytes."""
    require_json(request)
    return parse_object(await read_body(request, limit))


async def submit(request: Request) -> Response:
    settings, backend, _metrics = _state(request)
    wait = _wait_seconds(request, settings)
    view = await accept(request, await read_json(request, submit_body_limit(settings)))
    if wait:
        done = await backend.wait(view.id, wait)
        if done is not None and done.status.finished:
            return JSONResponse(done.result_body(), status_code=200)
    return JSONResponse({"id": view.id}, status_code=202)


async def submit_batch(request: Request) -> Response:
    """Up to MAX_BATCH submissions in one body; each is accepted or refused on its own, in order."""
    settings, _backend, metrics = _state(request)
    data = await read_json(request, BATCH_SUBMISSIONS * submit_body_limit(settings))
    items = data.get("submissions")
    if not isinstance(items, list) or not items:
        shape = '{"submissions": [<submission>, ...]}'
        raise ApiError(400, f"send {shape}: a list of 1 to {MAX_BATCH} POST /submit bodies")
    if len(items) > MAX_BATCH:
        raise ApiError(413, f"the batch holds {len(items)} submissions; send at most {MAX_BATCH} in one request")
    answers: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ApiError(400, f"submissions[{index}] must be a JSON object such as a POST /submit body")
            answers.append({"id": (await accept(request, item)).id})
        except ApiError as exc:
            if exc.status not in (429, 503):  # accept counted those itself
                count_refusal(metrics, exc.status)
            answers.append({"error": exc.message, "status": exc.status})
    return JSONResponse({"submissions": answers}, status_code=202)


def id_list(raw: str, what: str) -> list[str]:
    """Comma-separated submission ids, 1 to MAX_BATCH of them, each a plausible id."""
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:
        raise ApiError(400, f"'{what}' is required: comma-separated submission ids, e.g. ?{what}=<id>,<id>")
    if len(ids) > MAX_BATCH:
        raise ApiError(400, f"'{what}' holds {len(ids)} ids; ask for at most {MAX_BATCH} in one request")
    for submission_id in ids:
        if len(submission_id) > 128:
            raise ApiError(400, f"'{what}' holds an id of {len(submission_id)} characters; an id has at most 128")
    return ids


async def find_many(request: Request, ids: list[str]) -> list[SubmissionView | None]:
    _settings, backend, _metrics = _state(request)
    try:
        return [await backend.get(submission_id) for submission_id in ids]
    except StoreUnavailable as exc:
        raise ApiError(503, str(exc)) from None


async def results(request: Request) -> Response:
    ids = id_list(request.query_params.get("ids", ""), "ids")
    found = await find_many(request, ids)
    return JSONResponse(
        {
            "results": [
                view.result_body() if view else {"id": submission_id, "error": "not found", "status": 404}
                for submission_id, view in zip(ids, found, strict=True)
            ]
        }
    )


def _submission_id(request: Request) -> str:
    submission_id: str = request.path_params.get("id") or request.query_params.get("id") or ""
    if not submission_id:
        raise ApiError(400, "the 'id' query parameter is required, e.g. /status?id=<id from POST /submit>")
    if len(submission_id) > 128:
        raise ApiError(400, "'id' is too long to be a submission id")
    return submission_id


async def _lookup(request: Request) -> SubmissionView:
    _settings, backend, _metrics = _state(request)
    submission_id = _submission_id(request)
    try:
        view = await backend.get(submission_id)
    except StoreUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    if view is None:
        raise ApiError(404, f"no submission with id {submission_id!r}")
    return view


async def status(request: Request) -> Response:
    return JSONResponse((await _lookup(request)).status_body())


async def result(request: Request) -> Response:
    return JSONResponse((await _lookup(request)).result_body())


async def cancel(request: Request) -> Response:
    _settings, backend, _metrics = _state(request)
    submission_id = _submission_id(request)
    try:
        view = await backend.cancel(submission_id)
    except NotCancellable as exc:
        raise ApiError(409, str(exc)) from None
    except StoreUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    if view is None:
        raise ApiError(404, f"no submission with id {submission_id!r}")
    return JSONResponse(view.status_body())


async def queue_stats(request: Request) -> Response:
    _settings, backend, _metrics = _state(request)
    stats = await backend.stats()
    return JSONResponse(
        {
            "queue_stats": {
                "queue_length": stats.queue_length,
                "max_workers": stats.max_workers,
                "running_jobs": stats.running_jobs,
            },
            "submissions": stats.submissions,
        }
    )


async def languages(request: Request) -> Response:
    settings, _backend, _metrics = _state(request)
    return JSONResponse(
        {"default": settings.default_language, "languages": [lang.public() for lang in settings.registry]}
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    _settings, backend, _metrics = _state(request)
    ok, why = backend.ready()
    return JSONResponse({"status": "ready" if ok else "not ready", "reason": why}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    _settings, backend, m = _state(request)
    stats = await backend.stats()
    m.queue_length.set(stats.queue_length)
    m.running.set(stats.running_jobs)
    return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
